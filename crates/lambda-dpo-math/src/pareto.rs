//! Multi-objective evaluation of a λ sweep: Spearman rank correlation (does the measured reward
//! of a dimension rise with its λ weight?), the Pareto front of per-λ reward vectors, and the
//! exact dominated hypervolume of such a front. All objectives are *maximised*.
//!
//! What does not live here: sampling responses and measuring their rewards (the demo does that
//! with a model) and plotting the front (`lambda_dpo::report`). Ranking with a fixed tie rule
//! comes from [`crate::rank`]; this module only turns its tie groups into average ranks.

use crate::error::{MathError, Result};
use crate::rank::tie_groups_desc;
use crate::special::{check_finite, check_len};

/// Spearman's rank correlation `ρ` of two paired samples, ties given their average rank
/// (as `scipy.stats.spearmanr`):
///
/// ```text
/// R_x, R_y = average ranks of x and y          (tied values share the mean of their positions)
/// ρ = Σ_i (R_x,i − R̄)(R_y,i − R̄) / sqrt( Σ_i (R_x,i − R̄)² · Σ_i (R_y,i − R̄)² ),   R̄ = (n+1)/2
/// ```
///
/// i.e. Pearson's correlation of the ranks; with no ties it equals `1 − 6 Σ d_i² / (n(n²−1))`.
///
/// Returns `Ok(None)` when either side is constant: every rank is then tied, the denominator is
/// zero and ρ is undefined (scipy returns NaN there). `None` makes the caller decide (the demo
/// writes "n/a") instead of a NaN silently reaching a mean or a JSON file, and matches
/// [`crate::rank::pairwise_accuracy`], which is `None` when the target orders nothing.
///
/// # Errors
/// [`MathError::LengthMismatch`] if `x` and `y` differ in length, [`MathError::TooFewResponses`]
/// for fewer than 2 pairs, [`MathError::NonFinite`] for NaN or ±∞ (a rank of NaN is meaningless).
pub fn spearman(x: &[f64], y: &[f64]) -> Result<Option<f64>> {
    check_len("y", y.len(), x.len(), "entry of x")?;
    if x.len() < 2 {
        return Err(MathError::TooFewResponses { n: x.len() });
    }
    check_finite("x", x)?;
    check_finite("y", y)?;
    let (rx, ry) = (average_ranks(x), average_ranks(y));
    // Centre on the exact mean rank (n+1)/2 — average ranks always sum to n(n+1)/2 — so the
    // sums below are of small, exactly representable half-integers and cancel nothing.
    let mean = (x.len() as f64 + 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (da, db) = (a - mean, b - mean);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    if sxx == 0.0 || syy == 0.0 {
        return Ok(None);
    }
    // Rounding in the square root can push |ρ| a hair past 1 for perfectly (anti-)monotone data.
    Ok(Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0)))
}

/// 1-based average ranks in *descending* order (largest value gets rank 1; ties share the mean
/// of their positions). Spearman's ρ is unchanged by ranking both samples the other way, so
/// descending ranks — the order [`crate::rank`] already provides — serve as well as scipy's
/// ascending ones.
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut ranks = vec![0.0; values.len()];
    let mut next = 1usize;
    // Tolerance 0: only exactly equal values tie (−0.0 ties with +0.0), as in scipy.
    for group in tie_groups_desc(values, 0.0) {
        // Positions next ..= next+len−1, whose mean is next + (len−1)/2.
        let avg = next as f64 + (group.len() as f64 - 1.0) / 2.0;
        for i in &group {
            ranks[*i] = avg;
        }
        next += group.len();
    }
    ranks
}

/// Whether `a` Pareto-dominates `b` under maximisation: no worse in every coordinate and
/// strictly better in at least one. Equal points do not dominate each other.
///
/// ```text
/// a ≻ b  ⇔  ∀k a_k ≥ b_k  ∧  ∃k a_k > b_k
/// ```
///
/// Both slices are assumed to have the same length (checked by the public entry points).
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for (x, y) in a.iter().zip(b) {
        if x < y {
            return false;
        }
        strictly |= x > y;
    }
    strictly
}

/// Indices of the non-dominated points (maximisation), ascending.
///
/// ```text
/// front(P) = { i : ¬∃ j  p_j ≻ p_i }
/// ```
///
/// Duplicates: equal points do not dominate each other, so every copy of a non-dominated point
/// is kept (each index appears). The front of the front is therefore the front itself. An empty
/// input gives an empty front. `O(n² d)`, fine for the hundreds of points a λ grid yields.
///
/// # Errors
/// [`MathError::Empty`] if the points have no coordinates, [`MathError::LengthMismatch`] if
/// they differ in dimension, [`MathError::NonFinite`] for NaN or ±∞ (NaN compares false both
/// ways, so it would be silently non-dominated).
pub fn pareto_front(points: &[Vec<f64>]) -> Result<Vec<usize>> {
    let Some(first) = points.first() else {
        return Ok(Vec::new());
    };
    check_points(points, first.len())?;
    Ok((0..points.len())
        .filter(|&i| !points.iter().any(|q| dominates(q, &points[i])))
        .collect())
}

/// The exact hypervolume dominated by `points` and bounded by `reference` (maximisation): the
/// Lebesgue measure of the union of the boxes `[r, p]`.
///
/// ```text
/// HV(P; r) = λ_d( ∪_{p ∈ P, p > r} [r_1, p_1] × … × [r_d, p_d] )
/// d = 1:  HV = max_p (p_1 − r_1)⁺
/// d ≥ 2:  sort by the last coordinate descending, z_1 ≥ z_2 ≥ … ≥ z_n, z_{n+1} = r_d;
///         HV = Σ_i (z_i − z_{i+1}) · HV_{d−1}({ p_1..p_i projected on the first d−1 axes })
/// ```
///
/// This is hypervolume-by-slicing-objectives (HSO, While et al. 2006): exact, `O(n^{d−1} log n)`,
/// ample for ≤ 100 points in d ≤ 4. A point that is not strictly above the reference in every
/// coordinate contributes nothing (its box is empty or flat) and is dropped first. No points
/// gives 0. Duplicates and dominated points are allowed and add nothing.
///
/// # Errors
/// [`MathError::Empty`] if `reference` is empty, [`MathError::NonFinite`] for a non-finite
/// reference or point coordinate, [`MathError::LengthMismatch`] if a point's dimension differs
/// from the reference's.
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> Result<f64> {
    if reference.is_empty() {
        return Err(MathError::Empty { what: "reference" });
    }
    check_finite("reference", reference)?;
    check_points(points, reference.len())?;
    // Shift so the reference is the origin: the recursion then only needs "extent above 0".
    let shifted: Vec<Vec<f64>> = points
        .iter()
        .map(|p| p.iter().zip(reference).map(|(x, r)| x - r).collect())
        .filter(|q: &Vec<f64>| q.iter().all(|&v| v > 0.0))
        .collect();
    Ok(hso(shifted, reference.len()))
}

/// HSO on points with all coordinates `> 0` relative to the origin, in the first `d` axes.
fn hso(mut pts: Vec<Vec<f64>>, d: usize) -> f64 {
    if pts.is_empty() {
        return 0.0;
    }
    if d == 1 {
        return pts.iter().map(|p| p[0]).fold(0.0, f64::max);
    }
    // Sort by the slicing axis descending, then by the remaining axes descending: a total order
    // on the point *values*, so any permutation of the input gives the same sequence of float
    // operations and therefore bit-identical results.
    let axis = d - 1;
    pts.sort_by(|a, b| {
        b[axis]
            .total_cmp(&a[axis])
            .then_with(|| cmp_desc(&a[..axis], &b[..axis]))
    });
    if d == 2 {
        // The 2D staircase directly: walking down in y, each point adds the strip of x it
        // extends beyond every higher point. Saves one level of recursion in every call.
        let (mut area, mut best_x) = (0.0, 0.0);
        for (i, p) in pts.iter().enumerate() {
            if p[0] > best_x {
                best_x = p[0];
            }
            let next_y = pts.get(i + 1).map_or(0.0, |q| q[1]);
            area += best_x * (p[1] - next_y);
        }
        return area;
    }
    let mut volume = 0.0;
    // The slab between z_i and z_{i+1} is covered exactly by the first i+1 points' projections.
    // `prefix` keeps only its non-dominated members: dominated projections add nothing, and
    // pruning keeps the lower-dimensional calls small.
    let mut prefix: Vec<Vec<f64>> = Vec::new();
    for (i, p) in pts.iter().enumerate() {
        let proj = &p[..axis];
        if !prefix.iter().any(|q| q == proj || dominates(q, proj)) {
            prefix.retain(|q| !dominates(proj, q));
            prefix.push(proj.to_vec());
        }
        let next_z = pts.get(i + 1).map_or(0.0, |q| q[axis]);
        let height = p[axis] - next_z;
        if height > 0.0 {
            volume += height * hso(prefix.clone(), axis);
        }
    }
    volume
}

/// Lexicographic descending comparison with a total order (inputs are validated finite).
fn cmp_desc(a: &[f64], b: &[f64]) -> std::cmp::Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| y.total_cmp(x))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// Every point has `dim ≥ 1` finite coordinates.
fn check_points(points: &[Vec<f64>], dim: usize) -> Result<()> {
    if dim == 0 {
        return Err(MathError::Empty { what: "point" });
    }
    for (index, p) in points.iter().enumerate() {
        check_len("point", p.len(), dim, "objective")?;
        if let Some(&value) = p.iter().find(|v| !v.is_finite()) {
            return Err(MathError::NonFinite {
                what: "points",
                index,
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_ranks_share_positions() {
        // Descending: 3.0 first; the two 2.0s share positions 2 and 3.
        assert_eq!(
            average_ranks(&[2.0, 3.0, 2.0, 1.0]),
            vec![2.5, 1.0, 2.5, 4.0]
        );
        assert_eq!(average_ranks(&[0.0, -0.0]), vec![1.5, 1.5]);
    }

    #[test]
    fn dominance_is_strict() {
        assert!(dominates(&[1.0, 1.0], &[1.0, 0.0]));
        assert!(!dominates(&[1.0, 1.0], &[1.0, 1.0]));
        assert!(!dominates(&[2.0, 0.0], &[0.0, 2.0]));
    }
}
