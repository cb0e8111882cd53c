//! Dense least squares for the scheduler's tiny systems (a handful of points, ≤ a few hundred
//! features): minimum-norm solution through a one-sided Jacobi SVD, with optional ridge.
//!
//! Why SVD and not normal equations: the design matrices here are rank-deficient by
//! construction (features of λ on the simplex satisfy `Σ λ_k = 1`, and there are often fewer
//! points than features), and the minimum-norm solution is only well defined through the
//! pseudo-inverse. One-sided Jacobi (Hestenes 1958) is short, needs no bidiagonalisation, and
//! computes small singular values to high relative accuracy — enough to interpolate points to
//! 1e-9 and to tell a zero singular value from a small one.

use crate::error::{MathError, Result};
use crate::special::{check_finite, check_len, check_param};

/// A dense row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Entries, row-major: `data[r * cols + c]`.
    pub data: Vec<f64>,
}

impl Matrix {
    /// Build from rows of equal length.
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for r in rows {
            check_len("matrix row", r.len(), cols, "column")?;
            data.extend_from_slice(r);
        }
        Ok(Self {
            rows: rows.len(),
            cols,
            data,
        })
    }

    /// Entry (r, c).
    pub fn get(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    /// `A x`.
    pub fn mul_vec(&self, x: &[f64]) -> Vec<f64> {
        (0..self.rows)
            .map(|r| (0..self.cols).map(|c| self.get(r, c) * x[c]).sum())
            .collect()
    }
}

/// The solution of a least-squares problem and what the solver saw.
#[derive(Debug, Clone, PartialEq)]
pub struct LeastSquares {
    /// `x` minimising `‖A x − b‖² + ridge ‖x‖²`, of minimum norm among minimisers.
    pub x: Vec<f64>,
    /// Numerical rank of the (ridge-augmented) matrix.
    pub rank: usize,
    /// Singular values, descending.
    pub singular_values: Vec<f64>,
}

/// Singular value decomposition `A = U Σ Vᵀ` by one-sided Jacobi, returned as the scaled left
/// vectors `W = U Σ` (column j has norm σ_j), and `V` — both column-major (`Vec` of columns).
fn jacobi_svd(a: &Matrix) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let (m, n) = (a.rows, a.cols);
    let mut w: Vec<Vec<f64>> = (0..n)
        .map(|c| (0..m).map(|r| a.get(r, c)).collect())
        .collect();
    let mut v: Vec<Vec<f64>> = (0..n)
        .map(|c| (0..n).map(|r| if r == c { 1.0 } else { 0.0 }).collect())
        .collect();
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    // Each sweep rotates every column pair until all pairs are orthogonal to machine precision;
    // convergence is quadratic, so a few sweeps suffice; 100 is a safety cap.
    for _sweep in 0..100 {
        let mut rotated = false;
        for p in 0..n {
            for q in (p + 1)..n {
                let alpha = dot(&w[p], &w[p]);
                let beta = dot(&w[q], &w[q]);
                let gamma = dot(&w[p], &w[q]);
                if gamma == 0.0 || gamma.abs() <= f64::EPSILON * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                // Rotation angle that zeroes the (p, q) inner product; the smaller root of
                // t² + 2ζt − 1 = 0 keeps the rotation below 45° for stability.
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for cols in [&mut w, &mut v] {
                    let (left, right) = cols.split_at_mut(q);
                    for (xp, xq) in left[p].iter_mut().zip(right[0].iter_mut()) {
                        let (a, b) = (*xp, *xq);
                        *xp = c * a - s * b;
                        *xq = s * a + c * b;
                    }
                }
            }
        }
        if !rotated {
            break;
        }
    }
    (w, v)
}

/// Minimum-norm solution of `min ‖A x − b‖² + ridge ‖x‖²` (`ridge ≥ 0`).
///
/// With `ridge > 0` the problem is solved as ordinary least squares on `[A; √ridge·I]`,
/// `[b; 0]`, which is full column rank, so the solution is unique. Singular values below
/// `max(rows, cols) · ε · σ_max` count as zero.
pub fn least_squares(a: &Matrix, b: &[f64], ridge: f64) -> Result<LeastSquares> {
    check_len("b", b.len(), a.rows, "matrix row")?;
    check_finite("matrix", &a.data)?;
    check_finite("b", b)?;
    check_param("ridge", ridge, ridge >= 0.0, "ridge ≥ 0")?;
    if a.cols == 0 || a.rows == 0 {
        return Err(MathError::Empty { what: "matrix" });
    }
    let (aug, rhs) = if ridge > 0.0 {
        let mut data = a.data.clone();
        let root = ridge.sqrt();
        for i in 0..a.cols {
            data.extend((0..a.cols).map(|c| if c == i { root } else { 0.0 }));
        }
        let mut rhs = b.to_vec();
        rhs.resize(a.rows + a.cols, 0.0);
        (
            Matrix {
                rows: a.rows + a.cols,
                cols: a.cols,
                data,
            },
            rhs,
        )
    } else {
        (a.clone(), b.to_vec())
    };

    let (w, v) = jacobi_svd(&aug);
    let sigma: Vec<f64> = w
        .iter()
        .map(|c| c.iter().map(|x| x * x).sum::<f64>().sqrt())
        .collect();
    let sigma_max = sigma.iter().copied().fold(0.0, f64::max);
    let tol = aug.rows.max(aug.cols) as f64 * f64::EPSILON * sigma_max;

    // x = Σ_{σ_j > tol} (u_j·b / σ_j) v_j with u_j = w_j / σ_j, i.e. (w_j·b / σ_j²) v_j.
    let mut x = vec![0.0; a.cols];
    let mut rank = 0;
    for j in 0..a.cols {
        if sigma[j] <= tol || sigma[j] == 0.0 {
            continue;
        }
        rank += 1;
        let coef = w[j].iter().zip(&rhs).map(|(u, y)| u * y).sum::<f64>() / (sigma[j] * sigma[j]);
        for (xi, vi) in x.iter_mut().zip(&v[j]) {
            *xi += coef * vi;
        }
    }
    let mut singular_values = sigma;
    singular_values.sort_by(|a, b| b.total_cmp(a));
    Ok(LeastSquares {
        x,
        rank,
        singular_values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_square_system() {
        let a = Matrix::from_rows(&[vec![2.0, 1.0], vec![1.0, 3.0]]).unwrap();
        let sol = least_squares(&a, &[3.0, 5.0], 0.0).unwrap();
        assert!((sol.x[0] - 0.8).abs() < 1e-14 && (sol.x[1] - 1.4).abs() < 1e-14);
        assert_eq!(sol.rank, 2);
    }

    #[test]
    fn underdetermined_gives_minimum_norm() {
        // x + y = 2: min-norm solution (1, 1).
        let a = Matrix::from_rows(&[vec![1.0, 1.0]]).unwrap();
        let sol = least_squares(&a, &[2.0], 0.0).unwrap();
        assert!((sol.x[0] - 1.0).abs() < 1e-14 && (sol.x[1] - 1.0).abs() < 1e-14);
        assert_eq!(sol.rank, 1);
    }

    #[test]
    fn overdetermined_matches_normal_equations_and_ridge_shrinks() {
        // Fit y = a + b t to (0,1), (1,3), (2,4): normal equations give a = 7/6, b = 3/2.
        let a = Matrix::from_rows(&[vec![1.0, 0.0], vec![1.0, 1.0], vec![1.0, 2.0]]).unwrap();
        let sol = least_squares(&a, &[1.0, 3.0, 4.0], 0.0).unwrap();
        assert!((sol.x[0] - 7.0 / 6.0).abs() < 1e-13 && (sol.x[1] - 1.5).abs() < 1e-13);
        // Ridge: (AᵀA + rI) x = Aᵀb with r = 1: [[4,3],[3,6]] x = [8,11] → x = (1, 4/3).
        let sol = least_squares(&a, &[1.0, 3.0, 4.0], 1.0).unwrap();
        assert!((sol.x[0] - 1.0).abs() < 1e-13 && (sol.x[1] - 4.0 / 3.0).abs() < 1e-13);
    }
}
