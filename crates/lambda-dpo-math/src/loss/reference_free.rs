//! Reference-free pairwise losses on per-token mean log-probs: SimPO and ORPO. Reference
//! log-probs, if given, are ignored. Both use the target's best (`w`) and worst (`l`) response.

use super::{LogpMode, Part, Prepared};
use crate::error::{MathError, Result};
use crate::special::{log1mexp, log_sigmoid, sigmoid};

/// SimPO: `L = −log σ(z)`, `z = β (ℓ̄_w − ℓ̄_l) − γ`; `dL/dz = −σ(−z)`.
pub(crate) fn simpo(p: &Prepared<'_>, beta: f64, gamma: f64) -> Result<Part> {
    let (w, l) = p.pair()?;
    let mode = LogpMode::Mean;
    let z = beta * (p.policy_x(w, mode) - p.policy_x(l, mode)) - gamma;
    let dz = -sigmoid(-z);
    let mut grad = vec![0.0; p.n];
    grad[w] = dz * beta * p.scale(w, mode);
    grad[l] = -dz * beta * p.scale(l, mode);
    Ok(Part {
        loss: -log_sigmoid(z),
        grad,
        rewards: (0..p.n).map(|i| beta * p.policy_x(i, mode)).collect(),
    })
}

/// ORPO: `L = −ℓ̄_w − λ_or log σ(o)`, `o = log odds(y_w) − log odds(y_l)`,
/// `log odds(y) = ℓ̄ − log1mexp(ℓ̄)`.
///
/// ```text
/// d log1mexp(a)/da = −eᵃ/(1 − eᵃ) = −1/expm1(−a)
/// d log odds/da    = 1 + 1/expm1(−a)              (= 1/(1 − eᵃ), computed without cancellation)
/// dL/do            = −λ_or σ(−o)
/// dL/dℓ̄_w = −1 + dL/do · d log odds/dℓ̄_w,   dL/dℓ̄_l = −dL/do · d log odds/dℓ̄_l
/// ```
pub(crate) fn orpo(p: &Prepared<'_>, lambda_or: f64) -> Result<Part> {
    let (w, l) = p.pair()?;
    let mode = LogpMode::Mean;
    let (aw, al) = (p.policy_x(w, mode), p.policy_x(l, mode));
    // p(y) = e^ℓ̄ must be < 1 for the odds to exist.
    for (i, a) in [(w, aw), (l, al)] {
        if a >= 0.0 {
            return Err(MathError::OutOfDomain {
                what: "policy_logps (per-token mean)",
                index: i,
                value: a,
                expected: "a negative mean log-prob (ORPO's odds need p(y) < 1)",
            });
        }
    }
    let log_odds = |a: f64| a - log1mexp(a);
    let d_log_odds = |a: f64| 1.0 + 1.0 / (-a).exp_m1();
    let o = log_odds(aw) - log_odds(al);
    let d_o = -lambda_or * sigmoid(-o);
    let mut grad = vec![0.0; p.n];
    grad[w] = (-1.0 + d_o * d_log_odds(aw)) * p.scale(w, mode);
    grad[l] = (-d_o * d_log_odds(al)) * p.scale(l, mode);
    Ok(Part {
        loss: -aw - lambda_or * log_sigmoid(o),
        grad,
        rewards: (0..p.n).map(|i| lambda_or * p.policy_x(i, mode)).collect(),
    })
}
