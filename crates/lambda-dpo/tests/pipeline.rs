//! The SFT → λ-DPO pipeline from one config (configs/pipeline-shared-samples.toml) on the real
//! samples in ../shared/data, with the tiny Llama fixture.

use std::path::PathBuf;

use lambda_dpo::train::{train, RunOptions, TrainConfig};

fn shared_data() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if p.is_dir() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {} is missing",
        p.display()
    );
    eprintln!("skipping: {} not found", p.display());
    None
}

#[test]
fn sft_then_lambda_dpo_on_the_shared_samples() {
    let Some(_) = shared_data() else { return };
    let out = tempfile::tempdir().unwrap();
    let cfg_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/pipeline-shared-samples.toml");
    let overrides = [
        format!("train.output_dir={}", out.path().display()),
        "sft.max_steps=2".to_string(),
        "train.max_steps=2".to_string(),
        "train.grad_accum=2".to_string(),
        "train.eval_every=2".to_string(),
    ];
    let cfg = TrainConfig::load(&cfg_path, &overrides).unwrap();
    let summary = train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(summary.steps, 2);
    // The SFT stage ran first and left its adapter; the preference adapter is the product.
    assert!(out
        .path()
        .join("sft/adapter/adapter_model.safetensors")
        .is_file());
    assert!(out
        .path()
        .join("adapter/adapter_model.safetensors")
        .is_file());
    let sft_metrics = std::fs::read_to_string(out.path().join("sft/metrics.jsonl")).unwrap();
    assert_eq!(
        sft_metrics
            .lines()
            .filter(|l| l.contains("\"loss\"") && !l.contains("eval/"))
            .count(),
        2
    );
    // With the SFT adapter merged, the reference is the SFT model: the fresh preference adapter
    // starts exactly at the reference, so the first λ-DPO loss on these pairs is ln 2.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(out.path().join("metrics.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        (first["loss"].as_f64().unwrap() - 2f64.ln()).abs() < 1e-9,
        "{first}"
    );
    assert!(summary.eval_metrics.is_some());
}
