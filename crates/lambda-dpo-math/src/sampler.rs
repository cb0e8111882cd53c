//! λ samplers: where each training example's preference weights come from.
//!
//! A [`LambdaSampler`] is a [`LambdaSource`] (what to draw) plus its random stream and draw
//! counter. It serialises to a few numbers, so a checkpoint stores it and a resumed run draws
//! exactly the λ sequence the uninterrupted run would have drawn.
//!
//! Sources: a fixed vector; one-hot cycling (the paper's unimodal ablation); Dirichlet(α)
//! (α = 1 is uniform on the simplex); a table with probabilities (the authors' code, and what
//! the performance-driven scheduler produces); uniform draws from a simplex grid.

use serde::{Deserialize, Serialize};

use crate::error::{MathError, Result};
use crate::rng::Rng;
use crate::simplex::{grid_divisions, random_grid_point};
use crate::special::{check_finite, check_len, check_param, check_simplex, SIMPLEX_TOLERANCE};

/// One row of a λ table: a weight vector and its (unnormalised) sampling probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    /// λ (normalised onto the simplex when the sampler is built).
    pub lambda: Vec<f64>,
    /// Relative sampling weight ≥ 0.
    pub prob: f64,
}

/// What a [`LambdaSampler`] draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LambdaSource {
    /// The same λ every time.
    Fixed {
        /// λ on the simplex.
        lambda: Vec<f64>,
    },
    /// `e_1, e_2, …, e_d, e_1, …`: one preference dimension at a time.
    OneHotCycle {
        /// Number of dimensions d.
        dim: usize,
    },
    /// `λ ~ Dirichlet(α)`; α = (1, …, 1) is uniform on the simplex.
    Dirichlet {
        /// Concentration per dimension, each > 0.
        alpha: Vec<f64>,
    },
    /// A row drawn with probability proportional to its `prob`.
    Table {
        /// The rows (at least one).
        rows: Vec<TableRow>,
    },
    /// A uniform draw from the simplex grid with the given step (see [`crate::simplex`]).
    Grid {
        /// Number of dimensions d.
        dim: usize,
        /// Grid step; `1/step` must be an integer.
        step: f64,
    },
}

impl LambdaSource {
    /// Dirichlet with the same concentration on `dim` dimensions.
    pub fn dirichlet_symmetric(dim: usize, alpha: f64) -> Self {
        LambdaSource::Dirichlet {
            alpha: vec![alpha; dim],
        }
    }

    /// The λ table of the λ-DPO authors' LLaMA-Factory fork (dimension order: helpfulness,
    /// honesty, instruction-following, truthfulness).
    ///
    /// Provenance: `yuhui15/Multi-Preference-Lambda-weighted-DPO`,
    /// `lambda_dpo/src/llamafactory/train/dpo/lambda_scheduler.py` (`TableLambdaScheduler.TABLE`)
    /// at commit `155570d9545faa376ef6326ee5eb4676f455f47e`; later commits replaced it with the
    /// single row `([0, 1, 0, 0], 1.0)`. Values are copied as published: three rows sum to
    /// 1.001 or 0.999 and the probabilities sum to 0.999, so the sampler normalises both (the
    /// authors normalise the probabilities, not the rows).
    pub fn authors_table() -> Self {
        const TABLE: [([f64; 4], f64); 10] = [
            ([0.212, 0.334, 0.245, 0.209], 0.108),
            ([0.126, 0.237, 0.131, 0.507], 0.098),
            ([0.542, 0.079, 0.256, 0.123], 0.099),
            ([0.233, 0.721, 0.020, 0.025], 0.082),
            ([0.004, 0.334, 0.281, 0.381], 0.101),
            ([0.320, 0.069, 0.513, 0.099], 0.104),
            ([0.236, 0.155, 0.358, 0.251], 0.108),
            ([0.141, 0.110, 0.701, 0.048], 0.095),
            ([0.070, 0.198, 0.388, 0.344], 0.104),
            ([0.090, 0.139, 0.306, 0.465], 0.100),
        ];
        LambdaSource::Table {
            rows: TABLE
                .iter()
                .map(|(l, p)| TableRow {
                    lambda: l.to_vec(),
                    prob: *p,
                })
                .collect(),
        }
    }

    /// Number of preference dimensions this source produces.
    pub fn dim(&self) -> usize {
        match self {
            LambdaSource::Fixed { lambda } => lambda.len(),
            LambdaSource::OneHotCycle { dim } | LambdaSource::Grid { dim, .. } => *dim,
            LambdaSource::Dirichlet { alpha } => alpha.len(),
            LambdaSource::Table { rows } => rows.first().map_or(0, |r| r.lambda.len()),
        }
    }

    /// Validate and bring into canonical form (table rows and probabilities normalised).
    fn normalised(self) -> Result<Self> {
        if self.dim() == 0 {
            return Err(MathError::Empty {
                what: "lambda dimension",
            });
        }
        match self {
            LambdaSource::Fixed { lambda } => {
                check_simplex("lambda", &lambda, SIMPLEX_TOLERANCE)?;
                Ok(LambdaSource::Fixed { lambda })
            }
            LambdaSource::OneHotCycle { dim } => Ok(LambdaSource::OneHotCycle { dim }),
            LambdaSource::Dirichlet { alpha } => {
                check_finite("alpha", &alpha)?;
                if let Some(&a) = alpha.iter().find(|&&a| a <= 0.0) {
                    check_param("alpha", a, false, "every concentration α_k > 0")?;
                }
                Ok(LambdaSource::Dirichlet { alpha })
            }
            LambdaSource::Table { rows } => {
                let dim = rows[0].lambda.len();
                let probs: Vec<f64> = rows.iter().map(|r| r.prob).collect();
                check_finite("table probabilities", &probs)?;
                let total: f64 = probs.iter().sum();
                if probs.iter().any(|&p| p < 0.0) || total <= 0.0 {
                    return Err(MathError::NotOnSimplex {
                        what: "table probabilities",
                        sum: total,
                        min: probs.iter().copied().fold(f64::INFINITY, f64::min),
                        tolerance: 0.0,
                    });
                }
                // Normalise only what is off by more than rounding, so normalising twice (as a
                // checkpoint round trip does) leaves every value bit-for-bit unchanged.
                let fix = |x: f64, sum: f64| {
                    if (sum - 1.0).abs() <= 1e-12 {
                        x
                    } else {
                        x / sum
                    }
                };
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    check_len("table row lambda", row.lambda.len(), dim, "dimension")?;
                    check_finite("table row lambda", &row.lambda)?;
                    let sum: f64 = row.lambda.iter().sum();
                    let min = row.lambda.iter().copied().fold(f64::INFINITY, f64::min);
                    if min < 0.0 || sum <= 0.0 {
                        return Err(MathError::NotOnSimplex {
                            what: "table row lambda",
                            sum,
                            min,
                            tolerance: 0.0,
                        });
                    }
                    out.push(TableRow {
                        lambda: row.lambda.iter().map(|&l| fix(l, sum)).collect(),
                        prob: fix(row.prob, total),
                    });
                }
                Ok(LambdaSource::Table { rows: out })
            }
            LambdaSource::Grid { dim, step } => {
                grid_divisions(step)?;
                Ok(LambdaSource::Grid { dim, step })
            }
        }
    }
}

/// The serialised form of a sampler. Loading goes through `TryFrom`, so a hand-edited or
/// corrupted checkpoint is validated like a fresh source instead of producing off-simplex λ.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SamplerState {
    source: LambdaSource,
    rng: Rng,
    draws: u64,
}

/// A seeded λ sampler with serialisable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SamplerState", into = "SamplerState")]
pub struct LambdaSampler {
    source: LambdaSource,
    rng: Rng,
    draws: u64,
}

impl TryFrom<SamplerState> for LambdaSampler {
    type Error = MathError;
    fn try_from(s: SamplerState) -> Result<Self> {
        Ok(Self {
            source: s.source.normalised()?,
            rng: s.rng,
            draws: s.draws,
        })
    }
}

impl From<LambdaSampler> for SamplerState {
    fn from(s: LambdaSampler) -> Self {
        SamplerState {
            source: s.source,
            rng: s.rng,
            draws: s.draws,
        }
    }
}

impl LambdaSampler {
    /// Validate `source` and seed the stream.
    pub fn new(source: LambdaSource, seed: u64) -> Result<Self> {
        Ok(Self {
            source: source.normalised()?,
            rng: Rng::seed_from_u64(seed),
            draws: 0,
        })
    }

    /// The (normalised) source.
    pub fn source(&self) -> &LambdaSource {
        &self.source
    }

    /// Number of λ drawn so far.
    pub fn draws(&self) -> u64 {
        self.draws
    }

    /// Number of preference dimensions.
    pub fn dim(&self) -> usize {
        self.source.dim()
    }

    /// Draw the next λ (always on the simplex).
    pub fn sample(&mut self) -> Vec<f64> {
        // The counter advances for every source (even Fixed) so `draws` always equals the number
        // of λ handed out, which is what a resumed run checks against its step count.
        let draw = self.draws;
        self.draws += 1;
        match &self.source {
            LambdaSource::Fixed { lambda } => lambda.clone(),
            LambdaSource::OneHotCycle { dim } => {
                let mut l = vec![0.0; *dim];
                l[(draw % *dim as u64) as usize] = 1.0;
                l
            }
            LambdaSource::Dirichlet { alpha } => self.rng.dirichlet(alpha),
            LambdaSource::Table { rows } => {
                let probs: Vec<f64> = rows.iter().map(|r| r.prob).collect();
                rows[self.rng.categorical(&probs)].lambda.clone()
            }
            LambdaSource::Grid { dim, step } => {
                // `step` was validated in `new`, so this cannot fail.
                let k = grid_divisions(*step).unwrap_or(1);
                random_grid_point(&mut self.rng, *dim, k)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_cycle_and_fixed() {
        let mut s = LambdaSampler::new(LambdaSource::OneHotCycle { dim: 3 }, 0).unwrap();
        let got: Vec<Vec<f64>> = (0..4).map(|_| s.sample()).collect();
        assert_eq!(got[0], vec![1.0, 0.0, 0.0]);
        assert_eq!(got[2], vec![0.0, 0.0, 1.0]);
        assert_eq!(got[3], vec![1.0, 0.0, 0.0]);
        assert!(LambdaSampler::new(
            LambdaSource::Fixed {
                lambda: vec![0.5, 0.4]
            },
            0
        )
        .is_err());
    }

    #[test]
    fn authors_table_is_normalised() {
        let s = LambdaSampler::new(LambdaSource::authors_table(), 42).unwrap();
        let LambdaSource::Table { rows } = s.source() else {
            panic!()
        };
        assert_eq!(rows.len(), 10);
        let total: f64 = rows.iter().map(|r| r.prob).sum();
        assert!((total - 1.0).abs() < 1e-12);
        for r in rows {
            assert!((r.lambda.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
}
