//! The one error type of the crate: every public function validates its inputs and returns a
//! [`MathError`] instead of producing NaN or panicking. Messages say what was expected, what was
//! found and, where it helps, a `hint:` for the caller (the CLI prints them as they are).

use thiserror::Error;

/// Why a math routine refused its inputs.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MathError {
    /// A list-wise quantity needs at least two responses.
    #[error("expected at least 2 responses, found {n}; hint: a prompt with a single response carries no preference")]
    TooFewResponses {
        /// Number of responses found.
        n: usize,
    },

    /// Two inputs that describe the same responses (or dimensions) disagree in length.
    #[error("`{what}` has {found} entries, expected {expected} (one per {per})")]
    LengthMismatch {
        /// Name of the offending input.
        what: &'static str,
        /// Length implied by the other inputs.
        expected: usize,
        /// Length found.
        found: usize,
        /// What one entry stands for ("response", "dimension", …).
        per: &'static str,
    },

    /// An input that must be a finite number is NaN or infinite.
    #[error("`{what}[{index}]` is {value}, expected a finite number")]
    NonFinite {
        /// Name of the offending input.
        what: &'static str,
        /// Position inside it.
        index: usize,
        /// The value found.
        value: f64,
    },

    /// A vector that must lie on the probability simplex does not.
    #[error("`{what}` must lie on the probability simplex (entries ≥ 0, sum 1 within {tolerance:e}); found sum {sum} and minimum {min}; hint: normalise it, or check the source of the weights")]
    NotOnSimplex {
        /// Name of the offending input.
        what: &'static str,
        /// Sum of the entries.
        sum: f64,
        /// Smallest entry.
        min: f64,
        /// The tolerance applied.
        tolerance: f64,
    },

    /// A hyper-parameter is outside its domain.
    #[error("parameter `{name}` = {value} is invalid: expected {expected}")]
    InvalidParameter {
        /// Parameter name as documented.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The accepted domain, in words.
        expected: &'static str,
    },

    /// A value is finite but outside the domain the formula needs (e.g. ORPO needs p(y) < 1).
    #[error("`{what}[{index}]` = {value} is out of domain: expected {expected}")]
    OutOfDomain {
        /// Name of the offending input.
        what: &'static str,
        /// Position inside it.
        index: usize,
        /// The value found.
        value: f64,
        /// The accepted domain, in words.
        expected: &'static str,
    },

    /// Every response has the same target probability, so best and worst are undefined.
    #[error("the target does not prefer any response over another (all {n} target probabilities are equal); hint: pairwise losses need a strict preference, skip such prompts")]
    NoPreference {
        /// Number of responses.
        n: usize,
    },

    /// A rating is missing and the policy says that is an error.
    #[error("rating for dimension {dimension} of response {response} is missing; hint: choose a missing-rating policy of `default` (e.g. 1.0, as the authors' code) or `drop-dimension`")]
    MissingRating {
        /// Dimension index.
        dimension: usize,
        /// Response index.
        response: usize,
    },

    /// After dropping dimensions with missing ratings, no λ weight is left.
    #[error("no preference dimension is usable for this prompt: every dimension with λ > 0 has a missing rating; hint: use the `default` missing-rating policy or skip the prompt")]
    NoUsableDimension,

    /// An input collection is empty where at least one entry is needed.
    #[error("`{what}` is empty; expected at least one entry")]
    Empty {
        /// Name of the offending input.
        what: &'static str,
    },
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, MathError>;
