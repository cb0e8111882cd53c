//! Typed errors of the model crate. Every variant says what was expected, what was found, and
//! (where a user can act on it) a `hint:`; the binary adds file/command context with `anyhow`.

use std::path::PathBuf;

/// Everything that can go wrong while loading, running or saving a model, adapter or tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: file not found\nhint: {hint}")]
    MissingFile { path: PathBuf, hint: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "{path}: unsupported architecture `{found}`; supported: {supported}\nhint: lambda-dpo trains Llama-3.x and Qwen2/Qwen2.5 checkpoints"
    )]
    UnsupportedArchitecture {
        path: PathBuf,
        found: String,
        supported: String,
    },

    #[error("{path}: field `{field}`: {message}")]
    Config {
        path: PathBuf,
        field: String,
        message: String,
    },

    #[error(
        "{dir}: only PyTorch pickle weights ({found}) were found; lambda-dpo never unpickles files (pickle can run arbitrary code)\nhint: convert them once with `python -c \"from transformers import AutoModelForCausalLM as M; M.from_pretrained('{dir}').save_pretrained('{dir}', safe_serialization=True)\"`"
    )]
    PickleOnly { dir: PathBuf, found: String },

    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?}\nhint: {hint}")]
    ShapeMismatch {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
        hint: String,
    },

    #[error("{path}: tensor `{tensor}` is missing\nhint: {hint}")]
    MissingTensor {
        path: PathBuf,
        tensor: String,
        hint: String,
    },

    #[error("{path}: {message}")]
    Safetensors { path: PathBuf, message: String },

    #[error("adapter {path}: {message}")]
    Adapter { path: PathBuf, message: String },

    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("chat template: {message}")]
    ChatTemplate { message: String },

    #[error("invalid input: {0}")]
    Input(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            return ModelError::MissingFile {
                path,
                hint: "check the path; a model folder holds config.json, model.safetensors (or model.safetensors.index.json with shards) and tokenizer files".into(),
            };
        }
        ModelError::Io { path, source }
    }
}
