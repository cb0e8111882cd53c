//! Reference-based pairwise losses on the target's best (`w`) and worst (`l`) response: DPO with
//! cDPO label smoothing, robust DPO, and IPO. On listwise data the pair is chosen = best and
//! rejected = worst under the target (DESIGN.md §1: the paper's baselines use the uniform-λ
//! target); on pairwise data the target is one-hot and this is the usual pair.
//!
//! All three are functions of one scalar `z` built from the two log-ratios, so each computes
//! `L(z)` and `dL/dz` and spreads `dL/dz` onto `ℓ_w` (+) and `ℓ_l` (−).

use super::{LogpMode, Part, Prepared};
use crate::error::Result;
use crate::special::{log_sigmoid, sigmoid};

/// Spread `dL/dz` (where `z = c·(r_w − r_l)`) onto the two responses' summed log-probs.
fn pair_grad(p: &Prepared<'_>, w: usize, l: usize, mode: LogpMode, dz: f64, c: f64) -> Vec<f64> {
    let mut grad = vec![0.0; p.n];
    grad[w] = dz * c * p.scale(w, mode);
    grad[l] = -dz * c * p.scale(l, mode);
    grad
}

/// Implicit rewards `β (x_i − x^ref_i)` of every response, for the statistics.
fn rewards(p: &Prepared<'_>, beta: f64, mode: LogpMode) -> Vec<f64> {
    (0..p.n).map(|i| beta * p.log_ratio(i, mode)).collect()
}

/// DPO / cDPO: `L = −(1−ε) log σ(z) − ε log σ(−z)`, `z = βΔ`.
///
/// `dL/dz = −(1−ε) σ(−z) + ε σ(z)`.
pub(crate) fn dpo(p: &Prepared<'_>, beta: f64, eps: f64, mode: LogpMode) -> Result<Part> {
    let (w, l) = p.pair()?;
    let z = beta * (p.log_ratio(w, mode) - p.log_ratio(l, mode));
    let loss = -(1.0 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z);
    let dz = -(1.0 - eps) * sigmoid(-z) + eps * sigmoid(z);
    Ok(Part {
        loss,
        grad: pair_grad(p, w, l, mode, dz, beta),
        rewards: rewards(p, beta, mode),
    })
}

/// Robust DPO: `L = [−(1−ε) log σ(z) + ε log σ(−z)] / (1 − 2ε)`, `z = βΔ`.
///
/// `dL/dz = [−(1−ε) σ(−z) − ε σ(z)] / (1 − 2ε)`. Unlike cDPO the flipped term enters with a
/// plus sign: the estimator is unbiased for the clean loss, not a smoothed one.
pub(crate) fn robust_dpo(p: &Prepared<'_>, beta: f64, eps: f64, mode: LogpMode) -> Result<Part> {
    let (w, l) = p.pair()?;
    let z = beta * (p.log_ratio(w, mode) - p.log_ratio(l, mode));
    let norm = 1.0 - 2.0 * eps;
    let loss = (-(1.0 - eps) * log_sigmoid(z) + eps * log_sigmoid(-z)) / norm;
    let dz = (-(1.0 - eps) * sigmoid(-z) - eps * sigmoid(z)) / norm;
    Ok(Part {
        loss,
        grad: pair_grad(p, w, l, mode, dz, beta),
        rewards: rewards(p, beta, mode),
    })
}

/// IPO: `L = (Δ̄ − 1/(2β))²` with per-token mean log-ratios (TRL's normalisation).
///
/// `dL/dΔ̄ = 2 (Δ̄ − 1/(2β))`.
pub(crate) fn ipo(p: &Prepared<'_>, beta: f64) -> Result<Part> {
    let (w, l) = p.pair()?;
    let mode = LogpMode::Mean;
    let h = p.log_ratio(w, mode) - p.log_ratio(l, mode) - 1.0 / (2.0 * beta);
    Ok(Part {
        loss: h * h,
        grad: pair_grad(p, w, l, mode, 2.0 * h, 1.0),
        rewards: rewards(p, beta, mode),
    })
}
