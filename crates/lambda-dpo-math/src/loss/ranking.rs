//! Learning-to-rank rivals of λ-DPO on the same implicit rewards `s_i = β (x_i − x^ref_i)`:
//! ListMLE (Plackett–Luce likelihood of the target order) and LiPO-λ (LambdaRank-weighted
//! pairwise logistic losses).

use super::{LogpMode, Part, Prepared};
use crate::rank::{ranks_desc, tie_groups_desc};
use crate::special::{log_sigmoid, logsumexp, sigmoid};

/// Target probabilities closer than this are a tie (a mixture of equal ratings is bit-identical,
/// so this only absorbs rounding from sums taken in different orders).
const TIE_TOLERANCE: f64 = 1e-12;

fn rewards(p: &Prepared<'_>, beta: f64, mode: LogpMode) -> Vec<f64> {
    (0..p.n).map(|i| beta * p.log_ratio(i, mode)).collect()
}

/// ListMLE with Breslow's tie rule.
///
/// ```text
/// groups g_1 (best) … g_G (worst) of tied target probabilities; R_g = g ∪ every worse group
/// L        = Σ_g [ |g| · logsumexp_{j∈R_g} s_j − Σ_{i∈g} s_i ]
/// ∂L/∂s_j  = −1 + Σ_{g : j ∈ R_g} |g| · softmax_{R_g}(s)_j
/// ```
/// With no ties every group is a singleton and this is the textbook ListMLE (the last term,
/// `s − logsumexp({s})`, is zero).
pub(crate) fn list_mle(p: &Prepared<'_>, beta: f64, mode: LogpMode) -> Part {
    let s = rewards(p, beta, mode);
    let groups = tie_groups_desc(&p.target.probs, TIE_TOLERANCE);
    let mut loss = 0.0;
    let mut ds = vec![-1.0; p.n];
    // Walk from the worst group up so the risk set only grows: R_g = R_{g+1} ∪ g.
    let mut risk: Vec<usize> = Vec::with_capacity(p.n);
    for g in groups.iter().rev() {
        risk.extend_from_slice(g);
        let risk_s: Vec<f64> = risk.iter().map(|&j| s[j]).collect();
        let lse = logsumexp(&risk_s);
        let size = g.len() as f64;
        loss += size * lse - g.iter().map(|&i| s[i]).sum::<f64>();
        for (&j, &sj) in risk.iter().zip(&risk_s) {
            ds[j] += size * (sj - lse).exp();
        }
    }
    let grad = (0..p.n).map(|i| beta * p.scale(i, mode) * ds[i]).collect();
    Part {
        loss,
        grad,
        rewards: s,
    }
}

/// LiPO-λ.
///
/// ```text
/// L       = − Σ_{ψ_i > ψ_j} Δ_ij log σ(s_i − s_j)
/// Δ_ij    = |G_i − G_j| · |1/D(τ_i) − 1/D(τ_j)|,  G = 2^ψ − 1,  D(τ) = log2(1 + τ)
/// ∂L/∂s_i = − Σ_{j: ψ_i>ψ_j} Δ_ij σ(s_j − s_i) + Σ_{j: ψ_j>ψ_i} Δ_ji σ(s_i − s_j)
/// ```
/// `τ` are 1-based ranks under the current `s` (ties by index); `Δ` is held constant in the
/// gradient (it is piecewise constant in `s`). Pairs are ordered by strict grade (`ψ_i > ψ_j`
/// by more than 1e-12), so tied grades contribute nothing.
pub(crate) fn lipo_lambda(p: &Prepared<'_>, beta: f64, mode: LogpMode) -> Part {
    let s = rewards(p, beta, mode);
    let psi = &p.target.grades;
    let gain: Vec<f64> = psi.iter().map(|&g| g.exp2() - 1.0).collect();
    let inv_discount: Vec<f64> = ranks_desc(&s)
        .into_iter()
        .map(|r| 1.0 / (1.0 + r as f64).log2())
        .collect();
    let mut loss = 0.0;
    let mut ds = vec![0.0; p.n];
    for i in 0..p.n {
        for j in 0..p.n {
            if psi[i] - psi[j] <= TIE_TOLERANCE {
                continue;
            }
            let delta = (gain[i] - gain[j]).abs() * (inv_discount[i] - inv_discount[j]).abs();
            loss -= delta * log_sigmoid(s[i] - s[j]);
            let d = delta * sigmoid(s[j] - s[i]);
            ds[i] -= d;
            ds[j] += d;
        }
    }
    let grad = (0..p.n).map(|i| beta * p.scale(i, mode) * ds[i]).collect();
    Part {
        loss,
        grad,
        rewards: s,
    }
}
