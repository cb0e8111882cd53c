//! Typed errors of the trainer.

/// Everything that can stop a training or scoring run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("config {path}: field `{field}`: {message}")]
    Config {
        path: String,
        field: String,
        message: String,
    },
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("training diverged: non-finite value {value} at step {step} ({source_id})\nhint: lower the learning rate or β, or enable max_grad_norm; the last good checkpoint is kept")]
    NonFinite {
        step: u64,
        value: f64,
        source_id: String,
    },
    /// Boxed: a data error carries file, line, field and hint, and would bloat every `Result`.
    #[error(transparent)]
    Data(Box<crate::data::DataError>),
    #[error(transparent)]
    Math(#[from] lambda_dpo_math::MathError),
    #[error(transparent)]
    Model(Box<lambda_dpo_model::ModelError>),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::data::DataError> for TrainError {
    fn from(e: crate::data::DataError) -> Self {
        TrainError::Data(Box::new(e))
    }
}

impl From<lambda_dpo_model::ModelError> for TrainError {
    fn from(e: lambda_dpo_model::ModelError) -> Self {
        TrainError::Model(Box::new(e))
    }
}

pub type TrainResult<T> = std::result::Result<T, TrainError>;
