//! λ-conditioning by prompt (Rewards-in-Context style): the weight vector λ is written into the
//! system message, during training (a fresh λ per example, the one its target is mixed with)
//! and at inference (from `--lambda`), so the policy *sees* the trade-off it is asked for.
//!
//! Without this, λ never reaches the model: the loss is linear in p^λ, so training on random λ
//! equals, in expectation, training on their mean, and the paper's "adjust λ at inference"
//! has nothing to adjust (DESIGN.md §1). The rendering is fixed and documented so that any
//! inference engine can reproduce it:
//!
//! ```text
//! Preference weights: helpfulness=0.25, honesty=0.50, truthfulness=0.25.
//! ```
//!
//! dimension names in the data's order, each weight with two decimals, on the 0.01 grid and
//! summing to exactly 1 (see [`quantize_lambda`]). When the prompt already has a system
//! message, the line is put before its text, separated by a blank line.
//!
//! What does *not* live here: sampling λ (the math crate's samplers), mixing targets.

use std::path::Path;

use lambda_dpo_model::{Message, Tokenizer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::{cut, Truncation};
use crate::train::error::{TrainError, TrainResult};

/// How λ reaches the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Conditioning {
    /// λ only weights the targets (the paper's formulation).
    #[default]
    None,
    /// λ rendered into the system message (see the module docs).
    Prompt,
    /// λ as m extra singular values of every LoRA update (Panacea's SVD-LoRA; the rendering
    /// lives in the adapter: `lambda_dpo_model::lora`).
    SvdLora,
}

/// The file written into a conditioned adapter (or model) folder, so `generate --lambda`
/// knows the dimensions and the rendering without the training config.
pub const CONDITIONING_FILE: &str = "lambda_conditioning.json";

/// What [`CONDITIONING_FILE`] holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditioningInfo {
    pub conditioning: Conditioning,
    /// Dimension names in λ's order.
    pub dimensions: Vec<String>,
    /// The rendering, for humans and other engines.
    pub format: String,
}

impl ConditioningInfo {
    pub fn new(dimensions: &[String]) -> Self {
        Self {
            conditioning: Conditioning::Prompt,
            dimensions: dimensions.to_vec(),
            format: "system message: Preference weights: <dim>=<w with 2 decimals>, ... . (weights on the 0.01 grid, summing to 1; before any existing system text, with a blank line)".into(),
        }
    }

    /// The record of an SVD-LoRA adapter: λ (in `dimensions`' order) fills the last m singular
    /// values of every update; nothing is rendered into the prompt.
    pub fn svd_lora(dimensions: &[String]) -> Self {
        Self {
            conditioning: Conditioning::SvdLora,
            dimensions: dimensions.to_vec(),
            format: "adapter: ΔW = (α/r)·B·diag(σ_1..σ_r, s·λ_1..s·λ_m)·A with λ in the order of `dimensions` (SVD-LoRA); the prompt is unchanged".into(),
        }
    }

    pub fn save(&self, dir: &Path) -> TrainResult<()> {
        let p = dir.join(CONDITIONING_FILE);
        let text = serde_json::to_string_pretty(self).expect("plain data");
        std::fs::write(&p, text + "\n").map_err(|source| TrainError::Io {
            path: p.display().to_string(),
            source,
        })
    }

    /// `Ok(None)` when the folder was not trained with conditioning.
    pub fn load(dir: &Path) -> TrainResult<Option<Self>> {
        let p = dir.join(CONDITIONING_FILE);
        if !p.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p).map_err(|source| TrainError::Io {
            path: p.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", p.display())))
    }
}

/// λ rounded to the 0.01 grid so that it still sums to exactly 1 (largest remainder): what is
/// rendered is then exactly what the target is mixed with.
pub fn quantize_lambda(lambda: &[f64]) -> Vec<f64> {
    let total: f64 = lambda.iter().sum();
    let scaled: Vec<f64> = lambda.iter().map(|l| l / total * 100.0).collect();
    let mut units: Vec<i64> = scaled.iter().map(|s| s.floor() as i64).collect();
    let missing = 100 - units.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..lambda.len()).collect();
    // Largest fractional part first; ties to the lower index, so the result is deterministic.
    order.sort_by(|&a, &b| {
        let fa = scaled[a] - scaled[a].floor();
        let fb = scaled[b] - scaled[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for &i in order.iter().take(missing.max(0) as usize) {
        units[i] += 1;
    }
    units.iter().map(|&u| u as f64 / 100.0).collect()
}

/// `Preference weights: a=0.25, b=0.75.` for the quantized λ.
pub fn render_lambda(dims: &[String], lambda: &[f64]) -> String {
    let q = quantize_lambda(lambda);
    let parts: Vec<String> = dims
        .iter()
        .zip(&q)
        .map(|(d, w)| format!("{d}={w:.2}"))
        .collect();
    format!("Preference weights: {}.", parts.join(", "))
}

/// The prompt's messages with the λ line in the system message.
pub fn conditioned_messages(messages: &[Message], dims: &[String], lambda: &[f64]) -> Vec<Message> {
    let line = render_lambda(dims, lambda);
    let mut out = messages.to_vec();
    match out.first_mut() {
        Some(first) if first.role == "system" => {
            let text = match &first.content {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            first.content = Value::String(format!("{line}\n\n{text}"));
        }
        _ => out.insert(0, Message::new("system", &line)),
    }
    out
}

/// Re-renders prompts with λ in the system message (training and evaluation).
#[derive(Debug)]
pub struct Conditioner<'t> {
    pub tokenizer: &'t Tokenizer,
    pub dimensions: Vec<String>,
    pub kwargs: Map<String, Value>,
    /// Prompt + longest response must fit here; the prompt is cut (keeping its end) otherwise.
    pub max_length: usize,
}

impl Conditioner<'_> {
    /// The token ids of `messages` conditioned on `lambda`, with the generation prompt.
    pub fn prompt_ids(
        &self,
        source: &str,
        messages: Option<&[Message]>,
        lambda: &[f64],
        longest_response: usize,
    ) -> TrainResult<Vec<u32>> {
        let Some(messages) = messages else {
            return Err(TrainError::Config {
                path: source.into(),
                field: "lambda.conditioning".into(),
                message: "prompt conditioning needs prompts rendered with the chat template (text or messages), not pre-tokenized ids or plain text\nhint: give text prompts and a model with a chat template, or set lambda.conditioning = \"none\"".into(),
            });
        };
        let msgs = conditioned_messages(messages, &self.dimensions, lambda);
        let text = self
            .tokenizer
            .render_chat(&msgs, true, &self.kwargs)
            .map_err(|e| TrainError::Config {
                path: source.into(),
                field: "lambda.conditioning".into(),
                message: format!("the chat template cannot render a system message: {e}\nhint: use a template with a system role, or lambda.conditioning = \"none\""),
            })?;
        let mut ids = self.tokenizer.encode(&text, false)?;
        let room = self.max_length.saturating_sub(longest_response).max(1);
        if ids.len() > room {
            cut(&mut ids, room, Truncation::KeepEnd);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_lambda_sums_to_one_on_the_grid() {
        for l in [
            vec![1.0 / 3.0; 3],
            vec![0.125, 0.125, 0.75],
            vec![0.004, 0.006, 0.99],
            vec![0.0, 1.0],
        ] {
            let q = quantize_lambda(&l);
            let units: i64 = q.iter().map(|x| (x * 100.0).round() as i64).sum();
            assert_eq!(units, 100, "{l:?} → {q:?}");
            for (a, b) in l.iter().zip(&q) {
                assert!((a - b).abs() <= 0.01 + 1e-12, "{l:?} → {q:?}");
            }
        }
        assert_eq!(quantize_lambda(&[1.0 / 3.0; 3]), vec![0.34, 0.33, 0.33]);
    }

    #[test]
    fn rendering_is_the_documented_line() {
        let dims = vec!["helpfulness".to_string(), "honesty".to_string()];
        assert_eq!(
            render_lambda(&dims, &[0.25, 0.75]),
            "Preference weights: helpfulness=0.25, honesty=0.75."
        );
        let m = conditioned_messages(&[Message::new("user", "Hi")], &dims, &[1.0, 0.0]);
        assert_eq!(m[0].role, "system");
        assert_eq!(
            m[0].content,
            "Preference weights: helpfulness=1.00, honesty=0.00."
        );
        let m = conditioned_messages(
            &[
                Message::new("system", "Be brief."),
                Message::new("user", "Hi"),
            ],
            &dims,
            &[0.5, 0.5],
        );
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].content,
            "Preference weights: helpfulness=0.50, honesty=0.50.\n\nBe brief."
        );
    }
}
