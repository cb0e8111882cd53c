//! Numerically stable scalar and vector primitives shared by every loss: log-sigmoid, softmax,
//! log-sum-exp, `log(1 − eˣ)`, KL divergence, and the input checks built on them. Nothing here
//! knows about preferences; the loss files compose these.

use crate::error::{MathError, Result};

/// Default tolerance for "on the simplex" checks (the 1e-6).
pub const SIMPLEX_TOLERANCE: f64 = 1e-6;

/// Logistic function `σ(x) = 1 / (1 + e^{−x})`, evaluated without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        // For very negative x, e^{x} is tiny and this form keeps full relative precision.
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log σ(x)`, stable for all x: `min(x, 0) − log1p(e^{−|x|})` (what torch's `logsigmoid` does).
pub fn log_sigmoid(x: f64) -> f64 {
    x.min(0.0) - (-x.abs()).exp().ln_1p()
}

/// `log(1 − eˣ)` for `x < 0`, switching formula at `−ln 2` to avoid cancellation
/// (Mächler 2012; the same branch TRL's ORPO uses). Returns `-inf` at `x = 0` and NaN for x > 0.
pub fn log1mexp(x: f64) -> f64 {
    if x < -std::f64::consts::LN_2 {
        (-x.exp()).ln_1p()
    } else {
        (-x.exp_m1()).ln()
    }
}

/// `log Σ exp(xᵢ)` with the max subtracted first. Returns `-inf` for an empty slice.
pub fn logsumexp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    let s: f64 = xs.iter().map(|&x| (x - m).exp()).sum();
    m + s.ln()
}

/// `softmax(x)` with the max subtracted first; the result sums to 1 up to rounding.
pub fn softmax(xs: &[f64]) -> Vec<f64> {
    let lse = logsumexp(xs);
    xs.iter().map(|&x| (x - lse).exp()).collect()
}

/// `log softmax(x)`, accurate even for the dominant entry.
///
/// With `m` the (first) maximum, `log P_m = −log1p(Σ_{j≠m} e^{x_j − x_m})` and
/// `log P_j = x_j − x_m + log P_m`. Unlike `x − logsumexp(x)`, this never subtracts two large
/// nearly equal numbers to get `log P_m ≈ 0`, so `1 − P_m = −expm1(log P_m)` keeps full relative
/// precision when the model is confident (the gradient `P − p` of a one-hot target needs it).
pub fn log_softmax(xs: &[f64]) -> Vec<f64> {
    if xs.is_empty() {
        return Vec::new();
    }
    let m = argmax_first(xs);
    let top = xs[m];
    let rest: f64 = xs
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != m)
        .map(|(_, &x)| (x - top).exp())
        .sum();
    let log_pm = -rest.ln_1p();
    xs.iter()
        .enumerate()
        .map(|(j, &x)| if j == m { log_pm } else { x - top + log_pm })
        .collect()
}

/// `KL(p ‖ q) = Σ pᵢ (log pᵢ − log qᵢ)` given `p` and `log q`; terms with `pᵢ = 0` contribute 0.
pub fn kl_from_log(p: &[f64], log_q: &[f64]) -> f64 {
    // Taking log q (not q) avoids log(0) = −∞ for responses the model all but rules out.
    p.iter()
        .zip(log_q)
        .filter(|(&pi, _)| pi > 0.0)
        .map(|(&pi, &lq)| pi * (pi.ln() - lq))
        .sum()
}

/// Index of the first maximum (NaN-free input assumed; callers validate first).
pub fn argmax_first(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Index of the last minimum. Paired with [`argmax_first`] it guarantees two distinct indices
/// whenever the vector is not constant.
pub fn argmin_last(xs: &[f64]) -> usize {
    let mut worst = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x <= xs[worst] {
            worst = i;
        }
    }
    worst
}

/// Error unless every entry is finite.
pub fn check_finite(what: &'static str, xs: &[f64]) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(MathError::NonFinite {
            what,
            index,
            value: xs[index],
        }),
        None => Ok(()),
    }
}

/// Error unless `xs` has `expected` entries.
pub fn check_len(what: &'static str, xs: usize, expected: usize, per: &'static str) -> Result<()> {
    if xs == expected {
        Ok(())
    } else {
        Err(MathError::LengthMismatch {
            what,
            expected,
            found: xs,
            per,
        })
    }
}

/// Error unless `xs` is finite, non-negative (to within `tolerance`) and sums to 1 within
/// `tolerance`.
pub fn check_simplex(what: &'static str, xs: &[f64], tolerance: f64) -> Result<()> {
    if xs.is_empty() {
        return Err(MathError::Empty { what });
    }
    check_finite(what, xs)?;
    let sum: f64 = xs.iter().sum();
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    if (sum - 1.0).abs() > tolerance || min < -tolerance {
        return Err(MathError::NotOnSimplex {
            what,
            sum,
            min,
            tolerance,
        });
    }
    Ok(())
}

/// Error unless `value` is finite and satisfies `ok`.
pub fn check_param(name: &'static str, value: f64, ok: bool, expected: &'static str) -> Result<()> {
    if value.is_finite() && ok {
        Ok(())
    } else {
        Err(MathError::InvalidParameter {
            name,
            value,
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sigmoid_is_stable_in_both_tails() {
        assert!((log_sigmoid(0.0) + std::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(log_sigmoid(-800.0), -800.0);
        assert!(log_sigmoid(800.0).abs() < 1e-300);
        assert!((sigmoid(-800.0)).abs() < 1e-300 && sigmoid(800.0) == 1.0);
    }

    #[test]
    fn log1mexp_matches_naive_where_naive_is_accurate() {
        for &x in &[-5.0, -1.0, -0.7, -0.5, -0.1, -1e-3] {
            let naive = (1.0 - f64::exp(x)).ln();
            assert!(
                (log1mexp(x) - naive).abs() < 1e-12 * naive.abs().max(1.0),
                "x={x}"
            );
        }
        // Near 0 the naive form loses all digits; the stable one keeps them: log(1−e^{−1e−12}) ≈ log(1e−12).
        assert!((log1mexp(-1e-12) - (1e-12f64).ln()).abs() < 1e-9);
    }

    #[test]
    fn argmax_and_argmin_pick_distinct_ends_on_ties() {
        let v = [0.3, 0.3, 0.2, 0.2];
        assert_eq!(argmax_first(&v), 0);
        assert_eq!(argmin_last(&v), 3);
    }
}
