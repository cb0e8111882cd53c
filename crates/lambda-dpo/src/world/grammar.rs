//! The world's language: question templates, the response grammar and its knobs, and the choice
//! of candidate lists that contain trade-offs.
//!
//! ```text
//! response = [opening] answer {detail}^d [closing]
//! answer   = bare ("Olm.")  |  sentence ("The capital of Varnia is Olm.")
//! detail   = a true fact about another attribute ("Its flag is red.")
//! opening  = "Great question!" | "Happy to help."
//! closing  = "I hope this helps!" | "Thank you for asking."
//! ```
//!
//! A [`Profile`] sets the knobs: the answer right or wrong, bare or a sentence, 0–2 politeness
//! phrases, 0–2 detail sentences. Politeness and detail cost words (brevity), so no single
//! response is best for every λ. What does not live here: the scoring (`rewards`).

use lambda_dpo_math::rng::Rng;

use super::facts::{Attribute, Entity, FactTable};

/// Politeness phrases placed before the answer.
pub const OPENINGS: [&str; 2] = ["Great question!", "Happy to help."];
/// Politeness phrases placed after the answer.
pub const CLOSINGS: [&str; 2] = ["I hope this helps!", "Thank you for asking."];

/// Question templates per attribute (`{}` is the country).
pub fn question_templates(attr: Attribute) -> [&'static str; 2] {
    match attr {
        Attribute::Capital => [
            "What is the capital of {}?",
            "Which city is the capital of {}?",
        ],
        Attribute::Flag => [
            "What color is the flag of {}?",
            "Tell me the color of {}'s flag.",
        ],
        Attribute::Export => ["What does {} export?", "What is the main export of {}?"],
        Attribute::Animal => [
            "What is the national animal of {}?",
            "Which animal is the symbol of {}?",
        ],
    }
}

/// Templates of the "tell me everything" prompts whose answer is every fact of a country.
pub const FACT_TEMPLATES: [&str; 2] = ["Tell me about {}.", "What do you know about {}?"];

pub fn fill(template: &str, entity: &str) -> String {
    template.replace("{}", entity)
}

/// The full-sentence statement of one fact.
pub fn sentence(entity: &Entity, attr: Attribute, value: &str) -> String {
    let e = entity.name;
    match attr {
        Attribute::Capital => format!("The capital of {e} is {value}."),
        Attribute::Flag => format!("The flag of {e} is {value}."),
        Attribute::Export => format!("{e} exports {value}."),
        Attribute::Animal => format!("The national animal of {e} is the {value}."),
    }
}

/// The one-word answer ("Olm.", "Red.").
pub fn bare(value: &str) -> String {
    let mut c = value.chars();
    match c.next() {
        Some(f) => format!("{}{}.", f.to_uppercase(), c.as_str()),
        None => ".".into(),
    }
}

/// A detail sentence: a fact about the country, without naming it.
pub fn detail_sentence(attr: Attribute, value: &str) -> String {
    match attr {
        Attribute::Capital => format!("Its capital is {value}."),
        Attribute::Flag => format!("Its flag is {value}."),
        Attribute::Export => format!("It exports {value}."),
        Attribute::Animal => format!("Its national animal is the {value}."),
    }
}

/// Every fact of a country, as sentences in attribute order.
pub fn fact_statement(entity: &Entity) -> String {
    Attribute::ALL
        .iter()
        .map(|&a| sentence(entity, a, entity.value(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The knobs of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Profile {
    /// The answer states the true value (else another value of the same kind).
    pub correct: bool,
    /// One word instead of a full sentence.
    pub bare: bool,
    /// Politeness phrases, 0–2.
    pub polite: u8,
    /// Detail sentences (true facts about other attributes), 0–2.
    pub detail: u8,
}

impl Profile {
    /// All 36 profiles, in a fixed order.
    pub fn all() -> Vec<Profile> {
        let mut out = Vec::with_capacity(36);
        for correct in [true, false] {
            for bare in [true, false] {
                for polite in 0..=2 {
                    for detail in 0..=2 {
                        out.push(Profile {
                            correct,
                            bare,
                            polite,
                            detail,
                        });
                    }
                }
            }
        }
        out
    }

    /// A short label, used as the UltraFeedback `model` name.
    pub fn label(&self) -> String {
        format!(
            "{}-{}-polite{}-detail{}",
            if self.correct { "right" } else { "wrong" },
            if self.bare { "bare" } else { "sentence" },
            self.polite,
            self.detail
        )
    }
}

/// Writes a response to `(entity, attr)` with the knobs of `profile`; the free choices (which
/// wrong value, which phrases, which details and their order) come from `rng`.
pub fn realize(
    facts: &FactTable,
    entity: &Entity,
    attr: Attribute,
    profile: Profile,
    rng: &mut Rng,
) -> String {
    let truth = entity.value(attr);
    let value = if profile.correct {
        truth
    } else {
        let wrong: Vec<&str> = facts
            .values(attr)
            .into_iter()
            .filter(|v| *v != truth)
            .collect();
        if wrong.is_empty() {
            // A one-country world has no other capital to get wrong: say something else.
            "Nowhere"
        } else {
            wrong[rng.below(wrong.len() as u64) as usize]
        }
    };
    let answer = if profile.bare {
        bare(value)
    } else {
        sentence(entity, attr, value)
    };
    let (mut opening, mut closing) = (None, None);
    match profile.polite {
        0 => {}
        1 => {
            let k = rng.below(4) as usize;
            if k < 2 {
                opening = Some(OPENINGS[k]);
            } else {
                closing = Some(CLOSINGS[k - 2]);
            }
        }
        _ => {
            opening = Some(OPENINGS[rng.below(2) as usize]);
            closing = Some(CLOSINGS[rng.below(2) as usize]);
        }
    }
    let mut others: Vec<Attribute> = Attribute::ALL.into_iter().filter(|&a| a != attr).collect();
    shuffle(&mut others, rng);
    let mut parts: Vec<String> = Vec::new();
    parts.extend(opening.map(str::to_string));
    parts.push(answer);
    for &a in others.iter().take(profile.detail as usize) {
        parts.push(detail_sentence(a, entity.value(a)));
    }
    parts.extend(closing.map(str::to_string));
    parts.join(" ")
}

/// Fisher–Yates with the world's generator.
pub fn shuffle<T>(xs: &mut [T], rng: &mut Rng) {
    for i in (1..xs.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        xs.swap(i, j);
    }
}

/// `n` distinct profiles drawn uniformly (all of them, shuffled, when `n ≥ 36`), with the
/// answer right with probability `p_correct` where the draw allows.
pub fn diverse_profiles(n: usize, p_correct: f64, rng: &mut Rng) -> Vec<Profile> {
    let mut right: Vec<Profile> = Profile::all().into_iter().filter(|p| p.correct).collect();
    let mut wrong: Vec<Profile> = Profile::all().into_iter().filter(|p| !p.correct).collect();
    shuffle(&mut right, rng);
    shuffle(&mut wrong, rng);
    let mut out = Vec::with_capacity(n);
    while out.len() < n && !(right.is_empty() && wrong.is_empty()) {
        let take_right = (rng.uniform() < p_correct && !right.is_empty()) || wrong.is_empty();
        out.push(if take_right {
            right.pop().expect("non-empty")
        } else {
            wrong.pop().expect("non-empty")
        });
    }
    out
}

/// Lexicographic worth of a candidate list (see [`tradeoff_score`]).
pub type TradeoffScore = (usize, usize, usize, usize);

/// How much a candidate list is worth as preference data: the number of distinct responses
/// that are the unique best on some dimension (the trade-offs), then whether correctness has
/// both levels, then the number of distinct rating levels per dimension, then how many
/// candidates are not Pareto-dominated. Compared lexicographically.
pub fn tradeoff_score(rewards: &[Vec<f64>]) -> TradeoffScore {
    let n = rewards.len();
    if n == 0 {
        return (0, 0, 0, 0);
    }
    let m = rewards[0].len();
    let mut winners: Vec<usize> = Vec::new();
    let mut levels = 0;
    for k in 0..m {
        let best = rewards
            .iter()
            .map(|r| r[k])
            .fold(f64::NEG_INFINITY, f64::max);
        let at_best: Vec<usize> = (0..n).filter(|&i| rewards[i][k] == best).collect();
        if at_best.len() == 1 && !winners.contains(&at_best[0]) {
            winners.push(at_best[0]);
        }
        let mut vals: Vec<i64> = rewards
            .iter()
            .map(|r| (r[k] * 1e6).round() as i64)
            .collect();
        vals.sort_unstable();
        vals.dedup();
        levels += vals.len();
    }
    let both_correct_levels = {
        let c: Vec<bool> = rewards.iter().map(|r| r[0] >= 1.0).collect();
        usize::from(c.iter().any(|&x| x) && c.iter().any(|&x| !x))
    };
    let dominated = |i: usize| {
        (0..n).any(|j| {
            j != i
                && (0..m).all(|k| rewards[j][k] >= rewards[i][k])
                && (0..m).any(|k| rewards[j][k] > rewards[i][k])
        })
    };
    let front = (0..n).filter(|&i| !dominated(i)).count();
    (winners.len(), both_correct_levels, levels, front)
}
