//! Preference targets: from per-dimension ratings to the distribution a listwise loss fits.
//!
//! ```text
//! p*(k)_i = softmax_i(r_k(y_i) / T)            per dimension k          (paper Eq. 13)
//! p^λ_i   = Σ_k λ_k p*(k)_i ,  λ ∈ Δ^m          the mixture              (paper Eq. 9)
//! ψ_i     = Σ_k λ_k r_k(y_i)                    mixed grade (LiPO-λ gains)
//! ```
//!
//! Any numeric scale goes through the same function: UltraFeedback 1–5, HelpSteer 0–4, or a
//! pairwise record as ratings `[1, 0]`. `T = 0` is the hard limit of the softmax (uniform over the
//! best responses), so a pairwise record with `T = 0` gives the one-hot target DPO assumes.
//!
//! Missing ratings ("N/A", empty, null) are an explicit [`MissingPolicy`]. Parsing rating
//! *strings* is here too ([`parse_rating`]) because it decides what counts as missing; reading
//! files is not (no I/O in this crate).

use serde::{Deserialize, Serialize};

use crate::error::{MathError, Result};
use crate::special::{
    check_finite, check_len, check_param, check_simplex, softmax, SIMPLEX_TOLERANCE,
};

/// What to do when a response has no rating on a dimension.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "policy", content = "value")]
pub enum MissingPolicy {
    /// Substitute this rating (the authors' code uses 1.0, the bottom of UltraFeedback's scale).
    Default(f64),
    /// Leave the dimension out for this prompt and renormalise λ over the remaining dimensions.
    DropDimension,
    /// Refuse the prompt with [`MathError::MissingRating`].
    Error,
}

/// The target of a loss for one prompt: a distribution over its N responses plus graded labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// `p^λ`: target probability of each response (on the simplex). λ-DPO fits it; pairwise
    /// losses take its best and worst response; ListMLE ranks by it.
    pub probs: Vec<f64>,
    /// `ψ`: graded relevance of each response, used only by LiPO-λ's gains `G = 2^ψ − 1`.
    /// [`mixed_target`] sets it to the λ-mixed ratings; [`Target::from_probs`] to the probabilities.
    pub grades: Vec<f64>,
}

impl Target {
    /// A target from a probability vector; the grades are the probabilities themselves.
    pub fn from_probs(probs: Vec<f64>) -> Result<Self> {
        check_simplex("target.probs", &probs, SIMPLEX_TOLERANCE)?;
        Ok(Self {
            grades: probs.clone(),
            probs,
        })
    }

    /// A target with explicit grades (same length as `probs`, finite).
    pub fn with_grades(probs: Vec<f64>, grades: Vec<f64>) -> Result<Self> {
        check_simplex("target.probs", &probs, SIMPLEX_TOLERANCE)?;
        check_len("target.grades", grades.len(), probs.len(), "response")?;
        check_finite("target.grades", &grades)?;
        Ok(Self { probs, grades })
    }

    /// The one-hot target of a pairwise record (`index` preferred over all others).
    pub fn one_hot(n: usize, index: usize) -> Result<Self> {
        if n < 2 {
            return Err(MathError::TooFewResponses { n });
        }
        if index >= n {
            return Err(MathError::OutOfDomain {
                what: "one_hot.index",
                index,
                value: index as f64,
                expected: "an index smaller than the number of responses",
            });
        }
        let mut probs = vec![0.0; n];
        probs[index] = 1.0;
        Self::from_probs(probs)
    }

    /// Number of responses.
    pub fn len(&self) -> usize {
        self.probs.len()
    }

    /// Whether the target is empty (never true for a validated target).
    pub fn is_empty(&self) -> bool {
        self.probs.is_empty()
    }
}

/// A mixed target together with how it was formed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixedTarget {
    /// The target (`p^λ` and mixed grades).
    pub target: Target,
    /// The λ actually used: the input λ, or renormalised after dropping dimensions.
    pub lambda: Vec<f64>,
    /// Dimensions left out because of missing ratings (only with [`MissingPolicy::DropDimension`]).
    pub dropped: Vec<usize>,
}

/// Parse one rating as datasets write it: a number (`"4"`, `"4.5"`, `" 3 "`), or missing
/// (`"N/A"`, `"n/a"`, `"NA"`, `""`, `"null"`, `"none"`, `"-"`). Anything else is an error, so a
/// typo is not silently treated as missing.
pub fn parse_rating(text: &str) -> std::result::Result<Option<f64>, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if matches!(lower.as_str(), "" | "n/a" | "na" | "null" | "none" | "-") {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(format!(
            "rating {text:?} is neither a number nor a missing marker (N/A, empty, null)"
        )),
    }
}

/// `p* = softmax(r / T)` over the responses of one dimension (paper Eq. 13).
///
/// `T > 0` is the usual softmax; `T = 0` is its limit, uniform over the responses with the
/// highest rating (one-hot when the best is unique).
pub fn preference_distribution(ratings: &[f64], temperature: f64) -> Result<Vec<f64>> {
    if ratings.len() < 2 {
        return Err(MathError::TooFewResponses { n: ratings.len() });
    }
    check_finite("ratings", ratings)?;
    check_param(
        "temperature",
        temperature,
        temperature >= 0.0,
        "T ≥ 0 (0 = hard argmax)",
    )?;
    if temperature == 0.0 {
        // The T → 0 limit of softmax(r/T): all mass on the best responses, split evenly among
        // ties (what the softmax converges to), so a pairwise [1, 0] record becomes one-hot.
        let max = ratings.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let count = ratings.iter().filter(|&&r| r == max).count() as f64;
        return Ok(ratings
            .iter()
            .map(|&r| if r == max { 1.0 / count } else { 0.0 })
            .collect());
    }
    // `r / T`, not `r · (1/T)`: the same rounding as torch's `softmax(r / T)`, so parity is exact.
    let scaled: Vec<f64> = ratings.iter().map(|r| r / temperature).collect();
    Ok(softmax(&scaled))
}

/// The mixture target for one prompt: `p^λ = Σ_k λ_k softmax(r_k / T)` (paper Eq. 9 and 13).
///
/// `ratings[k][i]` is the rating of response `i` on dimension `k` (`None` = missing). `lambda`
/// has one weight per dimension and must lie on the simplex. Missing ratings follow `missing`;
/// with [`MissingPolicy::DropDimension`] every dimension with a missing rating is left out and λ
/// is renormalised over the rest (an error if no weight is left).
pub fn mixed_target(
    ratings: &[Vec<Option<f64>>],
    lambda: &[f64],
    temperature: f64,
    missing: MissingPolicy,
) -> Result<MixedTarget> {
    if ratings.is_empty() {
        return Err(MathError::Empty { what: "ratings" });
    }
    check_len(
        "lambda",
        lambda.len(),
        ratings.len(),
        "preference dimension",
    )?;
    check_simplex("lambda", lambda, SIMPLEX_TOLERANCE)?;
    let n = ratings[0].len();
    if n < 2 {
        return Err(MathError::TooFewResponses { n });
    }
    for row in ratings {
        check_len("ratings[k]", row.len(), n, "response")?;
    }
    if let MissingPolicy::Default(v) = missing {
        check_param("missing default rating", v, true, "a finite rating")?;
    }

    // Resolve every dimension to complete ratings or to "dropped" before mixing anything, so an
    // `Error` policy fails without partial work and the dropped list is complete.
    let mut dims: Vec<Option<Vec<f64>>> = Vec::with_capacity(ratings.len());
    let mut dropped = Vec::new();
    for (k, row) in ratings.iter().enumerate() {
        let first_missing = row.iter().position(Option::is_none);
        match (first_missing, missing) {
            (None, _) => dims.push(Some(row.iter().map(|r| r.unwrap_or(0.0)).collect())),
            (Some(_), MissingPolicy::Default(v)) => {
                dims.push(Some(row.iter().map(|r| r.unwrap_or(v)).collect()))
            }
            (Some(_), MissingPolicy::DropDimension) => {
                dropped.push(k);
                dims.push(None);
            }
            (Some(i), MissingPolicy::Error) => {
                return Err(MathError::MissingRating {
                    dimension: k,
                    response: i,
                })
            }
        }
    }

    // Renormalise λ over the surviving dimensions. With nothing dropped this divides by the
    // input sum (1 within 1e-6), which also removes the small drift a sampler may leave.
    let kept_mass: f64 = lambda
        .iter()
        .zip(&dims)
        .filter(|(_, d)| d.is_some())
        .map(|(l, _)| l)
        .sum();
    if kept_mass <= 0.0 {
        return Err(MathError::NoUsableDimension);
    }
    let lambda_used: Vec<f64> = lambda
        .iter()
        .zip(&dims)
        .map(|(l, d)| if d.is_some() { l / kept_mass } else { 0.0 })
        .collect();

    // Accumulate dimension by dimension in the input order, so the same ratings and λ give
    // bit-identical targets (ties in p^λ stay exact ties, which ListMLE's tie rule relies on).
    let mut probs = vec![0.0; n];
    let mut grades = vec![0.0; n];
    for (lk, dim) in lambda_used.iter().zip(&dims) {
        let Some(r) = dim else { continue };
        check_finite("ratings[k]", r)?;
        let p = preference_distribution(r, temperature)?;
        for i in 0..n {
            probs[i] += lk * p[i];
            grades[i] += lk * r[i];
        }
    }
    Ok(MixedTarget {
        target: Target { probs, grades },
        lambda: lambda_used,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_target_and_hard_limit() {
        let p = preference_distribution(&[5.0, 3.0], 1.0).unwrap();
        assert!((p[0] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
        assert_eq!(
            preference_distribution(&[1.0, 0.0], 0.0).unwrap(),
            vec![1.0, 0.0]
        );
        assert_eq!(
            preference_distribution(&[2.0, 2.0, 1.0, 0.0], 0.0).unwrap(),
            vec![0.5, 0.5, 0.0, 0.0]
        );
    }

    #[test]
    fn parse_rating_accepts_numbers_and_missing_markers() {
        assert_eq!(parse_rating(" 4 "), Ok(Some(4.0)));
        assert_eq!(parse_rating("N/A"), Ok(None));
        assert_eq!(parse_rating(""), Ok(None));
        assert!(parse_rating("four").is_err());
    }

    #[test]
    fn drop_dimension_renormalises_lambda() {
        let ratings = vec![
            vec![Some(5.0), Some(1.0)],
            vec![None, Some(2.0)],
            vec![Some(1.0), Some(3.0)],
        ];
        let m = mixed_target(
            &ratings,
            &[0.5, 0.25, 0.25],
            1.0,
            MissingPolicy::DropDimension,
        )
        .unwrap();
        assert_eq!(m.dropped, vec![1]);
        assert!((m.lambda[0] - 2.0 / 3.0).abs() < 1e-15 && m.lambda[1] == 0.0);
        let s: f64 = m.target.probs.iter().sum();
        assert!((s - 1.0).abs() < 1e-12);
        let err = mixed_target(
            &ratings,
            &[0.0, 1.0, 0.0],
            1.0,
            MissingPolicy::DropDimension,
        );
        assert_eq!(err.unwrap_err(), MathError::NoUsableDimension);
        let err = mixed_target(&ratings, &[0.5, 0.25, 0.25], 1.0, MissingPolicy::Error);
        assert_eq!(
            err.unwrap_err(),
            MathError::MissingRating {
                dimension: 1,
                response: 0
            }
        );
    }

    #[test]
    fn default_policy_substitutes_the_value() {
        let ratings = vec![vec![None, Some(3.0)]];
        let m = mixed_target(&ratings, &[1.0], 1.0, MissingPolicy::Default(1.0)).unwrap();
        let p = preference_distribution(&[1.0, 3.0], 1.0).unwrap();
        assert_eq!(m.target.probs, p);
        assert_eq!(m.target.grades, vec![1.0, 3.0]);
    }
}
