//! `lambda-dpo train` end to end through the binary: a bad config or bad data is the user's
//! input (exit code 2, naming the file and field), and what `train` writes is what `export`
//! takes (train → export → `logprobs` on the merged folder).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lambda-dpo-model/tests/fixtures/qwen2/model")
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Four pre-tokenized lists of three rated responses.
fn write_data(path: &Path) {
    let mut out = String::new();
    for i in 0..4u32 {
        let responses: Vec<serde_json::Value> = (0..3u32)
            .map(|q| serde_json::json!({"ids": [40 + i, 50 + q, 17, 60 + q], "scores": {"helpfulness": q + 1}}))
            .collect();
        let line = serde_json::json!({"prompt_ids": [30 + i, 31, 32], "responses": responses});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

fn write_config(dir: &Path, extra: &str) -> String {
    let p = dir.join("run.toml");
    std::fs::write(
        &p,
        format!(
            "[model]\npath = \"{}\"\n[data]\ntrain = \"train.jsonl\"\n[lora]\nr = 2\n[train]\noutput_dir = \"run\"\nmax_steps = 2\ngrad_accum = 2\nlearning_rate = 0.01\n{extra}",
            model().display()
        ),
    )
    .unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn bad_config_and_bad_data_exit_with_code_2() {
    let dir = tempfile::tempdir().unwrap();
    write_data(&dir.path().join("train.jsonl"));

    // A field the config does not have.
    let cfg = write_config(dir.path(), "learning_rat = 1.0\n");
    let o = bin(&["train", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("learning_rat"), "{}", stderr(&o));

    // A field-level validation error names the field and keeps its hint.
    let cfg = write_config(dir.path(), "full_finetune = true\n");
    let o = bin(&["train", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("field `reference.mode`") && e.contains("hint:"),
        "{e}"
    );

    // A bad --set override.
    let cfg = write_config(dir.path(), "");
    let o = bin(&["train", "--config", &cfg, "--set", "train.warmup_ratio=2"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // A missing config file.
    let missing = dir.path().join("nope.toml");
    let o = bin(&["train", "--config", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // Broken data: file:line and exit code 2.
    std::fs::write(
        dir.path().join("train.jsonl"),
        "{\"prompt_ids\": [1, 2], \"responses\": [\n",
    )
    .unwrap();
    let o = bin(&["train", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("train.jsonl:2"), "{}", stderr(&o));
}

#[test]
fn skipped_records_are_reported_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train.jsonl");
    write_data(&p);
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str("not json\n");
    std::fs::write(&p, text).unwrap();
    let cfg = write_config(dir.path(), "");
    let o = bin(&[
        "train",
        "--config",
        &cfg,
        "--set",
        "train.max_steps=1",
        "--set",
        "data.skip_invalid=true",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("warning: data train")
            && e.contains("5 records, 4 kept; 1 invalid skipped (json 1)"),
        "{e}"
    );
    assert!(dir.path().join("run/data_report.json").is_file());
}

#[test]
fn train_then_export_scores_like_the_trained_adapter() {
    let dir = tempfile::tempdir().unwrap();
    write_data(&dir.path().join("train.jsonl"));
    // lora.dropout 0 so that the adapter, not dropout noise, is what is compared.
    let cfg = write_config(dir.path(), "warmup_ratio = 0.0\n");
    let o = bin(&["train", "--config", &cfg, "--set", "lora.dropout=0.0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // stdout is the product folder, nothing else.
    let adapter = PathBuf::from(String::from_utf8(o.stdout).unwrap().trim());
    assert_eq!(adapter, dir.path().join("run/adapter"));
    assert!(adapter.join("adapter_config.json").is_file());

    let merged = dir.path().join("merged");
    let o = bin(&[
        "export",
        "--model",
        model().to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"input_ids\": [30, 31, 32, 40, 52, 17, 62], \"completion_start\": 3}\n",
    )
    .unwrap();
    let logprobs = |extra: &[&str]| -> Vec<f64> {
        let mut args = vec!["logprobs", "--input", input.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = bin(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let row: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        row["token_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let m = model();
    let base = logprobs(&["--model", m.to_str().unwrap()]);
    let with_adapter = logprobs(&[
        "--model",
        m.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
    ]);
    let exported = logprobs(&["--model", merged.to_str().unwrap()]);
    let max_diff = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    // Training moved the model, and the merged folder is that trained model.
    assert!(
        max_diff(&base, &with_adapter) > 1e-3,
        "training changed nothing"
    );
    assert!(
        max_diff(&with_adapter, &exported) < 1e-4,
        "{with_adapter:?} vs {exported:?}"
    );
}
