//! Adapter soups: one LoRA adapter computing a λ-weighted sum of several adapters' updates,
//! exactly, by concatenating their ranks (DESIGN.md §1, inference-time λ, option c).
//!
//! ```text
//! ΔW_k = s_k · B_k · A_k                        A_k: [r_k, in], B_k: [out, r_k]
//! A    = [A_1; A_2; …; A_m]                     [Σ r_k, in]   (rows stacked)
//! B    = [c_1 B_1, c_2 B_2, …, c_m B_m]         [out, Σ r_k]  (columns side by side)
//! c_k  = λ_k · s_k / s                          s = the soup's own scale
//! s · B · A = Σ_k s · c_k · B_k · A_k = Σ_k λ_k ΔW_k
//! ```
//!
//! What lives here: building and validating the soup. What does not: where the per-dimension
//! adapters come from (one-hot λ training runs) or where λ comes from (the CLI, a scheduler).
//! The result is an ordinary [`Adapter`]: it runs through the same forward and saves with
//! [`Adapter::save`] as a PEFT folder.

use candle_core::{Tensor, Var};

use crate::error::ModelError;
use crate::lora::{Adapter, LoraConfig, LoraLayer, Target};

/// Why a set of adapters cannot be combined.
#[derive(Debug, thiserror::Error)]
pub enum SoupError {
    #[error("an adapter soup needs at least one adapter")]
    Empty,

    #[error("{found} λ weights for {expected} adapters; expected one weight per adapter")]
    LambdaCount { expected: usize, found: usize },

    #[error("λ[{index}] = {value}; weights must be finite")]
    NonFiniteLambda { index: usize, value: f64 },

    #[error(
        "adapter {index} has {found} layers, adapter 0 has {expected}\nhint: every adapter of a soup must be trained on the same base model"
    )]
    LayerCount {
        index: usize,
        expected: usize,
        found: usize,
    },

    #[error(
        "adapter {index} {} `{}` in layer {layer}, adapter 0 {}\nhint: train every adapter of a soup with the same target modules",
        if *.present { "adapts" } else { "does not adapt" },
        .target.name(),
        if *.present { "does not" } else { "does" }
    )]
    Targets {
        index: usize,
        layer: usize,
        target: Target,
        /// Whether adapter `index` has the projection (adapter 0 then lacks it).
        present: bool,
    },

    #[error(
        "adapter {index}, layer {layer} `{}`: update shape [out, in] = {found:?}, adapter 0 has {expected:?}\nhint: every adapter of a soup must be trained on the same base model",
        .target.name()
    )]
    Shape {
        index: usize,
        layer: usize,
        target: Target,
        expected: [usize; 2],
        found: [usize; 2],
    },

    /// A tensor operation failed (boxed: `ModelError` is large and this path is rare).
    #[error(transparent)]
    Model(Box<ModelError>),
}

impl From<ModelError> for SoupError {
    fn from(e: ModelError) -> Self {
        SoupError::Model(Box::new(e))
    }
}

impl From<candle_core::Error> for SoupError {
    fn from(e: candle_core::Error) -> Self {
        ModelError::Candle(e).into()
    }
}

/// Combines `adapters` into one adapter whose update is `Σ_k λ_k ΔW_k` in every projection.
///
/// λ need not sum to 1: with Σλ = 1 (λ on the simplex, the paper's preference weights) the soup
/// is a convex combination of the adapters' updates, so one-hot λ reproduces adapter k exactly;
/// Σλ ≠ 1 scales the combined update (λ = (1, 1) applies both in full, a negative weight
/// subtracts an update — "task arithmetic"). Ranks may differ; targets and shapes must match.
///
/// The soup's rank is `r = Σ_k r_k` and its `lora_alpha = r` (no rsLoRA), so its scale
/// `LoraConfig::scale_for_rank(r)` is exactly 1 and every `λ_k s_k` is folded into `B`. A
/// projection whose concatenated rank differs from `r` (sources with PEFT `rank_pattern`) keeps
/// the scale the PEFT loader will compute for its actual rank, `α / r_layer`, with `B` rescaled
/// to match, so saving and loading back is exact; PEFT itself only loads such a file with a
/// `rank_pattern`, which [`Adapter::save`] does not write.
pub fn soup(adapters: &[&Adapter], lambdas: &[f64]) -> Result<Adapter, SoupError> {
    let first = adapters.first().ok_or(SoupError::Empty)?;
    if lambdas.len() != adapters.len() {
        return Err(SoupError::LambdaCount {
            expected: adapters.len(),
            found: lambdas.len(),
        });
    }
    if let Some((index, &value)) = lambdas.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(SoupError::NonFiniteLambda { index, value });
    }
    if let Some(index) = adapters.iter().position(|a| a.is_lambda_conditioned()) {
        return Err(ModelError::Input(format!(
            "adapter {index} of the soup is an SVD-LoRA (λ-conditioned) adapter; a soup combines plain LoRA adapters\nhint: run it alone with --lambda, which sets its λ directly"
        ))
        .into());
    }
    let layers = first.layers.len();
    for (index, a) in adapters.iter().enumerate().skip(1) {
        if a.layers.len() != layers {
            return Err(SoupError::LayerCount {
                index,
                expected: layers,
                found: a.layers.len(),
            });
        }
    }
    // Validate everything before building anything.
    for layer in 0..layers {
        for target in Target::ALL {
            let reference = first.get(layer, target).map(update_shape).transpose()?;
            for (index, a) in adapters.iter().enumerate().skip(1) {
                let shape = a.get(layer, target).map(update_shape).transpose()?;
                match (reference, shape) {
                    (None, None) => {}
                    (Some(expected), Some(found)) if expected != found => {
                        return Err(SoupError::Shape {
                            index,
                            layer,
                            target,
                            expected,
                            found,
                        })
                    }
                    (Some(_), Some(_)) => {}
                    (r, _) => {
                        return Err(SoupError::Targets {
                            index,
                            layer,
                            target,
                            present: r.is_none(),
                        })
                    }
                }
            }
        }
    }

    let r: usize = adapters.iter().map(|a| a.config.r).sum();
    let config = LoraConfig {
        r,
        alpha: r as f64,
        // A soup is for inference; training it further would start from a fixed combination.
        dropout: 0.0,
        targets: first.config.targets.clone(),
        use_rslora: false,
        lambda_dims: 0,
    };
    let mut out = Adapter {
        config: config.clone(),
        layers: vec![Default::default(); layers],
        lambda: None,
    };
    for (layer, row) in out.layers.iter_mut().enumerate() {
        for target in Target::ALL {
            let parts: Vec<&LoraLayer> = adapters
                .iter()
                .filter_map(|a| a.get(layer, target))
                .collect();
            if parts.is_empty() {
                continue;
            }
            let rank: usize = parts
                .iter()
                .map(|l| l.a.dim(0))
                .sum::<candle_core::Result<_>>()?;
            let scale = config.scale_for_rank(rank);
            let a_parts: Vec<Tensor> = parts.iter().map(|l| l.a.as_tensor().detach()).collect();
            let b_parts = parts
                .iter()
                .zip(lambdas)
                .map(|(l, &lambda)| l.b.as_tensor().detach() * (lambda * l.scale / scale))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let a = Tensor::cat(&a_parts, 0)?; // [Σ r_k, in]
            let b = Tensor::cat(&b_parts, 1)?; // [out, Σ r_k]
            row[target.index()] = Some(LoraLayer {
                a: Var::from_tensor(&a)?,
                b: Var::from_tensor(&b)?,
                scale,
                svd: None,
            });
        }
    }
    Ok(out)
}

/// `[out, in]` of one adapted projection, checking that A and B agree on the rank.
fn update_shape(l: &LoraLayer) -> Result<[usize; 2], SoupError> {
    let (ra, inp) = l.a.as_tensor().dims2()?;
    let (out, rb) = l.b.as_tensor().dims2()?;
    if ra != rb {
        return Err(ModelError::Input(format!(
            "LoRA layer with A [{ra}, {inp}] and B [{out}, {rb}]: ranks differ"
        ))
        .into());
    }
    Ok([out, inp])
}
