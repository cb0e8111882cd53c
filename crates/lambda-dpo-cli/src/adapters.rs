//! Which adapter a command runs, from `--adapter` (repeatable) and `--lambda`: none, one
//! adapter, one λ-conditioned adapter at λ (SVD-LoRA: λ set in the adapter; prompt conditioning:
//! λ to render into the prompts), or the soup of several (Σ λ_k ΔW_k). Shared by `generate` and
//! `export`, so both accept and refuse exactly the same combinations.

use std::borrow::Cow;
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
    let set = AdapterSet::load(adapters, config, device)?;
    let (adapter, prompt) = set.bind(lambda)?;
    Ok((adapter.map(Cow::into_owned), prompt))
}

/// The adapters of `--adapter`, loaded once, with their conditioning records; [`AdapterSet::bind`]
/// turns them into the policy at a λ (what `eval-prefs --sweep` does at every grid point).
pub struct AdapterSet {
    paths: Vec<PathBuf>,
    loaded: Vec<Adapter>,
    /// The conditioning record of a single adapter (`None` for soups and plain adapters).
    info: Option<ConditioningInfo>,
}

impl AdapterSet {
    pub fn load(adapters: &[PathBuf], config: &ModelConfig, device: &Device) -> Result<Self> {
        let mut loaded = Vec::with_capacity(adapters.len());
        for dir in adapters {
            loaded.push(
                Adapter::load(dir, config, device)
                    .with_context(|| format!("loading adapter {}", dir.display()))?,
            );
        }
        let info = match adapters {
            [dir] => ConditioningInfo::load(dir)
                .with_context(|| format!("reading the conditioning record of {}", dir.display()))?,
            _ => None,
        };
        Ok(Self {
            paths: adapters.to_vec(),
            loaded,
            info,
        })
    }

    /// Whether the policy changes with λ: a soup, an SVD-LoRA adapter or a prompt-conditioned one.
    pub fn steerable(&self) -> bool {
        self.loaded.len() > 1
            || self.loaded.iter().any(Adapter::is_lambda_conditioned)
            || self.prompt_conditioned()
    }

    /// Whether λ is rendered into the prompts (a prompt-conditioned adapter).
    pub fn prompt_conditioned(&self) -> bool {
        self.info
            .as_ref()
            .is_some_and(|i| i.conditioning == Conditioning::Prompt)
    }

    /// The dimension names a conditioned adapter was trained on, in λ's order.
    pub fn dimensions(&self) -> Option<&[String]> {
        self.info.as_ref().map(|i| i.dimensions.as_slice())
    }

    /// The policy at `lambda` (see [`load_adapter`]): borrowed when nothing depends on λ.
    pub fn bind(
        &self,
        lambda: Option<&[f64]>,
    ) -> Result<(Option<Cow<'_, Adapter>>, Option<PromptLambda>)> {
        check_adapter_flags(&self.paths, lambda)?;
        match (self.loaded.as_slice(), lambda) {
            ([], _) => Ok((None, None)),
            ([a], None) => {
                if a.is_lambda_conditioned() {
                    return Err(InputError::new(
                        "--lambda",
                        None,
                        None,
                        format!(
                            "missing: {} is an SVD-LoRA adapter and runs at a λ over {} preference dimensions",
                            self.paths[0].display(),
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
                Ok((Some(Cow::Borrowed(a)), None))
            }
            ([a], Some(lambda)) => {
                let bad = |msg: String| -> anyhow::Error {
                    InputError::new("--lambda", None, None, msg).into()
                };
                match self.info.as_ref().map(|i| (i.conditioning, &i.dimensions)) {
                    Some((Conditioning::Prompt, dims)) => {
                        check_simplex(lambda, dims)?;
                        Ok((
                            Some(Cow::Borrowed(a)),
                            Some((dims.clone(), quantize_lambda(lambda))),
                        ))
                    }
                    _ if a.is_lambda_conditioned() => Ok((
                        Some(Cow::Owned(
                            a.with_lambda(lambda).map_err(|e| bad(e.to_string()))?,
                        )),
                        None,
                    )),
                    _ => Err(InputError::new(
                        "--lambda",
                        None,
                        None,
                        format!("{} is not λ-conditioned (no lambda_conditioning.json from a run with lambda.conditioning = \"prompt\" or \"svd-lora\"), so there is no λ to set", self.paths[0].display()),
                    )
                    .hint("drop --lambda to run the adapter as it is, or pass one --adapter per preference dimension to combine them into a soup")
                    .into()),
                }
            }
            (loaded, Some(lambdas)) => {
                let refs: Vec<&Adapter> = loaded.iter().collect();
                let s = soup(&refs, lambdas).with_context(|| {
                    format!(
                        "combining {} adapters into a soup with λ = {lambdas:?}",
                        refs.len()
                    )
                })?;
                Ok((Some(Cow::Owned(s)), None))
            }
            (_, None) => unreachable!("checked by check_adapter_flags"),
        }
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
