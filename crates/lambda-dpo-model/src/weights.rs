//! Finding and reading a model folder's safetensors: single file or sharded through
//! `model.safetensors.index.json`, memory-mapped, with shape checks that name the tensor.
//! Pickle `.bin` checkpoints are refused with a conversion hint: we never unpickle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::error::{ModelError, Result};

/// The safetensors files of a model folder, memory-mapped (tensors are read on demand).
pub struct WeightFiles {
    /// The folder or file named in error messages.
    pub origin: PathBuf,
    pub files: Vec<PathBuf>,
    st: MmapedSafetensors,
}

impl std::fmt::Debug for WeightFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFiles")
            .field("files", &self.files)
            .finish()
    }
}

impl WeightFiles {
    /// Locates the weights of a Hugging Face model folder.
    pub fn open_model_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(ModelError::MissingFile {
                path: dir.to_path_buf(),
                hint: "expected a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)".into(),
            });
        }
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            shards_from_index(&index)?
        } else {
            let pickles: Vec<String> = [
                "pytorch_model.bin",
                "pytorch_model.bin.index.json",
                "model.bin",
            ]
            .iter()
            .filter(|n| dir.join(n).exists())
            .map(|s| s.to_string())
            .collect();
            if !pickles.is_empty() {
                return Err(ModelError::PickleOnly {
                    dir: dir.to_path_buf(),
                    found: pickles.join(", "),
                });
            }
            return Err(ModelError::MissingFile {
                path: single,
                hint: "no model.safetensors nor model.safetensors.index.json in the folder".into(),
            });
        };
        Self::open_files(dir, files)
    }

    /// Opens an explicit list of safetensors files (e.g. an adapter file).
    pub fn open_files(origin: &Path, files: Vec<PathBuf>) -> Result<Self> {
        for f in &files {
            if !f.is_file() {
                return Err(ModelError::MissingFile {
                    path: f.clone(),
                    hint: "a file listed by model.safetensors.index.json is missing".into(),
                });
            }
        }
        // SAFETY: the files are memory-mapped read-only; like every mmap-based loader we assume
        // nobody truncates them while the model is loaded.
        #[allow(unsafe_code)]
        let st =
            unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| ModelError::Safetensors {
                path: origin.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Self {
            origin: origin.to_path_buf(),
            files,
            st,
        })
    }

    /// Names of every tensor in the files.
    pub fn names(&self) -> Vec<String> {
        self.st.tensors().into_iter().map(|(n, _)| n).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.st.get(name).is_ok()
    }

    /// The stored dtype of a tensor.
    pub fn dtype_of(&self, name: &str) -> Option<DType> {
        let view = self.st.get(name).ok()?;
        DType::try_from(view.dtype()).ok()
    }

    /// Loads `name`, checks its shape against `expected`, converts it to `dtype`.
    pub fn load(
        &self,
        name: &str,
        expected: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let view = self.st.get(name).map_err(|_| ModelError::MissingTensor {
            path: self.origin.clone(),
            tensor: name.to_string(),
            hint: "the checkpoint does not match its config.json (wrong architecture or truncated download?)".into(),
        })?;
        let found = view.shape().to_vec();
        if found != expected {
            return Err(ModelError::ShapeMismatch {
                path: self.origin.clone(),
                tensor: name.to_string(),
                expected: expected.to_vec(),
                found,
                hint: "config.json and the weights disagree (hidden_size, head_dim, num_key_value_heads, vocab_size?)".into(),
            });
        }
        let t = self
            .st
            .load(name, device)
            .map_err(|e| ModelError::Safetensors {
                path: self.origin.clone(),
                message: format!("tensor `{name}`: {e}"),
            })?;
        Ok(t.to_dtype(dtype)?)
    }

    /// Loads a tensor whatever its shape (used for adapters, whose rank comes from the file).
    pub fn load_any(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let t = self
            .st
            .load(name, device)
            .map_err(|e| ModelError::Safetensors {
                path: self.origin.clone(),
                message: format!("tensor `{name}`: {e}"),
            })?;
        Ok(t.to_dtype(dtype)?)
    }
}

/// The distinct shard files named by an index's `weight_map`, in sorted order.
fn shards_from_index(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::io(index, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: index.to_path_buf(),
        source,
    })?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::Config {
            path: index.to_path_buf(),
            field: "weight_map".into(),
            message: "missing or not an object of tensor name → shard file".into(),
        })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut shards = BTreeSet::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| ModelError::Config {
            path: index.to_path_buf(),
            field: format!("weight_map.{tensor}"),
            message: format!("expected a file name, found {file}"),
        })?;
        shards.insert(dir.join(file));
    }
    Ok(shards.into_iter().collect())
}
