//! The trainer: config ([`config`]), the loop ([`run`]), the per-list preference step
//! ([`step`]), λ-conditioning by prompt ([`conditioning`]), AdamW and clipping ([`optim`]), checkpoints ([`checkpoint`]) and metrics
//! ([`metrics`]).

pub mod checkpoint;
pub mod conditioning;
pub mod config;
pub mod error;
pub mod metrics;
pub mod optim;
pub mod refcache;
pub mod run;
pub mod step;

pub use config::TrainConfig;
pub use error::{TrainError, TrainResult};
pub use optim::{clip_grad_norm, AdamW, AdamWConfig};
pub use run::{train, DataReport, Progress, RunOptions, TrainSummary};
pub use step::{list_step, ListInput, ListStep, Reference, StepOptions};
