//! End-to-end tests of the `lambda-dpo` binary on the model crate's parity fixtures:
//! `logprobs` reproduces transformers' numbers, `export` writes a loadable merged folder, and
//! bad input fails with file:line, the field, a hint and exit code 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lambda-dpo-model/tests/fixtures")
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn expected(name: &str) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(name).join("expected.json")).unwrap(),
    )
    .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn logprobs_reproduces_transformers_with_and_without_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let exp = expected("qwen2");
    let lines: Vec<String> = exp["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| serde_json::json!({"input_ids": c["input_ids"], "completion_start": c["completion_start"]}).to_string())
        .collect();
    let input = write(dir.path(), "in.jsonl", &(lines.join("\n") + "\n"));
    let model = fixtures().join("qwen2/model");
    let adapter = fixtures().join("qwen2/adapter");
    let out = dir.path().join("out.jsonl");
    for (extra, key) in [
        (vec!["--adapter", adapter.to_str().unwrap()], "adapter"),
        (vec![], "base"),
    ] {
        let mut args = vec![
            "logprobs",
            "--model",
            model.to_str().unwrap(),
            "--input",
            &input,
            "--output",
            out.to_str().unwrap(),
            "--batch-size",
            "3",
        ];
        args.extend(extra);
        let o = bin(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = std::fs::read_to_string(&out).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), lines.len());
        for (row, case) in rows.iter().zip(exp["cases"].as_array().unwrap()) {
            let got: Vec<f64> = row["token_logprobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let want: Vec<f64> = case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), want.len());
            assert_eq!(row["num_tokens"].as_u64().unwrap() as usize, want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{key}: {g} vs {w}");
            }
            let sum: f64 = want.iter().sum();
            assert!((row["sum"].as_f64().unwrap() - sum).abs() < 1e-3);
            assert!((row["mean"].as_f64().unwrap() - sum / want.len() as f64).abs() < 1e-4);
        }
    }
}

#[test]
fn logprobs_accepts_prompts_and_chat_messages() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "text.jsonl",
        "{\"prompt\": \"The capital of France is\", \"completion\": \" Paris.\"}\n\
         {\"messages\": [{\"role\": \"user\", \"content\": \"Hello there\"}], \"completion\": \"Hi! How can I help?<|eot_id|>\"}\n",
    );
    let o = bin(&[
        "logprobs",
        "--model",
        fixtures().join("llama/model").to_str().unwrap(),
        "--input",
        &input,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let n = r["num_tokens"].as_u64().unwrap();
        assert!(n >= 2);
        assert!(r["token_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x.as_f64().unwrap() < 0.0));
    }
    // The special token in the completion is one token (the last one scored).
    let tok = lambda_dpo_model::Tokenizer::from_dir(&fixtures().join("llama/model")).unwrap();
    let n = tok
        .encode("Hi! How can I help?<|eot_id|>", false)
        .unwrap()
        .len();
    assert_eq!(rows[1]["num_tokens"].as_u64().unwrap() as usize, n);
}

#[test]
fn bad_input_lines_name_file_line_and_field_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixtures().join("llama/model");
    let cases = [
        (
            "{\"input_ids\": [1, 2, 3], \"completion_start\": 3}",
            "completion_start",
            "outside 1..3",
        ),
        ("{\"input_ids\": [1, 2, 3]}", "completion_start", "missing"),
        (
            "{\"input_ids\": [1, 99999], \"completion_start\": 1}",
            "input_ids[1]",
            "0..805",
        ),
        ("{\"prompt\": \"hi\"}", "completion", "missing"),
        ("[1, 2]", "", "expected a JSON object"),
        (
            "{\"prompt\": \"x\", \"completion\": 3}",
            "completion",
            "expected a string, found a number",
        ),
        ("not json", "", "invalid JSON"),
    ];
    for (bad, field, msg) in cases {
        let input = write(
            dir.path(),
            "bad.jsonl",
            &format!("{{\"input_ids\": [1, 2, 3], \"completion_start\": 1}}\n{bad}\n"),
        );
        let o = bin(&[
            "logprobs",
            "--model",
            model.to_str().unwrap(),
            "--input",
            &input,
        ]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("bad.jsonl:2"), "{bad}: {e}");
        assert!(e.contains(field) && e.contains(msg), "{bad}: {e}");
    }
}

#[test]
fn missing_model_fails_with_the_path_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "in.jsonl",
        "{\"input_ids\": [1, 2, 3], \"completion_start\": 1}\n",
    );
    let o = bin(&[
        "logprobs",
        "--model",
        "/nonexistent/model",
        "--input",
        &input,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/model"), "{}", stderr(&o));
}

#[test]
fn export_writes_a_merged_folder_that_scores_like_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("merged");
    let model = fixtures().join("llama/model");
    let o = bin(&[
        "export",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        fixtures().join("llama/adapter").to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(merged.join(f).is_file(), "{f} missing");
    }
    let exp = expected("llama");
    let case = &exp["cases"][3];
    let input = write(dir.path(), "in.jsonl", &(serde_json::json!({"input_ids": case["input_ids"], "completion_start": case["completion_start"]}).to_string() + "\n"));
    let o = bin(&[
        "logprobs",
        "--model",
        merged.to_str().unwrap(),
        "--input",
        &input,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let row: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for (g, w) in row["token_logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(case["adapter"].as_array().unwrap())
    {
        assert!((g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-4);
    }
    // Exporting onto the model folder itself is refused.
    let o = bin(&[
        "export",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        fixtures().join("llama/adapter").to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("model folder itself"), "{}", stderr(&o));
}
