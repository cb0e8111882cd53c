//! Typed errors of the synthetic world: every one names the file or folder it concerns.

use std::path::PathBuf;

/// What can go wrong while writing the world's files.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("{path}: {source}\nhint: check that the folder is writable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Boxed: the model crate's errors are large and rare here.
    #[error(transparent)]
    Model(Box<lambda_dpo_model::ModelError>),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<lambda_dpo_model::ModelError> for WorldError {
    fn from(e: lambda_dpo_model::ModelError) -> Self {
        WorldError::Model(Box::new(e))
    }
}

impl WorldError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        WorldError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
