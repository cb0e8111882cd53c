//! `lambda-dpo-model`: a Hugging Face-exact Llama / Qwen2 decoder for *training*, in candle.
//!
//! What lives here: reading HF model folders ([`config`], [`weights`]), the differentiable
//! decoder ([`decoder`]) with its training-safe ops ([`ops`], [`rope`]) and fused CPU kernels
//! with a backward ([`kernels`]), LoRA adapters in PEFT
//! format ([`lora`]), per-token log-probabilities ([`logprobs`]) and their gradient-checkpointed
//! training forward ([`checkpoint`]), the tokenizer and chat
//! templates ([`tokenizer`], [`chat`]), KV-cached batched text generation ([`generate`]),
//! adapter soups ([`soup`]), and merging an adapter into a plain HF folder ([`export`]).
//! What does not: losses (pure math crate), data formats, the training loop.

pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod error;
pub mod export;
pub mod full;
pub mod generate;
pub mod grads;
pub mod io;
pub mod kernels;
pub mod logprobs;
pub mod lora;
pub mod ops;
pub mod rope;
pub mod soup;
pub mod tokenizer;
pub mod weights;

pub use chat::{ChatTemplate, Message};
pub use checkpoint::Checkpointed;
pub use config::{Architecture, ModelConfig, RopeScaling};
pub use decoder::{KvCache, Model, PackedLayout};
pub use error::{ModelError, Result};
pub use generate::{
    generate, generate_with_progress, row_seed, stop_token_ids, FinishReason, GenerateOptions,
    Generation, Prompt, SamplingConfig,
};
pub use kernels::FusedOps;
pub use logprobs::{ScoreOptions, ScoreRequest, Scored};
pub use lora::{Adapter, LoraConfig, LoraRun, Target};
pub use soup::{soup, SoupError};
pub use tokenizer::Tokenizer;
