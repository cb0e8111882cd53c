//! `lambda-dpo bench`: each benchmark runs end to end on a very small workload and its JSON
//! report carries every field, finite and positive where it must be. No timing is asserted.

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
        .arg("bench")
        .args(args)
        .args(["--threads", "2", "--json"])
        .output()
        .expect("binary runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("one JSON object on stdout")
}

fn positive(r: &Value, key: &str) -> f64 {
    let x = r[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` missing or not a number in {r:#}"));
    assert!(x.is_finite() && x > 0.0, "`{key}` = {x}");
    x
}

fn positive_stats(r: &Value, key: &str) {
    for s in ["median", "min", "max"] {
        let x = r[key][s]
            .as_f64()
            .unwrap_or_else(|| panic!("`{key}.{s}` missing in {r:#}"));
        assert!(x.is_finite() && x >= 0.0, "`{key}.{s}` = {x}");
    }
}

const SMALL: [&str; 10] = [
    "--preset",
    "tiny",
    "--steps",
    "1",
    "--warmup",
    "0",
    "--prompt-len",
    "8",
    "--response-len",
    "8",
];

#[test]
fn train_step_reports_every_field() {
    let r = bench(&[&["train-step", "--n", "2"][..], &SMALL[..]].concat());
    assert_eq!(r["bench"], "train-step");
    assert_eq!(r["reference"], "disabled-adapter");
    assert_eq!(r["tokens_per_step"], 2 * (8 + 8));
    for key in [
        "tokens_per_s",
        "peak_rss_mib",
        "matmul_peak_gflops",
        "model_flops_per_step",
        "actual_flops_per_step",
        "mfu",
        "mfu_actual",
        "params",
        "matmul_params",
        "lora_params",
    ] {
        positive(&r, key);
    }
    positive_stats(&r, "step_ms");
    positive_stats(&r, "forward_ms");
    assert!(r["backward_ms"]["median"].as_f64().unwrap().is_finite());
    // The tiny preset: hidden 256, 4 layers, 8/2 heads, intermediate 688, vocab 2000, untied.
    assert_eq!(r["params"], 3_795_200);
    assert_eq!(r["matmul_params"], 3_280_896);
    // At θ = ref (B = 0 at init) every implicit reward is 0 and L = ln N.
    let loss = r["loss_first"].as_f64().unwrap();
    assert!((loss - 2f64.ln()).abs() < 1e-4, "loss {loss}");
    // 6ND by convention; the frozen base and a reference forward also come to 6ND.
    let six_nd = 6.0 * 3_280_896.0 * 32.0;
    assert!((r["model_flops_per_step"].as_f64().unwrap() - six_nd).abs() < 1.0);
}

#[test]
fn train_step_with_prefix_sharing() {
    let r = bench(
        &[
            &["train-step", "--n", "3", "--prefix-sharing"][..],
            &SMALL[..],
        ]
        .concat(),
    );
    assert_eq!(r["prefix_sharing"], true);
    // Still N·(P+C) tokens per step; the FLOPs actually run count the prompt once.
    assert_eq!(r["tokens_per_step"], 3 * (8 + 8));
    positive(&r, "tokens_per_s");
    let run_tokens = (8 + 3 * 7) as f64;
    let want = 6.0 * r["matmul_params"].as_f64().unwrap() * run_tokens;
    assert!((r["actual_flops_per_step"].as_f64().unwrap() - want).abs() < 1.0);
    let loss = r["loss_first"].as_f64().unwrap();
    assert!((loss - 3f64.ln()).abs() < 1e-4, "loss {loss}");
}

#[test]
fn logprobs_and_generate_report_throughput() {
    let r = bench(&[&["logprobs", "--n", "2"][..], &SMALL[..]].concat());
    assert_eq!(r["bench"], "logprobs");
    positive(&r, "tokens_per_s");
    positive(&r, "mfu");
    assert!(r["sum_logprobs"].as_f64().unwrap() < 0.0);
    let g = bench(&[&["generate", "--n", "2"][..], &SMALL[..]].concat());
    assert_eq!(g["tokens_per_step"], 2 * 8);
    positive(&g, "tokens_per_s");
    positive(&g, "decode_tokens_per_s");
    positive_stats(&g, "prefill_ms");
}

#[test]
fn bad_workload_is_an_input_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
        .args(["bench", "train-step", "--n", "1", "--steps", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--n"));
}

#[test]
fn train_step_with_gradient_checkpointing() {
    let r = bench(
        &[
            &["train-step", "--n", "2", "--gradient-checkpointing"][..],
            &SMALL[..],
        ]
        .concat(),
    );
    assert_eq!(r["gradient_checkpointing"], true);
    positive(&r, "tokens_per_s");
    // The policy forward, its recompute in the backward, the backward and the reference
    // forward: 2ND each.
    let want = 8.0 * r["matmul_params"].as_f64().unwrap() * (2 * (8 + 8)) as f64;
    assert!((r["actual_flops_per_step"].as_f64().unwrap() - want).abs() < 1.0);
    let loss = r["loss_first"].as_f64().unwrap();
    assert!((loss - 2f64.ln()).abs() < 1e-4, "loss {loss}");
}
