//! Merging an adapter into its base and writing a plain Hugging Face folder
//! (`W' = W + s·B·A`, computed in f32, stored in each weight's original dtype).
//! Every other file of the model folder (config, tokenizer, generation config) is copied, so
//! the result loads in `transformers` with no PEFT involved.

use std::path::Path;

use candle_core::{DType, Device};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::io::write_safetensors;
use crate::lora::{Adapter, Target};
use crate::weights::WeightFiles;

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub tensors: usize,
    pub merged: usize,
    pub copied_files: Vec<String>,
}

/// Merges `adapter` into the model in `model_dir` and writes the result to `out_dir`.
pub fn merge_and_save(
    model_dir: &Path,
    adapter: &Adapter,
    out_dir: &Path,
) -> Result<ExportSummary> {
    let config = ModelConfig::from_dir(model_dir)?;
    let files = WeightFiles::open_model_dir(model_dir)?;
    if adapter.layers.len() != config.num_layers {
        return Err(ModelError::Input(format!(
            "adapter has {} layers, model has {}",
            adapter.layers.len(),
            config.num_layers
        )));
    }
    if model_dir.canonicalize().ok() == out_dir.canonicalize().ok() {
        return Err(ModelError::Input(format!(
            "--out {} is the model folder itself\nhint: write the merged model to a new folder",
            out_dir.display()
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| ModelError::io(out_dir, e))?;
    let device = Device::Cpu;
    let mut names = files.names();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    let mut merged = 0;
    for name in names {
        let dtype = files.dtype_of(&name).unwrap_or(DType::F32);
        let mut t = files.load_any(&name, dtype, &device)?;
        if let Some((layer, target)) = parse_proj(&name, config.num_layers) {
            if let Some(delta) = adapter.delta(layer, target)? {
                t = (t.to_dtype(DType::F32)? + delta)?.to_dtype(dtype)?;
                merged += 1;
            }
        }
        tensors.push((name, t));
    }
    write_safetensors(&out_dir.join("model.safetensors"), &tensors, None)?;
    let copied = copy_model_files(model_dir, out_dir)?;
    Ok(ExportSummary {
        tensors: tensors.len(),
        merged,
        copied_files: copied,
    })
}

/// Copies the non-weight files of a model folder (config, tokenizer, templates, generation
/// config) into `out_dir`; returns their names, sorted.
pub fn copy_model_files(model_dir: &Path, out_dir: &Path) -> Result<Vec<String>> {
    let mut copied = Vec::new();
    let entries = std::fs::read_dir(model_dir).map_err(|e| ModelError::io(model_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ModelError::io(model_dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let is_weights = name.ends_with(".safetensors")
            || name.ends_with(".bin")
            || name == "model.safetensors.index.json"
            || name.ends_with(".pt")
            || name.ends_with(".pth");
        if is_weights || !entry.path().is_file() || name.starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| ModelError::io(entry.path(), e))?;
        crate::io::write_atomic(&out_dir.join(&name), &bytes)?;
        copied.push(name);
    }
    copied.sort();
    Ok(copied)
}

/// `model.layers.{i}.{self_attn|mlp}.{proj}.weight` → (i, target).
fn parse_proj(name: &str, num_layers: usize) -> Option<(usize, Target)> {
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let proj = rest.strip_suffix(".weight")?.rsplit('.').next()?;
    let target = Target::from_name(proj)?;
    (layer < num_layers && name == format!("{}.weight", target.module_path(layer)))
        .then_some((layer, target))
}
