//! Shared helpers of the model crate's integration tests: fixture paths and expected numbers
//! produced by `fixtures/generate.py` (transformers + peft, float64).

#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{DType, Device};
use lambda_dpo_model::{Adapter, Model};
use serde::Deserialize;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub input_ids: Vec<u32>,
    pub completion_start: usize,
    pub base: Vec<f64>,
    pub adapter: Vec<f64>,
}

#[derive(Debug, Deserialize)]
pub struct Tokenized {
    pub text: String,
    pub ids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
pub struct Chat {
    pub messages: Vec<lambda_dpo_model::Message>,
    pub add_generation_prompt: bool,
    #[serde(default)]
    pub kwargs: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub tools: Option<serde_json::Value>,
    pub text: String,
    pub ids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
pub struct Expected {
    pub cases: Vec<Case>,
    pub grad_loss_weights: Vec<f64>,
    pub tokenize: Vec<Tokenized>,
    pub chat: Vec<Chat>,
    #[serde(default)]
    pub chat_tools: Vec<Chat>,
}

pub fn expected(name: &str) -> Expected {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

pub fn model(name: &str, dtype: DType) -> Model {
    Model::load(&fixture(name).join("model"), dtype, &Device::Cpu).expect("fixture model loads")
}

pub fn adapter(name: &str, model: &Model) -> Adapter {
    Adapter::load(&fixture(name).join("adapter"), &model.config, &Device::Cpu)
        .expect("fixture adapter loads")
}

/// Largest absolute difference between two slices of equal length.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
