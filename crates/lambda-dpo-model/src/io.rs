//! Atomic file writes: every file that matters (adapters, merged weights, configs) is written to
//! a temporary sibling and renamed into place, so an interrupted run never leaves a truncated
//! file that a later run would trust.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::error::{ModelError, Result};

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically (temp file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_io(path, bytes).map_err(|e| ModelError::io(path, e))
}

/// [`write_atomic`] with a plain I/O error (for callers outside the model crate's errors);
/// the temporary file is removed when anything fails.
pub fn write_atomic_io(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Writes named tensors as a safetensors file atomically, with `{"format": "pt"}` metadata
/// (transformers refuses safetensors files without it) plus `extra` metadata.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    extra: Option<HashMap<String, String>>,
) -> Result<()> {
    let mut meta = extra.unwrap_or_default();
    meta.insert("format".into(), "pt".into());
    let contiguous: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.contiguous()?)))
        .collect::<candle_core::Result<_>>()?;
    let tmp = tmp_path(path);
    safetensors::tensor::serialize_to_file(
        contiguous.iter().map(|(k, t)| (k.as_str(), t)),
        Some(meta),
        &tmp,
    )
    .map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ModelError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    })?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}
