//! Points on the probability simplex `Δ^d = {λ ∈ ℝ^d : λ_k ≥ 0, Σ λ_k = 1}`: the regular grid of
//! all compositions with a given step, and uniform draws from that grid. Dirichlet draws live in
//! [`crate::rng`]; checks in [`crate::special::check_simplex`].

use crate::error::{MathError, Result};
use crate::rng::Rng;
use crate::special::check_param;

/// Refuse grids larger than this: enumerating them is a configuration mistake, not a use.
pub const MAX_GRID_POINTS: usize = 1_000_000;

/// The number of parts `K = 1/step`, which must be a positive integer (within 1e-9).
pub fn grid_divisions(step: f64) -> Result<usize> {
    check_param("step", step, step > 0.0 && step <= 1.0, "a step in (0, 1]")?;
    // Steps arrive as decimals (0.1 is not exactly representable), so 1/step is compared to
    // the nearest integer with a relative tolerance rather than tested for exactness.
    let k = (1.0 / step).round();
    check_param(
        "step",
        step,
        ((1.0 / step) - k).abs() <= 1e-9 * k,
        "a step that divides 1 (1/step an integer, e.g. 0.25 or 0.1)",
    )?;
    Ok(k as usize)
}

/// `C(n, k)` in f64 (exact for the sizes used here), used for counts and guards.
pub fn binomial(n: usize, k: usize) -> f64 {
    // Symmetry keeps the loop short; the running product stays an integer at every step
    // (it is C(n, i+1)), so for these sizes f64 holds it exactly.
    let k = k.min(n.saturating_sub(k));
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// All `λ` with entries in `{0, step, 2·step, …, 1}` summing to 1: the `C(K+d−1, d−1)`
/// compositions of `K = 1/step` into `d` parts, in lexicographically *descending* order of the
/// integer parts (so the first point is `e_1 = (1, 0, …, 0)` and the last is `e_d`).
pub fn simplex_grid(dim: usize, step: f64) -> Result<Vec<Vec<f64>>> {
    if dim == 0 {
        return Err(MathError::Empty {
            what: "lambda dimension",
        });
    }
    let k = grid_divisions(step)?;
    let count = binomial(k + dim - 1, dim - 1);
    if count > MAX_GRID_POINTS as f64 {
        return Err(MathError::InvalidParameter {
            name: "step",
            value: step,
            expected: "a grid of at most 1,000,000 points (use a larger step or Dirichlet draws)",
        });
    }
    // Work in integer parts and divide once at the end: every coordinate is then exactly
    // `part / K`, and the same grid point is bit-identical however it was reached.
    let mut out = Vec::with_capacity(count as usize);
    let mut parts = vec![0usize; dim];
    compositions(k, 0, &mut parts, k as f64, &mut out);
    Ok(out)
}

/// Recursive enumeration: fill `parts[pos..]` with every split of `remaining`, largest first.
fn compositions(
    remaining: usize,
    pos: usize,
    parts: &mut [usize],
    k: f64,
    out: &mut Vec<Vec<f64>>,
) {
    // The last coordinate takes whatever is left, which is what makes every point sum to 1.
    if pos == parts.len() - 1 {
        parts[pos] = remaining;
        out.push(parts.iter().map(|&p| p as f64 / k).collect());
        return;
    }
    for take in (0..=remaining).rev() {
        parts[pos] = take;
        compositions(remaining - take, pos + 1, parts, k, out);
    }
}

/// One uniform draw from the grid of [`simplex_grid`] without enumerating it: stars and bars,
/// choosing `d − 1` bar positions among `K + d − 1` slots (Floyd's subset algorithm).
pub fn random_grid_point(rng: &mut Rng, dim: usize, divisions: usize) -> Vec<f64> {
    // A composition of K into d parts is a row of K stars and d − 1 bars; choosing the bar
    // positions uniformly picks every composition with equal probability, in O(d) draws instead
    // of enumerating C(K+d−1, d−1) points.
    let slots = divisions + dim - 1;
    let bars = dim - 1;
    // Floyd: a uniform `bars`-subset of 0..slots in O(bars) draws.
    let mut chosen: Vec<usize> = Vec::with_capacity(bars);
    for j in (slots - bars)..slots {
        let t = rng.below(j as u64 + 1) as usize;
        if chosen.contains(&t) {
            chosen.push(j);
        } else {
            chosen.push(t);
        }
    }
    chosen.sort_unstable();
    // Parts are the gaps between consecutive bars (stars between them).
    let mut lambda = Vec::with_capacity(dim);
    let mut prev: isize = -1;
    for &b in &chosen {
        lambda.push((b as isize - prev - 1) as f64 / divisions as f64);
        prev = b as isize;
    }
    lambda.push((slots as isize - prev - 1) as f64 / divisions as f64);
    lambda
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_has_the_binomial_count_and_sums_to_one() {
        let g = simplex_grid(4, 0.25).unwrap();
        assert_eq!(g.len(), 35); // C(4+3, 3)
        assert_eq!(g[0], vec![1.0, 0.0, 0.0, 0.0]);
        assert_eq!(g[34], vec![0.0, 0.0, 0.0, 1.0]);
        for p in &g {
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert!(simplex_grid(3, 0.3).is_err());
        assert_eq!(simplex_grid(3, 0.1).unwrap().len(), 66);
    }

    #[test]
    fn random_grid_point_covers_the_grid_uniformly() {
        let mut rng = Rng::seed_from_u64(5);
        let grid = simplex_grid(3, 0.5).unwrap(); // 6 points
        let mut counts = vec![0usize; grid.len()];
        for _ in 0..60_000 {
            let p = random_grid_point(&mut rng, 3, 2);
            counts[grid.iter().position(|g| *g == p).unwrap()] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 450.0);
        }
    }
}
