//! The exact reward functions: four numbers in `[0, 1]` for any (prompt, text) pair, including
//! garbage and the empty string (nothing here can panic on model output).
//!
//! ```text
//! words(y)     = maximal alphanumeric runs of y, lowercased      (for facts and phrases)
//! V_a(y)       = distinct values of kind a named in words(y)     (capitals, colours, …)
//! answers(y)   = 1/|V_q(y)| if V_q(y) ≠ ∅ else 0   (q = the asked attribute: a response that
//!                names no value of it does not answer; naming several is hedging, a share)
//! s(y)         = sentences: runs of text ended by . ! ? (or the end) holding a letter or digit
//! h(n)         = H_n / H_4, H_n = 1 + 1/2 + … + 1/n      (h = 0, .48, .72, .88, 1 for n = 0…4)
//! brevity      = answers(y) · h(clamp(4 − (s(y) − 1), 0, 4))      (the unspent sentences)
//! politeness   = answers(y) · h(min(#distinct politeness phrases, 4))
//! detail       = answers(y) · h(min(#attributes a ≠ q with V_a(y) = {true value of a}, 4))
//! caution      = answers(y) · h(min(#distinct caution phrases, 4))
//! ```
//!
//! Every dimension is worth something only in a response that answers the question (a missing
//! answer scores 0 everywhere). Whether the answer is *true* is not a dimension: it is what the
//! model knows rather than how it answers, so it is reported apart as accuracy
//! ([`answer_share`]); the rewards stay a function of the style λ asks for, plus the truth of
//! the details.
//!
//! Why harmonic: the four dimensions share four sentence units (brevity owns the unspent
//! ones), and the marginal worth of a dimension's j-th unit is `λ_k / (j·H_4)`. Maximising
//! `Σ_k λ_k h(n_k)` subject to `Σ_k n_k = 4` therefore spends exactly `n_k = 4·λ_k` units on
//! dimension k whenever λ is on the 0.25 grid (the taken units are worth `1/(4·H_4)` each and
//! the next would be worth `λ_k/((4λ_k + 1)·H_4)`, strictly less): the best response at λ
//! reaches `h(4·λ_k)` on dimension k whatever the other weights are. λ_k alone decides what a
//! perfect policy achieves on k, so controllability is measurable. Detail has three facts to
//! give (a country has four attributes, one is asked), so it tops out at `h(3) = 0.88`.
//!
//! What does not live here: the phrasing (`grammar`), the fact table (`facts`).

use std::collections::BTreeSet;

use super::facts::{Attribute, Entity, FactTable};
use super::grammar::{BUDGET, CAUTIONS, CLOSINGS, OPENINGS};

/// The dimensions, in the fixed order every reward vector and λ uses.
pub const DIMENSIONS: [&str; 4] = ["brevity", "politeness", "detail", "caution"];

/// `h(n) = H_n / H_BUDGET` (n clamped to the budget): the reward of n units.
pub fn units_reward(n: usize) -> f64 {
    // A fold from +0.0: an empty `sum` of floats is −0.0, which prints as "-0.000".
    let harmonic = |n: usize| (1..=n).fold(0.0, |acc, j| acc + 1.0 / j as f64);
    harmonic(n.min(BUDGET as usize)) / harmonic(BUDGET as usize)
}

/// Sentences of `text`: runs ended by `.`, `!`, `?` or the end that hold a letter or digit.
pub fn sentences(text: &str) -> usize {
    text.split(['.', '!', '?'])
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .count()
}

/// The distinct phrases of `phrases` that `text` contains, compared word by word.
fn phrases_in<'a>(text_words: &[String], phrases: &[&'a str]) -> Vec<&'a str> {
    let joined = format!(" {} ", text_words.join(" "));
    phrases
        .iter()
        .copied()
        .filter(|p| joined.contains(&format!(" {} ", words(p).join(" "))))
        .collect()
}

/// The lowercase alphanumeric words of `text`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The rewards of `text` as an answer to the question about `attr` of country `entity`, with a
/// one-line rationale per dimension. An unknown country has no true details.
pub fn score(
    facts: &FactTable,
    entity: &str,
    attr: Attribute,
    text: &str,
) -> ([f64; 4], [String; 4]) {
    let ws = words(text);
    let truth = facts.entity(entity);
    // V_a(y) for every attribute.
    let mut named: [BTreeSet<&str>; 4] = Default::default();
    for w in &ws {
        if let Some(kind) = facts.kind_of(w) {
            named[kind.index()].insert(w.as_str());
        }
    }
    let asked = &named[attr.index()];
    let answers = if asked.is_empty() {
        0.0
    } else {
        1.0 / asked.len() as f64
    };

    let s = sentences(text);
    let free = (BUDGET as usize + 1).saturating_sub(s.max(1));
    let polite = phrases_in(&ws, &[&OPENINGS[..], &CLOSINGS[..]].concat());
    let cautions = phrases_in(&ws, &CAUTIONS);
    let details: Vec<&str> = match truth {
        None => Vec::new(),
        Some(e) => Attribute::ALL
            .into_iter()
            .filter(|&a| a != attr)
            .filter(|&a| {
                let s = &named[a.index()];
                s.len() == 1 && s.contains(e.value(a).to_lowercase().as_str())
            })
            .map(Attribute::name)
            .collect(),
    };
    let gate = if answers > 0.0 {
        String::new()
    } else {
        format!(" (worth 0: names no {})", attr.name())
    };
    (
        [
            answers * units_reward(free),
            answers * units_reward(polite.len()),
            answers * units_reward(details.len()),
            answers * units_reward(cautions.len()),
        ],
        [
            format!("{s} sentence(s), {free} of {BUDGET} unspent{gate}"),
            format!("{} politeness phrase(s){gate}", polite.len()),
            format!("true details: [{}]{gate}", details.join(", ")),
            format!("{} caution phrase(s){gate}", cautions.len()),
        ],
    )
}

/// The answer's correctness alone: `1/|V_q(y)|` if the true value is among the values of the
/// asked kind that `text` names, else 0 (0 for an unknown country).
pub fn answer_share(facts: &FactTable, entity: &str, attr: Attribute, text: &str) -> f64 {
    let ws = words(text);
    let asked: BTreeSet<&str> = ws
        .iter()
        .map(String::as_str)
        .filter(|w| facts.kind_of(w) == Some(attr))
        .collect();
    answer_of(facts.entity(entity), entity, attr, &asked).0
}

/// `answer(y)` from the values of the asked kind that `y` names, with its rationale.
fn answer_of(
    truth: Option<&Entity>,
    entity: &str,
    attr: Attribute,
    asked: &BTreeSet<&str>,
) -> (f64, String) {
    let list = asked.iter().copied().collect::<Vec<_>>().join(", ");
    let Some(e) = truth else {
        return (0.0, format!("unknown country `{entity}`"));
    };
    let v = e.value(attr).to_lowercase();
    if asked.contains(v.as_str()) {
        (
            1.0 / asked.len() as f64,
            format!("names the true {} ({v}) among [{list}]", attr.name()),
        )
    } else if asked.is_empty() {
        (0.0, format!("names no {}", attr.name()))
    } else {
        (
            0.0,
            format!("names [{list}], the true {} is {v}", attr.name()),
        )
    }
}

/// `1 + round(4·r)`: a reward in `[0, 1]` as an UltraFeedback-style rating 1–5.
pub fn rating(reward: f64) -> u8 {
    1 + (4.0 * reward.clamp(0.0, 1.0)).round() as u8
}
