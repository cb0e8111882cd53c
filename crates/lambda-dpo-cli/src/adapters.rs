//! Which adapter a command runs, from `--adapter` (repeatable) and `--lambda`: none, one
//! adapter, one λ-conditioned adapter at λ (SVD-LoRA: λ set in the adapter; prompt conditioning:
//! λ to render into the prompts), or the soup of several (Σ λ_k ΔW_k). Shared by `generate` and
//! `export`, so both accept and refuse exactly the same combinations.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use lambda_dpo::train::conditioning::{quantize_lambda, Conditioning, ConditioningInfo};
use lambda_dpo_model::{soup, Adapter, ModelConfig};

use crate::input_error::InputError;

/// `--adapter` / `--lambda` combinations: none, one adapter, or a soup (n ≥ 2 with n weights).
pub fn check_adapter_flags(adapters: &[PathBuf], lambda: Option<&[f64]>) -> Result<()> {
    let n = adapters.len();
    match (lambda, n) {
        (None, 0 | 1) => Ok(()),
        (None, n) => Err(InputError::new(
            "--adapter",
            None,
            None,
            format!("given {n} times without --lambda"),
        )
        .hint(format!(
            "combine them into an adapter soup with one weight each, e.g. --lambda {}",
            vec![format!("{:.3}", 1.0 / n as f64); n].join(",")
        ))
        .into()),
        (Some(_), 0) => Err(
            InputError::new("--lambda", None, None, "given without --adapter")
                .hint("--lambda weights the adapters of a soup: pass one --adapter per weight")
                .into(),
        ),
        // One adapter: λ is checked against its conditioning when it is loaded.
        (Some(_), 1) => Ok(()),
        (Some(l), n) if l.len() != n => Err(InputError::new(
            "--lambda",
            None,
            None,
            format!(
                "{} weights for {n} adapters; expected one weight per --adapter",
                l.len()
            ),
        )
        .into()),
        (Some(l), _) => match l.iter().position(|x| !x.is_finite()) {
            Some(i) => Err(InputError::new(
                "--lambda",
                None,
                None,
                format!("weight {} is {}; expected a finite number", i + 1, l[i]),
            )
            .into()),
            None => Ok(()),
        },
    }
}

/// Dimension names and the quantised λ to render into every prompt (prompt conditioning).
pub type PromptLambda = (Vec<String>, Vec<f64>);

/// The adapter to run (none, the one given — at λ for SVD-LoRA —, or the soup of several) and,
/// for a prompt-conditioned adapter, what to render into the prompts.
pub fn load_adapter(
    adapters: &[PathBuf],
    lambda: Option<&[f64]>,
    config: &ModelConfig,
    device: &Device,
) -> Result<(Option<Adapter>, Option<PromptLambda>)> {
    check_adapter_flags(adapters, lambda)?;
    let mut loaded = Vec::with_capacity(adapters.len());
    for dir in adapters {
        loaded.push(
            Adapter::load(dir, config, device)
                .with_context(|| format!("loading adapter {}", dir.display()))?,
        );
    }
    match (loaded.len(), lambda) {
        (0, _) => Ok((None, None)),
        (1, None) => {
            let a = loaded.pop().expect("one");
            if a.is_lambda_conditioned() {
                return Err(InputError::new(
                    "--lambda",
                    None,
                    None,
                    format!(
                        "missing: {} is an SVD-LoRA adapter and runs at a λ over {} preference dimensions",
                        adapters[0].display(),
                        a.config.lambda_dims
                    ),
                )
                .hint(format!(
                    "pass e.g. --lambda {}",
                    vec![format!("{:.3}", 1.0 / a.config.lambda_dims as f64); a.config.lambda_dims]
                        .join(",")
                ))
                .into());
            }
            Ok((Some(a), None))
        }
        (1, Some(lambda)) => {
            let dir = &adapters[0];
            let a = loaded.pop().expect("one");
            let info = ConditioningInfo::load(dir)
                .with_context(|| format!("reading the conditioning record of {}", dir.display()))?;
            let bad = |msg: String| -> anyhow::Error {
                InputError::new("--lambda", None, None, msg).into()
            };
            match info.map(|i| (i.conditioning, i.dimensions)) {
                Some((Conditioning::Prompt, dims)) => {
                    check_simplex(lambda, &dims)?;
                    Ok((Some(a), Some((dims, quantize_lambda(lambda)))))
                }
                _ if a.is_lambda_conditioned() => Ok((
                    Some(
                        a.with_lambda(lambda)
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                    None,
                )),
                _ => Err(InputError::new(
                    "--lambda",
                    None,
                    None,
                    format!("{} is not λ-conditioned (no lambda_conditioning.json from a run with lambda.conditioning = \"prompt\" or \"svd-lora\"), so there is no λ to set", dir.display()),
                )
                .hint("drop --lambda to run the adapter as it is, or pass one --adapter per preference dimension to combine them into a soup")
                .into()),
            }
        }
        (_, Some(lambdas)) => {
            let refs: Vec<&Adapter> = loaded.iter().collect();
            let s = soup(&refs, lambdas).with_context(|| {
                format!(
                    "combining {} adapters into a soup with λ = {lambdas:?}",
                    refs.len()
                )
            })?;
            Ok((Some(s), None))
        }
        (_, None) => unreachable!("checked by check_adapter_flags"),
    }
}

/// λ for a prompt-conditioned adapter: one weight per dimension, on the simplex.
fn check_simplex(lambda: &[f64], dims: &[String]) -> Result<()> {
    let sum: f64 = lambda.iter().sum();
    if lambda.len() != dims.len() {
        return Err(InputError::new(
            "--lambda",
            None,
            None,
            format!(
                "{} weights, but the adapter was trained on {} preference dimensions ({})",
                lambda.len(),
                dims.len(),
                dims.join(", ")
            ),
        )
        .into());
    }
    if lambda.iter().any(|w| !w.is_finite() || *w < 0.0) || (sum - 1.0).abs() > 1e-6 {
        return Err(InputError::new(
            "--lambda",
            None,
            None,
            format!(
                "{lambda:?} is not on the simplex (weights ≥ 0 summing to 1; the sum is {sum})"
            ),
        )
        .hint(format!("weights in the order {}", dims.join(", ")))
        .into());
    }
    Ok(())
}
