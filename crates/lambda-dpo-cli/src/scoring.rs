//! What `score` and `eval-prefs` share: the reference flags and what they resolve to, log-probs
//! of one list under a model (+ adapter), and input checks that name `file:line` of a list.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use lambda_dpo::data::{DataError, MissingPolicy, RenderedList};
use lambda_dpo_model::{Adapter, LoraRun, Model, ScoreOptions, ScoreRequest};

use crate::input_error::InputError;

/// Where the reference log-probs come from (`--ref-model`, `--ref-adapter`, `--reference-free`).
#[derive(clap::Args, Debug, Clone)]
pub struct RefArgs {
    /// Reference model folder (e.g. the SFT model). Default: --model with the adapter disabled.
    #[arg(long, conflicts_with = "reference_free")]
    pub ref_model: Option<PathBuf>,
    /// PEFT LoRA adapter for the reference, on --ref-model (or on --model when no --ref-model).
    #[arg(long, conflicts_with = "reference_free")]
    pub ref_adapter: Option<PathBuf>,
    /// Reference log-probs are zeros (the λ-DPO authors' LoRA runs).
    #[arg(long)]
    pub reference_free: bool,
}

/// Where the reference log-probs come from, resolved from the flags.
pub enum RefSource {
    /// The policy model with its adapter disabled.
    DisabledAdapter,
    /// A separate model, no adapter.
    Model(Model),
    /// A model (the policy's base when `None`) with its own adapter.
    Adapted(Option<Model>, Adapter),
    /// Zeros.
    Free,
}

impl RefSource {
    /// Loads what the flags name; `uses_reference = false` (a reference-free loss) ignores them
    /// with a note naming `loss`.
    pub fn resolve(
        flags: &RefArgs,
        uses_reference: bool,
        loss: &str,
        dtype: DType,
        device: &Device,
        model: &Model,
    ) -> Result<Self> {
        if flags.reference_free {
            return Ok(RefSource::Free);
        }
        if !uses_reference {
            if flags.ref_model.is_some() || flags.ref_adapter.is_some() {
                eprintln!("note: {loss} has no reference; --ref-model/--ref-adapter are ignored");
            }
            return Ok(RefSource::Free);
        }
        let ref_model = match &flags.ref_model {
            Some(dir) => Some(
                Model::load(dir, dtype, device)
                    .with_context(|| format!("loading reference model {}", dir.display()))?,
            ),
            None => None,
        };
        Ok(match (ref_model, &flags.ref_adapter) {
            (None, None) => RefSource::DisabledAdapter,
            (Some(m), None) => RefSource::Model(m),
            (m, Some(dir)) => {
                let config = &m.as_ref().unwrap_or(model).config;
                let a = Adapter::load(dir, config, device)
                    .with_context(|| format!("loading reference adapter {}", dir.display()))?;
                RefSource::Adapted(m, a)
            }
        })
    }

    /// One line for the stderr header.
    pub fn describe(&self, flags: &RefArgs, policy_model: &Path) -> String {
        let show = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        };
        match self {
            RefSource::DisabledAdapter => {
                format!("{} with the adapter disabled", policy_model.display())
            }
            RefSource::Model(_) => show(&flags.ref_model),
            RefSource::Adapted(Some(_), _) => {
                format!("{} + {}", show(&flags.ref_model), show(&flags.ref_adapter))
            }
            RefSource::Adapted(None, _) => {
                format!("{} + {}", policy_model.display(), show(&flags.ref_adapter))
            }
            RefSource::Free => "none (reference-free)".into(),
        }
    }

    /// The smallest vocabulary of the models in play (token ids must stay below it).
    pub fn vocab_limit(&self, policy: &Model) -> usize {
        match self {
            RefSource::Model(m) | RefSource::Adapted(Some(m), _) => {
                policy.config.vocab_size.min(m.config.vocab_size)
            }
            _ => policy.config.vocab_size,
        }
    }
}

/// `ℓ(y_i)`, the summed log-prob of every response after `prompt`, under `model` (+ `adapter`),
/// in one forward for the whole list (no dropout, no graph kept).
pub fn list_logps(
    model: &Model,
    adapter: Option<&Adapter>,
    prompt: &[u32],
    responses: &[Vec<u32>],
    source: &str,
) -> Result<Vec<f64>> {
    let ids: Vec<Vec<u32>> = responses
        .iter()
        .map(|r| prompt.iter().chain(r).copied().collect())
        .collect();
    let requests: Vec<ScoreRequest<'_>> = ids
        .iter()
        .map(|ids| ScoreRequest {
            ids,
            start: prompt.len(),
        })
        .collect();
    let run = adapter.map(|adapter| LoraRun {
        adapter,
        dropout_seed: None,
    });
    let sums = model
        .score(&requests, run, ScoreOptions::default())
        .with_context(|| format!("log-probs of {source}"))?
        .sums; // [N]
    Ok(sums.to_dtype(DType::F64)?.to_vec1()?)
}

/// A list the model can score: a non-empty prompt and every token id inside the vocabulary.
pub fn check_list(path: &Path, list: &RenderedList, vocab: usize) -> Result<()> {
    let fields = std::iter::once(("prompt_ids".to_string(), &list.prompt_ids)).chain(
        list.responses
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("responses[{i}]"), r)),
    );
    for (field, ids) in fields {
        if ids.is_empty() {
            let what = if field == "prompt_ids" {
                "a non-empty prompt (the first response token needs context)"
            } else {
                "at least one response token"
            };
            return Err(at_list(path, list, &field, format!("expected {what}, found none")).into());
        }
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(at_list(
                path,
                list,
                &field,
                format!(
                    "expected token ids below the model's vocabulary size {vocab}, found {bad}"
                ),
            )
            .hint("the data was tokenized for a different model?")
            .into());
        }
    }
    Ok(())
}

/// An input error at a list's `file:line` (its `source`).
pub fn at_list(path: &Path, list: &RenderedList, field: &str, message: String) -> InputError {
    let line = list
        .source
        .rsplit_once(':')
        .and_then(|(_, l)| l.parse::<usize>().ok());
    InputError::new(path, line, Some(field), message)
}

/// A data error as the CLI's input error (exit code 2), keeping file, line, field and hint.
pub fn data_error(e: DataError) -> anyhow::Error {
    let mut message = e.message();
    if e.line.is_none() {
        if let Some(r) = e.record {
            message = format!("record {r}: {message}");
        }
    }
    let mut ie = InputError::new(e.file.clone(), e.line, e.field.as_deref(), message);
    if let Some(h) = &e.hint {
        ie = ie.hint(h.clone());
    }
    anyhow::Error::new(ie)
}

/// `--missing`: `drop`, `error` or a default rating.
pub fn parse_missing(s: &str) -> Result<MissingPolicy, String> {
    match s {
        "drop" | "drop-dimension" => Ok(MissingPolicy::DropDimension),
        "error" => Ok(MissingPolicy::Error),
        other => other
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(MissingPolicy::Default)
            .ok_or_else(|| {
                format!("expected drop, error or a default rating (e.g. 1), found {s:?}")
            }),
    }
}

/// `--target-temperature`: T ≥ 0 and finite.
pub fn check_temperature(t: f64) -> Result<()> {
    if t >= 0.0 && t.is_finite() {
        return Ok(());
    }
    Err(InputError::new(
        "--target-temperature",
        None,
        None,
        format!("expected T ≥ 0, found {t}"),
    )
    .hint("T = 1 is the paper's default; 0 is the hard argmax")
    .into())
}
