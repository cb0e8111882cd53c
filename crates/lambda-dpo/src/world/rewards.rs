//! The exact reward functions: four numbers in `[0, 1]` for any (prompt, text) pair, including
//! garbage and the empty string (nothing here can panic on model output).
//!
//! ```text
//! words(y)     = maximal alphanumeric runs of y, lowercased      (for facts and phrases)
//! V_a(y)       = distinct values of kind a named in words(y)     (capitals, colours, …)
//! correctness  = 1/|V_q(y)| if the true value v* ∈ V_q(y) else 0  (q = the asked attribute;
//!                naming the right value among others is hedging: it earns a share)
//! brevity      = 0 if y has no word, else clamp((20 − w)/19, 0, 1), w = whitespace words
//!                (1 word → 1, 20 or more → 0)
//! politeness   = min(#distinct politeness phrases in y, 2) / 2
//! detail       = min(#attributes a ≠ q with V_a(y) = {true value of a}, 2) / 2
//! ```
//!
//! What does not live here: the phrasing (`grammar`), the fact table (`facts`).

use std::collections::BTreeSet;

use super::facts::{Attribute, FactTable};
use super::grammar::{CLOSINGS, OPENINGS};

/// The dimensions, in the fixed order every reward vector and λ uses.
pub const DIMENSIONS: [&str; 4] = ["correctness", "brevity", "politeness", "detail"];

/// Whitespace words at which brevity reaches 0.
pub const BREVITY_ZERO_WORDS: usize = 20;

/// The lowercase alphanumeric words of `text`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The rewards of `text` as an answer to the question about `attr` of country `entity`, with a
/// one-line rationale per dimension. An unknown country scores 0 on correctness and detail.
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
    let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");

    let asked = &named[attr.index()];
    let (correctness, why_c) = match truth {
        None => (0.0, format!("unknown country `{entity}`")),
        Some(e) => {
            let v = e.value(attr).to_lowercase();
            if asked.contains(v.as_str()) {
                (
                    1.0 / asked.len() as f64,
                    format!(
                        "names the true {} ({v}) among [{}]",
                        attr.name(),
                        list(asked)
                    ),
                )
            } else if asked.is_empty() {
                (0.0, format!("names no {}", attr.name()))
            } else {
                (
                    0.0,
                    format!("names [{}], the true {} is {v}", list(asked), attr.name()),
                )
            }
        }
    };

    let w = text.split_whitespace().count();
    let brevity = if w == 0 {
        0.0
    } else {
        ((BREVITY_ZERO_WORDS as f64 - w as f64) / (BREVITY_ZERO_WORDS as f64 - 1.0)).clamp(0.0, 1.0)
    };
    let why_b = format!("{w} words");

    let joined = format!(" {} ", ws.join(" "));
    let phrases: Vec<&str> = OPENINGS
        .iter()
        .chain(CLOSINGS.iter())
        .copied()
        .filter(|p| joined.contains(&format!(" {} ", words(p).join(" "))))
        .collect();
    let politeness = phrases.len().min(2) as f64 / 2.0;
    let why_p = format!("{} politeness phrase(s)", phrases.len());

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
    let detail = details.len().min(2) as f64 / 2.0;
    let why_d = format!("true details: [{}]", details.join(", "));

    (
        [correctness, brevity, politeness, detail],
        [why_c, why_b, why_p, why_d],
    )
}

/// `1 + round(4·r)`: a reward in `[0, 1]` as an UltraFeedback-style rating 1–5.
pub fn rating(reward: f64) -> u8 {
    1 + (4.0 * reward.clamp(0.0, 1.0)).round() as u8
}
