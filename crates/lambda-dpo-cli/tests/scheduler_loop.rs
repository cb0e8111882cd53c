//! The paper's two-round procedure (App. D) end to end with real commands: round-1 runs at fixed
//! λ (`train`), their benchmark results (`eval --output <run>/eval.json`), the fit from the run
//! folders (`schedule --runs`), and a round-2 run whose `[lambda] kind = "scheduled"` samples
//! from the same fitted table (`train`, `schedule.json`, the table in `config.resolved.toml`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model() -> String {
    repo()
        .join("crates/lambda-dpo-model/tests/fixtures/qwen2/model")
        .to_string_lossy()
        .into_owned()
}

/// ../shared/data/benchmarks, or `None` (with a notice) outside CI when it is missing.
fn benchmarks() -> Option<PathBuf> {
    let d = repo().join("../shared/data/benchmarks");
    if d.is_dir() {
        return Some(d);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing (CI must have the shared data)",
        d.display()
    );
    eprintln!("skipping: {} not found", d.display());
    None
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("binary runs")
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Four pre-tokenized lists rated on two dimensions.
fn write_data(path: &Path) {
    let mut out = String::new();
    for i in 0..4u32 {
        let responses: Vec<Value> = (0..3u32)
            .map(|q| {
                serde_json::json!({"ids": [40 + i, 50 + q, 17, 60 + q],
                "scores": {"helpfulness": q + 1, "honesty": 3 - q}})
            })
            .collect();
        let line = serde_json::json!({"prompt_ids": [30 + i, 31, 32], "responses": responses});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

fn write_config(dir: &Path, name: &str, lambda: &str) -> String {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "[model]\npath = \"{}\"\n[data]\ntrain = \"train.jsonl\"\n[lora]\nr = 2\n[train]\noutput_dir = \"runs/{name}\"\nmax_steps = 2\nlearning_rate = 0.05\n[lambda]\n{lambda}",
            model()
        ),
    )
    .unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn two_rounds_from_run_folders_to_a_scheduled_run() {
    let Some(data) = benchmarks() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_data(&d.join("train.jsonl"));

    // Round 1: the unimodal runs and the uniform one, each evaluated.
    let round1 = [
        ("helpfulness", "[1.0, 0.0]"),
        ("honesty", "[0.0, 1.0]"),
        ("uniform", "[0.5, 0.5]"),
    ];
    let mut expected = Vec::new();
    for (name, lambda) in round1 {
        let cfg = write_config(d, name, &format!("kind = \"fixed\"\nlambda = {lambda}\n"));
        ok(bin(&["train", "--config", &cfg]));
        let run = d.join("runs").join(name);
        let eval = run.join("eval.json");
        ok(bin(&[
            "eval",
            "--model",
            &model(),
            "--adapter",
            run.join("adapter").to_str().unwrap(),
            "--tasks",
            "arc_easy",
            "--limit",
            "8",
            "--data-dir",
            data.to_str().unwrap(),
            "--output",
            eval.to_str().unwrap(),
        ]));
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&eval).unwrap()).unwrap();
        let r = &doc["results"]["arc_easy"];
        let score = (r["acc,none"].as_f64().unwrap() + r["acc_norm,none"].as_f64().unwrap()) / 2.0;
        let lambda: Vec<f64> = serde_json::from_str(lambda).unwrap();
        expected.push((lambda, score));
    }

    // The fit, from the run folders.
    let runs: Vec<String> = round1
        .iter()
        .map(|(n, _)| d.join("runs").join(n).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["schedule", "--runs"];
    args.extend(runs.iter().map(String::as_str));
    args.extend([
        "--score",
        "arc_easy:acc",
        "arc_easy:acc_norm",
        "--degree",
        "1",
    ]);
    args.extend(["--grid", "0.25", "--tau", "100"]);
    let o = ok(bin(&args));
    let fit: Value = serde_json::from_slice(&o.stdout).unwrap();
    let points = fit["fit"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    for (p, (lambda, score)) in points.iter().zip(&expected) {
        let l: Vec<f64> = serde_json::from_value(p["lambda"].clone()).unwrap();
        assert_eq!(&l, lambda);
        assert!((p["observed"].as_f64().unwrap() - score).abs() < 1e-12);
    }
    let candidates = fit["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 5, "the 0.25 grid on 2 dimensions");

    // Round 2: the scheduled run samples from exactly that table.
    let spec = format!(
        "kind = \"scheduled\"\nruns = [{}]\nscore = [\"arc_easy:acc\", \"arc_easy:acc_norm\"]\ndegree = 1\ntau = 100.0\ngrid = 0.25\n",
        round1
            .iter()
            .map(|(n, _)| format!("\"runs/{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let cfg = write_config(d, "scheduled", &spec);
    ok(bin(&["train", "--config", &cfg]));
    let run = d.join("runs/scheduled");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("schedule.json")).unwrap()).unwrap();
    assert_eq!(record["points"].as_array().unwrap().len(), 3);
    let resolved: toml::Table =
        toml::from_str(&std::fs::read_to_string(run.join("config.resolved.toml")).unwrap())
            .unwrap();
    let lambda = resolved["lambda"].as_table().unwrap();
    assert_eq!(lambda["kind"].as_str(), Some("table"));
    let rows = lambda["rows"].as_array().unwrap();
    assert_eq!(rows.len(), candidates.len());
    let total: f64 = candidates.iter().map(|c| c["prob"].as_f64().unwrap()).sum();
    for (row, c) in rows.iter().zip(candidates) {
        let want = c["prob"].as_f64().unwrap() / total;
        let got = row["prob"].as_float().unwrap();
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }

    // A run without one known λ cannot be a point.
    let cfg = write_config(d, "dirichlet", "kind = \"dirichlet\"\nalpha = [1.0, 1.0]\n");
    ok(bin(&["train", "--config", &cfg]));
    let o = bin(&[
        "schedule",
        "--runs",
        d.join("runs/dirichlet").to_str().unwrap(),
        "--score",
        "arc_easy:acc",
        "--grid",
        "0.5",
        "--tau",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("config.resolved.toml") && err.contains("lambda.kind"),
        "{err}"
    );
    // A metric the results do not have names the file and lists what is there.
    let o = bin(&[
        "schedule",
        "--runs",
        &runs[0],
        "--score",
        "arc_easy:f1",
        "--grid",
        "0.5",
        "--tau",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("eval.json") && err.contains("arc_easy:acc_norm,none"),
        "{err}"
    );
}
