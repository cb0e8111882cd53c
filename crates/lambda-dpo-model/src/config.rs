//! Hugging Face `config.json` → [`ModelConfig`].
//!
//! A serde mirror of the file as written ([`HfConfig`], every field optional where the Hub or
//! transformers leave it out), then one conversion into [`ModelConfig`] with no `Option`s left
//! and every default made explicit. Two rope styles exist in the wild: top-level
//! `rope_theta`/`rope_scaling` (Hub checkpoints, transformers < 5) and `rope_parameters`
//! (written by transformers ≥ 5); both are read here and nowhere else.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ModelError, Result};

/// The decoder families we implement; both share one code path (Qwen2 = Llama + q/k/v bias).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
}

impl Architecture {
    pub const SUPPORTED: &'static [&'static str] = &["LlamaForCausalLM", "Qwen2ForCausalLM"];

    pub fn hf_name(self) -> &'static str {
        match self {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
        }
    }
}

/// How rotary frequencies are computed (transformers `ROPE_INIT_FUNCTIONS`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// `inv_freq_i = θ^(−2i/d)`.
    Default,
    /// Position interpolation: every frequency divided by `factor`.
    Linear { factor: f64 },
    /// Llama-3.1/3.2 frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// The resolved model configuration: every field known, every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q, k, v (Qwen2 always; Llama when `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on o_proj (Llama `attention_bias` only; never Qwen2).
    pub o_bias: bool,
    /// Bias on gate/up/down (Llama `mlp_bias`).
    pub mlp_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// `config.json` as Hugging Face writes it (only the fields we read).
#[derive(Debug, Deserialize)]
pub struct HfConfig {
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: Option<usize>,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default)]
    pub rms_norm_eps: Option<f64>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub mlp_bias: Option<bool>,
    #[serde(default)]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    #[serde(default)]
    pub bos_token_id: Option<Value>,
    #[serde(default)]
    pub eos_token_id: Option<Value>,
}

impl ModelConfig {
    /// Reads and resolves `<dir>/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        Self::from_json_str(&text, &path)
    }

    /// Parses config text; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let raw: HfConfig = serde_json::from_str(text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        raw.into_config(path)
    }
}

impl HfConfig {
    /// The one conversion: validates and applies every default transformers applies.
    pub fn into_config(self, path: &Path) -> Result<ModelConfig> {
        let cfg_err = |field: &str, message: String| ModelError::Config {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let arch_name = match (&self.architectures, &self.model_type) {
            (Some(a), _) if !a.is_empty() => a[0].clone(),
            (_, Some(t)) => t.clone(),
            _ => {
                return Err(cfg_err(
                    "architectures",
                    format!(
                        "missing (and no `model_type`); expected one of {}",
                        Architecture::SUPPORTED.join(", ")
                    ),
                ))
            }
        };
        let architecture = match arch_name.as_str() {
            "LlamaForCausalLM" | "llama" => Architecture::Llama,
            "Qwen2ForCausalLM" | "qwen2" => Architecture::Qwen2,
            other => {
                return Err(ModelError::UnsupportedArchitecture {
                    path: path.to_path_buf(),
                    found: other.to_string(),
                    supported: Architecture::SUPPORTED.join(", "),
                })
            }
        };
        let need = |v: Option<usize>, field: &str| {
            v.filter(|&x| x > 0).ok_or_else(|| {
                cfg_err(field, "missing or zero; expected a positive integer".into())
            })
        };
        let hidden_size = need(self.hidden_size, "hidden_size")?;
        let num_heads = need(self.num_attention_heads, "num_attention_heads")?;
        let num_kv_heads = self.num_key_value_heads.unwrap_or(num_heads);
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(cfg_err(
                "num_key_value_heads",
                format!("{num_kv_heads} does not divide num_attention_heads = {num_heads}"),
            ));
        }
        let head_dim = match self.head_dim {
            Some(d) if d > 0 => d,
            _ => {
                if hidden_size % num_heads != 0 {
                    return Err(cfg_err(
                        "head_dim",
                        format!("absent and hidden_size {hidden_size} is not divisible by num_attention_heads {num_heads}"),
                    ));
                }
                hidden_size / num_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(cfg_err(
                "head_dim",
                format!("{head_dim} is odd; rotary embeddings need an even head_dim"),
            ));
        }
        if let Some(act) = &self.hidden_act {
            if act != "silu" {
                return Err(cfg_err(
                    "hidden_act",
                    format!("`{act}` is not supported; expected `silu`"),
                ));
            }
        }
        if self.use_sliding_window == Some(true) {
            return Err(cfg_err(
                "use_sliding_window",
                "true is not supported (full causal attention only)\nhint: Qwen2.5 checkpoints ship with use_sliding_window = false".into(),
            ));
        }
        let (rope_theta, rope_scaling) = parse_rope(&self, path)?;
        let (qkv_bias, o_bias) = match architecture {
            // Qwen2: bias on q/k/v, none on o_proj (DESIGN.md §3 item 4).
            Architecture::Qwen2 => (true, false),
            // Llama: `attention_bias` puts a bias on q, k, v *and* o.
            Architecture::Llama => {
                let b = self.attention_bias.unwrap_or(false);
                (b, b)
            }
        };
        Ok(ModelConfig {
            architecture,
            vocab_size: need(self.vocab_size, "vocab_size")?,
            hidden_size,
            intermediate_size: need(self.intermediate_size, "intermediate_size")?,
            num_layers: need(self.num_hidden_layers, "num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: self.rms_norm_eps.unwrap_or(match architecture {
                Architecture::Llama => 1e-6,
                Architecture::Qwen2 => 1e-6,
            }),
            rope_theta,
            rope_scaling,
            max_position_embeddings: self.max_position_embeddings.unwrap_or(2048),
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            qkv_bias,
            o_bias,
            mlp_bias: architecture == Architecture::Llama && self.mlp_bias.unwrap_or(false),
            bos_token_id: token_ids(&self.bos_token_id).into_iter().next(),
            eos_token_ids: token_ids(&self.eos_token_id),
        })
    }
}

/// `bos_token_id`/`eos_token_id` are an integer, a list of integers, or null.
fn token_ids(v: &Option<Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64())
            .map(|x| x as u32)
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads θ and the scaling rule from either style; `rope_parameters` wins when both exist
/// (that is what transformers ≥ 5 does after its own conversion).
fn parse_rope(raw: &HfConfig, path: &Path) -> Result<(f64, RopeScaling)> {
    let err = |field: &str, message: String| ModelError::Config {
        path: path.to_path_buf(),
        field: field.to_string(),
        message,
    };
    let (field, params) = match (&raw.rope_parameters, &raw.rope_scaling) {
        (Some(Value::Object(p)), _) => ("rope_parameters", Some(p.clone())),
        (Some(Value::Null) | None, Some(Value::Object(p))) => ("rope_scaling", Some(p.clone())),
        (Some(Value::Null) | None, Some(Value::Null) | None) => ("rope_scaling", None),
        (Some(other), _) => {
            return Err(err(
                "rope_parameters",
                format!("expected an object, found {other}"),
            ))
        }
        (_, Some(other)) => {
            return Err(err(
                "rope_scaling",
                format!("expected an object or null, found {other}"),
            ))
        }
    };
    let theta_in_params = params
        .as_ref()
        .and_then(|p| p.get("rope_theta"))
        .and_then(Value::as_f64);
    let rope_theta = theta_in_params.or(raw.rope_theta).unwrap_or(10_000.0);
    let Some(p) = params else {
        return Ok((rope_theta, RopeScaling::Default));
    };
    // `rope_type` is the current key; very old configs say `type`.
    let kind = p
        .get("rope_type")
        .or_else(|| p.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |key: &str| -> Result<f64> {
        p.get(key).and_then(Value::as_f64).ok_or_else(|| {
            err(
                &format!("{field}.{key}"),
                format!("missing; required for rope_type `{kind}`"),
            )
        })
    };
    let scaling = match kind {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear {
            factor: num("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")? as usize,
        },
        other => {
            return Err(err(
                &format!("{field}.rope_type"),
                format!("`{other}` is not supported; supported: default, linear, llama3"),
            ))
        }
    };
    Ok((rope_theta, scaling))
}
