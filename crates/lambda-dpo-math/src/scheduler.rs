//! The performance-driven λ scheduler (paper App. D): fit a polynomial to the downstream scores
//! observed at a few λ, score candidate λ with it, and sample candidates with `softmax(τ f)`.
//!
//! ```text
//! φ_p(λ) = (1, λ_1 … λ_d, λ_1λ_1, λ_1λ_2 … λ_dλ_d, λ_1λ_1λ_1 …)     C(d+p, p) monomials
//! c      = argmin ‖Φ c − y‖² + ridge ‖c‖²,  minimum-norm among minimisers (SVD)
//! f(λ)   = φ_p(λ) · c
//! P(λ_j) = softmax_j(τ f(λ_j))       over the candidates
//! ```
//! Monomial order: by degree, and within a degree the index tuples `i ≤ j ≤ …` in lexicographic
//! order (degree 2 over d = 3: λ1λ1, λ1λ2, λ1λ3, λ2λ2, λ2λ3, λ3λ3).
//!
//! Exactness: the paper fits `c` by gradient descent and does not reproduce its own training
//! points; the SVD solution does whenever the points' feature rows are linearly independent.
//! Note that on the simplex the features are dependent (`Σ λ_k = 1` makes `1` a combination of
//! the `λ_k`, and so on up the degrees): the polynomials of degree ≤ p restricted to `Δ^d` span
//! only `C(d−1+p, p)` dimensions. So up to that many generic simplex points are interpolated
//! exactly (10 for d = 4, p = 2, against 15 features); more points give the least-squares fit.

use serde::{Deserialize, Serialize};

use crate::error::{MathError, Result};
use crate::linalg::{least_squares, Matrix};
use crate::rng::Rng;
use crate::sampler::{LambdaSource, TableRow};
use crate::simplex::{binomial, simplex_grid};
use crate::special::{check_finite, check_len, check_param, softmax};

/// Refuse feature maps larger than this (a degree/dimension mistake, not a use).
pub const MAX_FEATURES: usize = 100_000;

/// `C(d + p, p)`: the number of monomials of degree ≤ p in d variables.
pub fn num_features(dim: usize, degree: usize) -> usize {
    binomial(dim + degree, degree).round() as usize
}

/// The monomials in feature order, each as its sorted list of variable indices (the empty list
/// is the constant 1; `[0, 2]` is `λ_1 λ_3`).
pub fn monomials(dim: usize, degree: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::with_capacity(num_features(dim, degree));
    for deg in 0..=degree {
        let mut current = Vec::with_capacity(deg);
        push_combinations(dim, deg, 0, &mut current, &mut out);
    }
    out
}

/// Every non-decreasing index tuple of length `deg` starting at `from`, lexicographically.
fn push_combinations(
    dim: usize,
    deg: usize,
    from: usize,
    current: &mut Vec<usize>,
    out: &mut Vec<Vec<usize>>,
) {
    if current.len() == deg {
        out.push(current.clone());
        return;
    }
    for i in from..dim {
        current.push(i);
        push_combinations(dim, deg, i, current, out);
        current.pop();
    }
}

/// Human-readable names of the features (`1`, `l1`, `l1*l2`, …), 1-based as in the paper.
pub fn feature_names(dim: usize, degree: usize) -> Vec<String> {
    monomials(dim, degree)
        .into_iter()
        .map(|m| {
            if m.is_empty() {
                "1".to_string()
            } else {
                m.iter()
                    .map(|i| format!("l{}", i + 1))
                    .collect::<Vec<_>>()
                    .join("*")
            }
        })
        .collect()
}

/// `φ_p(λ)`: the feature vector of one λ, in [`monomials`] order.
pub fn features(lambda: &[f64], degree: usize) -> Vec<f64> {
    // Build degree by degree: each monomial of degree k is a monomial of degree k−1 (its prefix)
    // times one more variable, so reuse the previous values instead of recomputing products.
    let monos = monomials(lambda.len(), degree);
    let mut values: Vec<f64> = Vec::with_capacity(monos.len());
    let mut index_of: std::collections::HashMap<&[usize], usize> = Default::default();
    for (k, m) in monos.iter().enumerate() {
        let v = match m.split_last() {
            None => 1.0,
            Some((&last, prefix)) => values[index_of[prefix]] * lambda[last],
        };
        index_of.insert(m.as_slice(), k);
        values.push(v);
    }
    values
}

/// A fitted polynomial score model `f(λ) = φ_p(λ) · c`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolyFit {
    /// Dimension d of λ.
    pub dim: usize,
    /// Polynomial degree p.
    pub degree: usize,
    /// Ridge strength used (0 = exact minimum-norm least squares).
    pub ridge: f64,
    /// Coefficients `c`, one per feature in [`monomials`] order.
    pub coefficients: Vec<f64>,
    /// Numerical rank of the design matrix.
    pub rank: usize,
}

impl PolyFit {
    /// Fit `scores[i] ≈ f(points[i])` (see the module docs). Points need not lie on the simplex.
    pub fn fit(points: &[Vec<f64>], scores: &[f64], degree: usize, ridge: f64) -> Result<Self> {
        if points.is_empty() {
            return Err(MathError::Empty { what: "points" });
        }
        check_len("scores", scores.len(), points.len(), "point")?;
        check_finite("scores", scores)?;
        let dim = points[0].len();
        if dim == 0 {
            return Err(MathError::Empty {
                what: "lambda dimension",
            });
        }
        let nf = binomial(dim + degree, degree);
        check_param(
            "degree",
            degree as f64,
            nf <= MAX_FEATURES as f64,
            "a degree whose C(d+p, p) feature count is at most 100,000",
        )?;
        // The design matrix Φ: one row of features per observed point. It is tiny (points ×
        // C(d+p, p)), so it is built densely and handed to the SVD solver as is.
        let mut rows = Vec::with_capacity(points.len());
        for p in points {
            check_len("point lambda", p.len(), dim, "dimension")?;
            check_finite("point lambda", p)?;
            rows.push(features(p, degree));
        }
        let sol = least_squares(&Matrix::from_rows(&rows)?, scores, ridge)?;
        Ok(Self {
            dim,
            degree,
            ridge,
            coefficients: sol.x,
            rank: sol.rank,
        })
    }

    /// `f(λ)`.
    pub fn predict(&self, lambda: &[f64]) -> Result<f64> {
        check_len("lambda", lambda.len(), self.dim, "dimension")?;
        check_finite("lambda", lambda)?;
        Ok(features(lambda, self.degree)
            .iter()
            .zip(&self.coefficients)
            .map(|(f, c)| f * c)
            .sum())
    }
}

/// Where the candidate λ come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CandidateSource {
    /// Given explicitly (e.g. the paper's Table 2).
    Given {
        /// The candidate λ.
        candidates: Vec<Vec<f64>>,
    },
    /// Every point of the simplex grid with this step.
    Grid {
        /// Grid step (1/step an integer).
        step: f64,
    },
    /// `count` draws from a symmetric Dirichlet(α).
    Dirichlet {
        /// Number of candidates.
        count: usize,
        /// Concentration α > 0 (1 = uniform).
        alpha: f64,
        /// Seed of the draws.
        seed: u64,
    },
}

impl CandidateSource {
    /// The candidates for λ of dimension `dim`.
    pub fn generate(&self, dim: usize) -> Result<Vec<Vec<f64>>> {
        match self {
            CandidateSource::Given { candidates } => {
                if candidates.is_empty() {
                    return Err(MathError::Empty { what: "candidates" });
                }
                for c in candidates {
                    check_len("candidate lambda", c.len(), dim, "dimension")?;
                    check_finite("candidate lambda", c)?;
                }
                Ok(candidates.clone())
            }
            CandidateSource::Grid { step } => simplex_grid(dim, *step),
            CandidateSource::Dirichlet { count, alpha, seed } => {
                // A private stream seeded here: the candidates depend only on (count, α, seed),
                // never on how many λ a training sampler has drawn.
                check_param("alpha", *alpha, *alpha > 0.0, "α > 0")?;
                if *count == 0 {
                    return Err(MathError::Empty { what: "candidates" });
                }
                let mut rng = Rng::seed_from_u64(*seed);
                let a = vec![*alpha; dim];
                Ok((0..*count).map(|_| rng.dirichlet(&a)).collect())
            }
        }
    }
}

/// `softmax(τ · f)`: sampling probabilities of candidates with predicted scores `f`. τ ≥ 0
/// (τ = 0 is uniform; large τ concentrates on the best candidate).
pub fn selection_probs(scores: &[f64], tau: f64) -> Result<Vec<f64>> {
    if scores.is_empty() {
        return Err(MathError::Empty {
            what: "candidate scores",
        });
    }
    check_param("tau", tau, tau >= 0.0, "τ ≥ 0")?;
    check_finite("candidate scores", scores)?;
    // τ multiplies (as in the paper's softmax(τ f)) rather than divides: scores are accuracies
    // that differ in the third decimal, and τ = 100 turns a 0.01 gap into a factor e.
    let z: Vec<f64> = scores.iter().map(|f| tau * f).collect();
    Ok(softmax(&z))
}

/// A complete schedule: the fit, the scored candidates and their sampling probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The polynomial fit.
    pub fit: PolyFit,
    /// Candidate λ.
    pub candidates: Vec<Vec<f64>>,
    /// `f(λ)` of each candidate.
    pub scores: Vec<f64>,
    /// `softmax(τ f)` over the candidates.
    pub probs: Vec<f64>,
    /// τ used.
    pub tau: f64,
}

impl Schedule {
    /// Fit `points → scores`, then score and weight the candidates.
    pub fn build(
        points: &[Vec<f64>],
        scores: &[f64],
        degree: usize,
        ridge: f64,
        candidates: &CandidateSource,
        tau: f64,
    ) -> Result<Self> {
        let fit = PolyFit::fit(points, scores, degree, ridge)?;
        let candidates = candidates.generate(fit.dim)?;
        let predicted = candidates
            .iter()
            .map(|c| fit.predict(c))
            .collect::<Result<Vec<_>>>()?;
        let probs = selection_probs(&predicted, tau)?;
        Ok(Self {
            fit,
            candidates,
            scores: predicted,
            probs,
            tau,
        })
    }

    /// The schedule as a λ table, ready for [`crate::sampler::LambdaSampler`].
    pub fn to_source(&self) -> LambdaSource {
        LambdaSource::Table {
            rows: self
                .candidates
                .iter()
                .zip(&self.probs)
                .map(|(l, &p)| TableRow {
                    lambda: l.clone(),
                    prob: p,
                })
                .collect(),
        }
    }

    /// Draw one candidate index with the schedule's probabilities.
    pub fn sample_index(&self, rng: &mut Rng) -> usize {
        rng.categorical(&self.probs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_order_and_count() {
        assert_eq!(num_features(4, 2), 15);
        assert_eq!(num_features(3, 3), 20);
        assert_eq!(
            feature_names(3, 2),
            vec!["1", "l1", "l2", "l3", "l1*l1", "l1*l2", "l1*l3", "l2*l2", "l2*l3", "l3*l3"]
        );
        let f = features(&[2.0, 3.0, 5.0], 3);
        assert_eq!(f.len(), 20);
        assert_eq!(
            &f[..10],
            &[1.0, 2.0, 3.0, 5.0, 4.0, 6.0, 10.0, 9.0, 15.0, 25.0]
        );
        assert_eq!(f[10], 8.0); // l1*l1*l1
        assert_eq!(f[19], 125.0); // l3*l3*l3
    }

    #[test]
    fn selection_probs_are_softmax_of_tau_f() {
        let p = selection_probs(&[0.0, 0.01], 100.0).unwrap();
        assert!((p[1] / p[0] - 1.0f64.exp()).abs() < 1e-12);
        assert_eq!(selection_probs(&[0.3, 0.7], 0.0).unwrap(), vec![0.5, 0.5]);
    }
}
