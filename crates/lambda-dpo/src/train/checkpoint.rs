//! Checkpoints: everything a run needs to continue bit-identically — the trained parameters
//! (with the PEFT adapter, or the whole model folder when fully fine-tuned, so every checkpoint
//! is usable as it stands), AdamW moments, the λ sampler, the data cursor and the step — written
//! into a temporary folder and
//! renamed into place, so a crash mid-write never leaves a half checkpoint that `--resume`
//! would trust. Only the last `keep_last` checkpoints are kept.

use std::path::{Path, PathBuf};

use candle_core::Device;
use lambda_dpo_math::LambdaSampler;
use lambda_dpo_model::io;
use serde::{Deserialize, Serialize};

use crate::train::error::{TrainError, TrainResult};
use crate::train::optim::AdamW;

/// The non-tensor part of a checkpoint (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed.
    pub step: u64,
    /// Lists consumed so far (the data cursor: epoch = seen / n, position = seen % n).
    pub lists_seen: u64,
    /// The λ sampler, RNG included.
    pub sampler: Option<LambdaSampler>,
    /// Fingerprint of the resolved config; a resume with a different config is refused.
    pub config_fingerprint: String,
}

fn io_err(path: &Path, source: std::io::Error) -> TrainError {
    TrainError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `<output_dir>/checkpoints/step-00000042`.
pub fn checkpoint_dir(output_dir: &Path, step: u64) -> PathBuf {
    output_dir
        .join("checkpoints")
        .join(format!("step-{step:08}"))
}

/// Where a fully fine-tuned checkpoint's weights live: the model folder's own safetensors file
/// already holds every trained tensor under its Hugging Face name, so it is not written twice.
const FULL_MODEL_WEIGHTS: &str = "model/model.safetensors";

/// Writes a checkpoint atomically and prunes old ones. `write_product` writes the user-facing
/// product into the folder it is given and returns whether that product already holds every
/// trained tensor by name (the full model); otherwise `params.safetensors` is written too.
pub fn save(
    output_dir: &Path,
    state: &TrainState,
    optimizer: &AdamW,
    write_product: &dyn Fn(&Path) -> TrainResult<bool>,
    keep_last: usize,
) -> TrainResult<PathBuf> {
    let dir = checkpoint_dir(output_dir, state.step);
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    if !write_product(&tmp)? {
        let params: Vec<(String, candle_core::Tensor)> = optimizer
            .vars()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        io::write_safetensors(&tmp.join("params.safetensors"), &params, None)?;
    }
    io::write_safetensors(
        &tmp.join("optimizer.safetensors"),
        &optimizer.state_tensors(),
        None,
    )?;
    let json = serde_json::to_vec_pretty(state).expect("state serialises");
    io::write_atomic(&tmp.join("state.json"), &json)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| io_err(&dir, e))?;
    prune(output_dir, keep_last.max(1))?;
    Ok(dir)
}

/// The newest complete checkpoint, if any.
pub fn latest(output_dir: &Path) -> TrainResult<Option<PathBuf>> {
    Ok(list(output_dir)?.pop())
}

fn list(output_dir: &Path) -> TrainResult<Vec<PathBuf>> {
    let root = output_dir.join("checkpoints");
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(|e| io_err(&root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.extension().is_none() && p.join("state.json").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn prune(output_dir: &Path, keep: usize) -> TrainResult<()> {
    let dirs = list(output_dir)?;
    for d in dirs.iter().take(dirs.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(d).map_err(|e| io_err(d, e))?;
    }
    Ok(())
}

/// Reads a checkpoint: state, adapter, and the optimizer moments (restored into `optimizer`,
/// which must have been built over the returned adapter's vars).
pub fn load_state(dir: &Path) -> TrainResult<TrainState> {
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| io_err(&p, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint(format!("{}: {e}", p.display())))
}

/// Restores the trained parameters into the optimizer's variables (matched by name).
pub fn load_params(dir: &Path, optimizer: &AdamW, device: &Device) -> TrainResult<()> {
    let mut p = dir.join("params.safetensors");
    if !p.is_file() {
        p = dir.join(FULL_MODEL_WEIGHTS);
    }
    let tensors = candle_core::safetensors::load(&p, device)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", p.display())))?;
    for (name, var) in optimizer.vars() {
        let t = tensors
            .get(name)
            .ok_or_else(|| TrainError::Checkpoint(format!("{} has no `{name}`", p.display())))?;
        if t.dims() != var.dims() {
            return Err(TrainError::Checkpoint(format!(
                "`{name}` has shape {:?} in {}, the run expects {:?}",
                t.dims(),
                p.display(),
                var.dims()
            )));
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

pub fn load_optimizer(
    dir: &Path,
    optimizer: &mut AdamW,
    step: u64,
    device: &Device,
) -> TrainResult<()> {
    let p = dir.join("optimizer.safetensors");
    let tensors = candle_core::safetensors::load(&p, device)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", p.display())))?;
    optimizer.load_state(&tensors, step)
}
