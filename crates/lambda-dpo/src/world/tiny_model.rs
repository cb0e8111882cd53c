//! A randomly initialised tiny `LlamaForCausalLM` in a Hugging Face folder, to be trained from
//! scratch on the world's language: `config.json` as transformers writes it, `model.safetensors`
//! (f32), and the world's tokenizer files.
//!
//! Initialisation follows transformers' `_init_weights` for Llama: every linear and the
//! embedding `~ N(0, initializer_range²)` (0.02), RMSNorm weights 1, embeddings tied to the LM
//! head (no `lm_head.weight` is stored). Drawn with the math crate's seeded generator, in a
//! fixed tensor order, so a seed gives byte-identical weights on every platform.

use std::path::Path;

use candle_core::{Device, Tensor};
use lambda_dpo_math::rng::Rng;
use lambda_dpo_model::lora::Target;
use lambda_dpo_model::ModelConfig;
use serde_json::json;

use super::error::WorldError;
use super::files::write_text;
use super::tokenizer::{self, Trained};
use super::World;

/// The shape of the tiny model (the vocabulary comes from the tokenizer).
#[derive(Debug, Clone, PartialEq)]
pub struct TinyLlama {
    /// E. Default: 128.
    pub hidden: usize,
    /// Decoder blocks. Default: 4.
    pub layers: usize,
    /// Query heads H (head_dim = E / H). Default: 4.
    pub heads: usize,
    /// Key/value heads Hk (grouped-query attention; divides H). Default: 2.
    pub kv_heads: usize,
    /// MLP width. Default: 352.
    pub intermediate: usize,
    /// Longest sequence (rotary tables, `model_max_length`). Default: 256.
    pub max_position: usize,
    /// Rotary base θ. Default: 10000.
    pub rope_theta: f64,
    /// RMSNorm ε. Default: 1e-5.
    pub rms_norm_eps: f64,
    /// Standard deviation of the initial weights (`initializer_range`). Default: 0.02.
    pub init_std: f64,
}

impl Default for TinyLlama {
    fn default() -> Self {
        Self {
            hidden: 128,
            layers: 4,
            heads: 4,
            kv_heads: 2,
            intermediate: 352,
            max_position: 256,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
            init_std: 0.02,
        }
    }
}

impl TinyLlama {
    /// `config.json` as transformers 5 writes a `LlamaConfig` (keys sorted).
    pub fn config_json(&self, t: &Trained) -> serde_json::Value {
        json!({
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": false,
            "attention_dropout": 0.0,
            "bos_token_id": t.bos_id,
            "dtype": "float32",
            "eos_token_id": t.eos_ids,
            "head_dim": self.hidden / self.heads.max(1),
            "hidden_act": "silu",
            "hidden_size": self.hidden,
            "initializer_range": self.init_std,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": self.max_position,
            "mlp_bias": false,
            "model_type": "llama",
            "num_attention_heads": self.heads,
            "num_hidden_layers": self.layers,
            "num_key_value_heads": self.kv_heads,
            "pad_token_id": null,
            "pretraining_tp": 1,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_parameters": {"rope_theta": self.rope_theta, "rope_type": "default"},
            "tie_word_embeddings": true,
            "transformers_version": "5.25.0",
            "use_cache": true,
            "vocab_size": t.vocab_size(),
        })
    }
}

/// `n` draws of `N(0, std²)` as f32.
fn normal(rng: &mut Rng, n: usize, std: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * std) as f32).collect()
}

/// Writes the folder: tokenizer files, `config.json`, `model.safetensors`.
pub fn write(dir: &Path, shape: &TinyLlama, t: &Trained, seed: u64) -> Result<(), WorldError> {
    if shape.heads == 0 || shape.hidden % shape.heads != 0 {
        return Err(WorldError::Invalid {
            path: dir.to_path_buf(),
            message: format!(
                "hidden {} is not a multiple of heads {}; expected hidden = heads · head_dim",
                shape.hidden, shape.heads
            ),
        });
    }
    tokenizer::write_files(dir, t, shape.max_position)?;
    let cfg_path = dir.join("config.json");
    let text = serde_json::to_string_pretty(&shape.config_json(t)).expect("plain JSON") + "\n";
    // Resolve it with the loader's own parser: the shapes below are the ones it will expect.
    let cfg = ModelConfig::from_json_str(&text, &cfg_path)?;
    write_text(&cfg_path, &text)?;

    let dev = Device::Cpu;
    let mut rng = Rng::seed_from_u64(seed);
    let (v, e) = (cfg.vocab_size, cfg.hidden_size);
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let mut add = |name: String, data: Vec<f32>, shape: &[usize]| -> Result<(), WorldError> {
        tensors.push((name, Tensor::from_vec(data, shape, &dev)?));
        Ok(())
    };
    add(
        "model.embed_tokens.weight".into(),
        normal(&mut rng, v * e, shape.init_std),
        &[v, e],
    )?;
    for i in 0..cfg.num_layers {
        for target in Target::ALL {
            let (out, inp) = target.shape(&cfg);
            add(
                format!("{}.weight", target.module_path(i)),
                normal(&mut rng, out * inp, shape.init_std),
                &[out, inp],
            )?;
        }
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            add(
                format!("model.layers.{i}.{norm}.weight"),
                vec![1.0; e],
                &[e],
            )?;
        }
    }
    add("model.norm.weight".into(), vec![1.0; e], &[e])?;
    lambda_dpo_model::io::write_safetensors(&dir.join("model.safetensors"), &tensors, None)?;
    Ok(())
}

impl World {
    /// A randomly initialised tiny Llama folder with the world's tokenizer (see the module
    /// docs); `seed` draws the weights.
    pub fn write_tiny_llama(
        &self,
        dir: &Path,
        shape: &TinyLlama,
        seed: u64,
    ) -> Result<(), WorldError> {
        let t = tokenizer::train(&self.corpus(), dir)?;
        write(dir, shape, &t, seed)
    }
}
