//! MMLU's 57 subjects, their lm-eval categories, and the group scores lm-eval reports
//! (`mmlu_stem`, `mmlu_other`, `mmlu_social_sciences`, `mmlu_humanities`, `mmlu`).
//!
//! ```text
//! category group = aggregate_group(its evaluated subjects)
//! mmlu           = aggregate_group(all evaluated subjects)   (leaves, not the four categories)
//! ```
//!
//! The table is lm-eval 0.4.13's (`tasks/mmlu/default/mmlu_<subject>.yaml`, `tag`).

use super::metrics::{aggregate_group, GroupScore, LeafScore};
use MmluCategory::{Humanities as H, Other as O, SocialSciences as S, Stem as T};

/// An MMLU category (lm-eval's subgroup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MmluCategory {
    Stem,
    Other,
    SocialSciences,
    Humanities,
}

impl MmluCategory {
    /// In the order of lm-eval's `_mmlu.yaml`.
    pub const ALL: [MmluCategory; 4] = [
        MmluCategory::Stem,
        MmluCategory::Other,
        MmluCategory::SocialSciences,
        MmluCategory::Humanities,
    ];

    /// lm-eval's group name, e.g. `mmlu_social_sciences`.
    pub fn group(self) -> &'static str {
        match self {
            MmluCategory::Stem => "mmlu_stem",
            MmluCategory::Other => "mmlu_other",
            MmluCategory::SocialSciences => "mmlu_social_sciences",
            MmluCategory::Humanities => "mmlu_humanities",
        }
    }

    /// lm-eval's `group_alias`, e.g. `social sciences`.
    pub fn alias(self) -> &'static str {
        match self {
            MmluCategory::Stem => "stem",
            MmluCategory::Other => "other",
            MmluCategory::SocialSciences => "social sciences",
            MmluCategory::Humanities => "humanities",
        }
    }
}

/// lm-eval's alias of an MMLU group (`mmlu_social_sciences` → `social sciences`; `mmlu`
/// itself, and any other name, is its own alias).
pub fn group_alias(group: &str) -> &str {
    MmluCategory::ALL
        .iter()
        .find(|c| c.group() == group)
        .map_or(group, |c| c.alias())
}

/// The category of a subject (`abstract_algebra`, …), `None` for an unknown name.
pub fn mmlu_category(subject: &str) -> Option<MmluCategory> {
    MMLU_SUBJECTS
        .iter()
        .find(|(s, _)| *s == subject)
        .map(|(_, c)| *c)
}

/// Group scores in lm-eval's order (the four categories that have evaluated subjects, then
/// `mmlu`), from `(subject, leaf score)` pairs. Unknown subjects only count towards `mmlu`.
pub fn mmlu_groups(leaves: &[(&str, LeafScore)]) -> Vec<(&'static str, GroupScore)> {
    let mut out = Vec::new();
    for cat in MmluCategory::ALL {
        let ls: Vec<LeafScore> = leaves
            .iter()
            .filter(|(s, _)| mmlu_category(s) == Some(cat))
            .map(|(_, l)| *l)
            .collect();
        if !ls.is_empty() {
            out.push((cat.group(), aggregate_group(&ls)));
        }
    }
    if !leaves.is_empty() {
        let all: Vec<LeafScore> = leaves.iter().map(|(_, l)| *l).collect();
        out.push(("mmlu", aggregate_group(&all)));
    }
    out
}

/// `(subject, category)` for all 57 subjects, alphabetical.
#[rustfmt::skip]
pub const MMLU_SUBJECTS: [(&str, MmluCategory); 57] = [
    ("abstract_algebra", T),
    ("anatomy", T),
    ("astronomy", T),
    ("business_ethics", O),
    ("clinical_knowledge", O),
    ("college_biology", T),
    ("college_chemistry", T),
    ("college_computer_science", T),
    ("college_mathematics", T),
    ("college_medicine", O),
    ("college_physics", T),
    ("computer_security", T),
    ("conceptual_physics", T),
    ("econometrics", S),
    ("electrical_engineering", T),
    ("elementary_mathematics", T),
    ("formal_logic", H),
    ("global_facts", O),
    ("high_school_biology", T),
    ("high_school_chemistry", T),
    ("high_school_computer_science", T),
    ("high_school_european_history", H),
    ("high_school_geography", S),
    ("high_school_government_and_politics", S),
    ("high_school_macroeconomics", S),
    ("high_school_mathematics", T),
    ("high_school_microeconomics", S),
    ("high_school_physics", T),
    ("high_school_psychology", S),
    ("high_school_statistics", T),
    ("high_school_us_history", H),
    ("high_school_world_history", H),
    ("human_aging", O),
    ("human_sexuality", S),
    ("international_law", H),
    ("jurisprudence", H),
    ("logical_fallacies", H),
    ("machine_learning", T),
    ("management", O),
    ("marketing", O),
    ("medical_genetics", O),
    ("miscellaneous", O),
    ("moral_disputes", H),
    ("moral_scenarios", H),
    ("nutrition", O),
    ("philosophy", H),
    ("prehistory", H),
    ("professional_accounting", O),
    ("professional_law", H),
    ("professional_medicine", O),
    ("professional_psychology", S),
    ("public_relations", S),
    ("security_studies", S),
    ("sociology", S),
    ("us_foreign_policy", S),
    ("virology", O),
    ("world_religions", H),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_lm_evals_category_sizes() {
        let count = |c| MMLU_SUBJECTS.iter().filter(|(_, k)| *k == c).count();
        assert_eq!(
            MmluCategory::ALL.map(count),
            [19, 13, 12, 13],
            "stem, other, social sciences, humanities"
        );
        assert_eq!(mmlu_category("philosophy"), Some(MmluCategory::Humanities));
        assert_eq!(mmlu_category("nope"), None);
    }
}
