//! Errors of the evaluation readers and scorer: each names the file, the line and the field,
//! and says what to do (`hint:`).

use std::path::PathBuf;

use lambda_dpo_model::ModelError;

/// Why a benchmark file could not be read or an item could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {source}\nhint: check that the benchmark file exists and is readable")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not valid JSON: {source}\nhint: benchmark files are JSON Lines, one object per line")]
    Json {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{path}:{line}: field `{field}`: {message}\nhint: {hint}")]
    Field {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
        hint: String,
    },
    #[error("{task}: {message}\nhint: {hint}")]
    Task {
        task: String,
        message: String,
        hint: String,
    },
    /// Boxed: model errors are large and rare.
    #[error(transparent)]
    Model(Box<ModelError>),
    #[error("tensor operation failed: {0}")]
    Tensor(Box<candle_core::Error>),
}

impl From<ModelError> for EvalError {
    fn from(e: ModelError) -> Self {
        EvalError::Model(Box::new(e))
    }
}

impl From<candle_core::Error> for EvalError {
    fn from(e: candle_core::Error) -> Self {
        EvalError::Tensor(Box::new(e))
    }
}

/// Result of the evaluation code.
pub type Result<T> = std::result::Result<T, EvalError>;
