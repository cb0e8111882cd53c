//! λ-DPO, the listwise softmax cross-entropy between the target `p^λ` and the model's
//! Plackett–Luce top-1 distribution over its implicit rewards (paper Eq. 7–11).
//!
//! ```text
//! s_i = β (x_i − x^ref_i),   P_θ = softmax(s)
//! L   = − Σ_i p_i log P_θ(i) = (Σ_i p_i) · logsumexp(s) − Σ_i p_i s_i
//! ∂L/∂s_i = (Σ_j p_j) P_θ(i) − p_i          (= P_θ(i) − p_i on the simplex)
//! ∂L/∂ℓ_θ(y_i) = β · ∂x_i/∂ℓ_i · ∂L/∂s_i
//! ```
//! The `(Σ p)` factor is kept instead of assuming it is exactly 1: the target is accepted within
//! 1e-6 of the simplex, and the gradient must be the exact derivative of the value returned.
//!
//! Precision: a confident model has `P_θ(i) ≈ 1` for its top response, and `P − p` for a one-hot
//! target is then `−(1 − P_θ(i))`. Computing `1 − P` as a difference loses up to ten digits; here
//! it comes from `expm1` of a log-probability formed without cancellation (see
//! [`crate::special::log_softmax`]), so the gradient keeps full relative precision.

use super::{LogpMode, Part, Prepared};
use crate::special::{argmax_first, log_softmax};

/// λ-DPO loss and gradient (see the module docs).
pub(crate) fn lambda_dpo(p: &Prepared<'_>, beta: f64, mode: LogpMode) -> Part {
    let s: Vec<f64> = (0..p.n).map(|i| beta * p.log_ratio(i, mode)).collect();
    let target = &p.target.probs;
    let mass: f64 = target.iter().sum();
    let log_model = log_softmax(&s);
    // −Σ p_i log P_i, skipping p_i = 0 so a vanishing P_i (log P = −∞) never multiplies zero.
    let loss = -target
        .iter()
        .zip(&log_model)
        .filter(|(&pi, _)| pi != 0.0)
        .map(|(pi, lp)| pi * lp)
        .sum::<f64>();
    let top = argmax_first(&s);
    let grad = (0..p.n)
        .map(|i| {
            let d = if i == top {
                // mass·P − p = (mass − p) − mass·(1 − P), with 1 − P = −expm1(log P).
                (mass - target[i]) + mass * log_model[i].exp_m1()
            } else {
                mass * log_model[i].exp() - target[i]
            };
            beta * p.scale(i, mode) * d
        })
        .collect();
    Part {
        loss,
        grad,
        rewards: s,
    }
}
