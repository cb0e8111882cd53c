//! The world's language: question templates, the response grammar and its knobs, and the choice
//! of candidate lists that contain trade-offs.
//!
//! ```text
//! response = {opening} answer {detail} {caution} {closing}
//! answer   = "Its capital is Olm."                      (the asked fact, right or wrong)
//! opening  = "Great question!" | "Happy to help."       (politeness, before the answer)
//! closing  = "I hope this helps!" | "Thank you for asking."   (politeness, after it)
//! detail   = a true fact about another attribute ("Its flag is red.")
//! caution  = "I may be wrong about this." | "Please check an official source."
//!          | "Facts can change over time." | "Sources sometimes disagree."
//! ```
//!
//! Every sentence after the answer spends one of [`BUDGET`] units that brevity keeps when they
//! are not spent, so politeness, detail, caution and brevity compete for the same four units
//! (see `rewards` for why the best response at λ spends `4·λ_k` of them on dimension k). A
//! [`Profile`] sets the knobs: the answer right or wrong, 0–4 politeness phrases, 0–3 detail
//! sentences, 0–4 caution phrases, at most [`BUDGET`] in all. What does not live here: the
//! scoring (`rewards`).

use lambda_dpo_math::rng::Rng;

use super::facts::{Attribute, Entity, FactTable};

/// Sentences a response can add after its answer; brevity is the share left unspent.
pub const BUDGET: u8 = 4;

/// Politeness phrases placed before the answer.
pub const OPENINGS: [&str; 2] = ["Great question!", "Happy to help."];
/// Politeness phrases placed after the answer.
pub const CLOSINGS: [&str; 2] = ["I hope this helps!", "Thank you for asking."];
/// Caution phrases, placed after the details.
pub const CAUTIONS: [&str; 4] = [
    "I may be wrong about this.",
    "Please check an official source.",
    "Facts can change over time.",
    "Sources sometimes disagree.",
];

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
    /// Politeness phrases, 0–4.
    pub polite: u8,
    /// Detail sentences (true facts about other attributes), 0–3.
    pub detail: u8,
    /// Caution phrases, 0–4.
    pub caution: u8,
}

impl Profile {
    /// All 68 profiles (34 ways to spend at most [`BUDGET`] sentences, right or wrong), in a
    /// fixed order: right before wrong, fewer sentences first.
    pub fn all() -> Vec<Profile> {
        let mut out = Vec::with_capacity(68);
        for correct in [true, false] {
            for spent in 0..=BUDGET {
                for polite in 0..=spent {
                    for detail in 0..=(spent - polite).min(3) {
                        out.push(Profile {
                            correct,
                            polite,
                            detail,
                            caution: spent - polite - detail,
                        });
                    }
                }
            }
        }
        out
    }

    /// Sentences after the answer.
    pub fn spent(&self) -> u8 {
        self.polite + self.detail + self.caution
    }

    /// A short label, used as the UltraFeedback `model` name.
    pub fn label(&self) -> String {
        format!(
            "{}-polite{}-detail{}-caution{}",
            if self.correct { "right" } else { "wrong" },
            self.polite,
            self.detail,
            self.caution
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
    // "Its capital is Olm.": the answer does not repeat the country's name (a small model
    // would have to copy it from the question, and gets it wrong).
    let answer = detail_sentence(attr, value);
    // Which politeness phrases: a random subset of the four; openings go first.
    let mut phrases: Vec<usize> = (0..OPENINGS.len() + CLOSINGS.len()).collect();
    shuffle(&mut phrases, rng);
    phrases.truncate(profile.polite as usize);
    phrases.sort_unstable();
    let mut cautions: Vec<&str> = CAUTIONS.to_vec();
    shuffle(&mut cautions, rng);
    let mut others: Vec<Attribute> = Attribute::ALL.into_iter().filter(|&a| a != attr).collect();
    shuffle(&mut others, rng);
    let mut parts: Vec<String> = Vec::new();
    for &i in phrases.iter().filter(|&&i| i < OPENINGS.len()) {
        parts.push(OPENINGS[i].to_string());
    }
    parts.push(answer);
    for &a in others.iter().take(profile.detail as usize) {
        parts.push(detail_sentence(a, entity.value(a)));
    }
    for c in cautions.iter().take(profile.caution as usize) {
        parts.push(c.to_string());
    }
    for &i in phrases.iter().filter(|&&i| i >= OPENINGS.len()) {
        parts.push(CLOSINGS[i - OPENINGS.len()].to_string());
    }
    parts.join(" ")
}

/// Fisher–Yates with the world's generator.
pub fn shuffle<T>(xs: &mut [T], rng: &mut Rng) {
    for i in (1..xs.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        xs.swap(i, j);
    }
}

/// `n` distinct profiles drawn uniformly (all of them, shuffled, when `n ≥ 68`), with the
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
pub type TradeoffScore = (usize, usize, usize);

/// How much a candidate list is worth as preference data: the number of distinct responses
/// that are the unique best on some dimension (the trade-offs), then the number of distinct
/// rating levels per dimension, then how many candidates are not Pareto-dominated. Compared
/// lexicographically.
pub fn tradeoff_score(rewards: &[Vec<f64>]) -> TradeoffScore {
    let n = rewards.len();
    if n == 0 {
        return (0, 0, 0);
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
    let dominated = |i: usize| {
        (0..n).any(|j| {
            j != i
                && (0..m).all(|k| rewards[j][k] >= rewards[i][k])
                && (0..m).any(|k| rewards[j][k] > rewards[i][k])
        })
    };
    let front = (0..n).filter(|&i| !dominated(i)).count();
    (winners.len(), levels, front)
}
