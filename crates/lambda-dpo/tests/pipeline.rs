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
    // What loading did, file by file: at max_length 192 most SFT conversations keep no
    // assistant token (a long prompt fills the window) and are dropped, counted; then both
    // UltraFeedback files, in order: the raw row (one list of 4) and the binarized pairs (one of
    // the 200 has identical responses and is dropped with N < 2).
    let kept: Vec<(String, usize, usize)> = summary
        .data_reports
        .iter()
        .map(|r| {
            let name = r.file.file_name().unwrap().to_string_lossy().into_owned();
            let dropped = r.report.dropped_too_few + r.report.dropped_no_target;
            (format!("{} {name}", r.role), r.report.kept, dropped)
        })
        .collect();
    assert_eq!(
        kept,
        [
            (
                "sft/train uf_binarized_chosen_as_ultrachat_messages_200.jsonl".to_string(),
                79,
                121
            ),
            (
                "train uf_raw_evol_instruct_row0_ratings_only.json".to_string(),
                1,
                0
            ),
            ("train uf_binarized_trl_eval200.jsonl".to_string(), 199, 1),
        ]
    );
    assert!(out.path().join("data_report.json").is_file());
    // With the SFT adapter merged, the reference is the SFT model: the fresh preference adapter
    // starts exactly at the reference, so each list's first λ-DPO loss is ln N (ln 2 for a
    // pair, ln 4 for the raw row) and the first step's loss is their mean over its 2 lists.
    // (The first line is the step-0 held-out baseline that `eval_every` adds.)
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(out.path().join("metrics.jsonl"))
            .unwrap()
            .lines()
            .find(|l| l.contains("\"loss\""))
            .unwrap(),
    )
    .unwrap();
    let loss = first["loss"].as_f64().unwrap();
    let possible = [0.0, 1.0, 2.0].map(|k| (k * 4f64.ln() + (2.0 - k) * 2f64.ln()) / 2.0);
    assert!(
        possible.iter().any(|p| (loss - p).abs() < 1e-9),
        "first loss {loss} is not a mean of ln 2 / ln 4 over 2 lists: {first}"
    );
    assert!(summary.eval_metrics.is_some());
}
