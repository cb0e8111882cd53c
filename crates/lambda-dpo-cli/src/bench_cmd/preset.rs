//! The benchmark presets: randomly initialised Hugging Face folders of a stated shape, written
//! to a temporary directory (the library loads models from folders only) and removed after the
//! run. `benchmarks/torch_reference.py` builds the same shapes with transformers' config classes.
//!
//! Weights are drawn as transformers' `_init_weights` does for Llama / Qwen2: every linear and
//! the embedding `~ N(0, 0.02²)`, RMSNorm weights 1, biases 0. The safetensors file is written
//! tensor by tensor, straight from the generator, so writing it never holds the model in
//! memory (it would otherwise raise the process's peak RSS, which the bench reports).
//! The tokenizer is a word-level vocabulary `<unk> <s> </s> t3 … t{V−1}`: generation needs one
//! to decode, and the bench feeds token ids directly.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lambda_dpo_math::rng::Rng;
use serde_json::{json, Map, Value};

/// A benchmark model shape (`--preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// LlamaForCausalLM: hidden 256, 4 layers, 8 heads / 2 kv heads, intermediate 688,
    /// vocab 2000, untied (the model of benchmarks/logprobs_transformers.py; ≈ 4.3M params).
    Tiny,
    /// Qwen2ForCausalLM: hidden 512, 8 layers, 8 heads / 2 kv heads, intermediate 1408,
    /// vocab 32000, tied embeddings, q/k/v biases (≈ 39M params).
    Qwen40m,
    /// Qwen2ForCausalLM in Qwen2-0.5B's shape: hidden 896, 24 layers, 14 heads / 2 kv heads,
    /// intermediate 4864, vocab 151936, tied embeddings, q/k/v biases (≈ 494M params; random
    /// weights, for GPU runs: the folder is ~2 GB of f32).
    Qwen05b,
}

/// The numbers a preset fixes.
struct Shape {
    qwen2: bool,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    intermediate: usize,
    vocab: usize,
    tied: bool,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Qwen40m => "qwen40m",
            Preset::Qwen05b => "qwen05b",
        }
    }

    fn shape(self) -> Shape {
        match self {
            Preset::Tiny => Shape {
                qwen2: false,
                hidden: 256,
                layers: 4,
                heads: 8,
                kv_heads: 2,
                intermediate: 688,
                vocab: 2000,
                tied: false,
            },
            Preset::Qwen40m => Shape {
                qwen2: true,
                hidden: 512,
                layers: 8,
                heads: 8,
                kv_heads: 2,
                intermediate: 1408,
                vocab: 32000,
                tied: true,
            },
            Preset::Qwen05b => Shape {
                qwen2: true,
                hidden: 896,
                layers: 24,
                heads: 14,
                kv_heads: 2,
                intermediate: 4864,
                vocab: 151_936,
                tied: true,
            },
        }
    }

    /// `config.json` as transformers 5.25 writes it for this shape; `max_position` must cover
    /// the longest sequence of the run.
    fn config_json(self, max_position: usize) -> Value {
        let s = self.shape();
        let mut c = json!({
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "dtype": "float32",
            "eos_token_id": 2,
            "head_dim": s.hidden / s.heads,
            "hidden_act": "silu",
            "hidden_size": s.hidden,
            "initializer_range": 0.02,
            "intermediate_size": s.intermediate,
            "max_position_embeddings": max_position,
            "num_attention_heads": s.heads,
            "num_hidden_layers": s.layers,
            "num_key_value_heads": s.kv_heads,
            "pad_token_id": null,
            "tie_word_embeddings": s.tied,
            "transformers_version": "5.25.0",
            "use_cache": true,
            "vocab_size": s.vocab,
        });
        let extra = if s.qwen2 {
            json!({
                "architectures": ["Qwen2ForCausalLM"],
                "model_type": "qwen2",
                "max_window_layers": s.layers,
                "rms_norm_eps": 1e-6,
                "rope_parameters": {"rope_theta": 1_000_000.0, "rope_type": "default"},
                "sliding_window": null,
                "use_sliding_window": false,
            })
        } else {
            json!({
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "attention_bias": false,
                "mlp_bias": false,
                "pretraining_tp": 1,
                "rms_norm_eps": 1e-5,
                "rope_parameters": {"rope_theta": 10_000.0, "rope_type": "default"},
            })
        };
        let obj = c.as_object_mut().expect("object");
        for (k, v) in extra.as_object().expect("object") {
            obj.insert(k.clone(), v.clone());
        }
        c
    }

    /// Every tensor of the checkpoint, in file order: name, shape, initialisation.
    fn tensors(self) -> Vec<(String, Vec<usize>, Init)> {
        let s = self.shape();
        let d = s.hidden / s.heads;
        let (e, i, v) = (s.hidden, s.intermediate, s.vocab);
        let mut out = vec![("model.embed_tokens.weight".into(), vec![v, e], Init::Normal)];
        for l in 0..s.layers {
            let attn = format!("model.layers.{l}.self_attn");
            let mlp = format!("model.layers.{l}.mlp");
            for (name, rows, cols) in [
                (format!("{attn}.q_proj"), s.heads * d, e),
                (format!("{attn}.k_proj"), s.kv_heads * d, e),
                (format!("{attn}.v_proj"), s.kv_heads * d, e),
                (format!("{attn}.o_proj"), e, s.heads * d),
                (format!("{mlp}.gate_proj"), i, e),
                (format!("{mlp}.up_proj"), i, e),
                (format!("{mlp}.down_proj"), e, i),
            ] {
                out.push((format!("{name}.weight"), vec![rows, cols], Init::Normal));
                // Qwen2: bias on q, k, v only (DESIGN.md §3 item 4).
                if s.qwen2 && !name.ends_with("o_proj") && name.starts_with(&attn) {
                    out.push((format!("{name}.bias"), vec![rows], Init::Zeros));
                }
            }
            for norm in ["input_layernorm", "post_attention_layernorm"] {
                out.push((
                    format!("model.layers.{l}.{norm}.weight"),
                    vec![e],
                    Init::Ones,
                ));
            }
        }
        out.push(("model.norm.weight".into(), vec![e], Init::Ones));
        if !s.tied {
            out.push(("lm_head.weight".into(), vec![v, e], Init::Normal));
        }
        out
    }
}

#[derive(Debug, Clone, Copy)]
enum Init {
    Normal,
    Ones,
    Zeros,
}

/// A directory removed (with its contents) when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "lambda-dpo-bench-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the temporary folder {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the preset's folder into `dir`: `config.json`, `model.safetensors` (seeded random
/// weights), `tokenizer.json`, `tokenizer_config.json`.
pub fn write(preset: Preset, dir: &Path, max_position: usize, seed: u64) -> Result<()> {
    let cfg = preset.config_json(max_position.max(512));
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&cfg)? + "\n",
    )?;
    write_weights(&dir.join("model.safetensors"), &preset.tensors(), seed)?;
    write_tokenizer(dir, preset.shape().vocab)
}

/// A safetensors file written in one pass: header, then each tensor's f32 values as drawn.
fn write_weights(path: &Path, tensors: &[(String, Vec<usize>, Init)], seed: u64) -> Result<()> {
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, shape, _) in tensors {
        let bytes = 4 * shape.iter().product::<usize>();
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut text = serde_json::to_string(&Value::Object(header))?;
    // The data starts 8-byte aligned (as the safetensors crate writes it).
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&(text.len() as u64).to_le_bytes())?;
    w.write_all(text.as_bytes())?;
    let mut rng = Rng::seed_from_u64(seed);
    for (_, shape, init) in tensors {
        let n: usize = shape.iter().product();
        for _ in 0..n {
            let x = match init {
                Init::Normal => (rng.normal() * 0.02) as f32,
                Init::Ones => 1.0,
                Init::Zeros => 0.0,
            };
            w.write_all(&x.to_le_bytes())?;
        }
    }
    w.flush()?;
    Ok(())
}

/// A word-level tokenizer over `<unk> <s> </s> t3 … t{V−1}` and its special tokens.
fn write_tokenizer(dir: &Path, vocab: usize) -> Result<()> {
    let mut words = Map::new();
    for id in 0..vocab {
        let word = match id {
            0 => "<unk>".to_string(),
            1 => "<s>".to_string(),
            2 => "</s>".to_string(),
            _ => format!("t{id}"),
        };
        words.insert(word, id.into());
    }
    let tok = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": words, "unk_token": "<unk>"},
    });
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_string(&tok)?)?;
    let cfg = json!({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"});
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&cfg)?,
    )?;
    Ok(())
}
