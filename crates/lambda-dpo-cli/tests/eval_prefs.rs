//! `lambda-dpo eval-prefs` against a committed torch + scipy computation
//! (`fixtures/eval_prefs/gen_eval_prefs.py`, from the float64 transformers + peft log-probs of
//! the `score` fixture: tiny qwen2, policy = base + adapter, reference = base), plus the sweep,
//! soup and error behaviour. The binary runs in f32, hence 1e-4 on cross-entropies; orderings
//! (top-1, pairs, τ) are exact because no two rewards in a list are closer than 0.025.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn path(rel: &str) -> String {
    manifest().join(rel).to_str().unwrap().to_string()
}

fn qwen2(rel: &str) -> String {
    path(&format!("../lambda-dpo-model/tests/fixtures/qwen2/{rel}"))
}

fn lists() -> String {
    path("tests/fixtures/score/lists.jsonl")
}

fn run(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
        .arg("eval-prefs")
        .args(args)
        .output()
        .expect("lambda-dpo runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs with the qwen2 model and `extra`, returns the output JSON and stdout.
fn eval_prefs(extra: &[String], out: &Path) -> (Value, String) {
    let mut args: Vec<String> = vec![
        "--model".into(),
        qwen2("model"),
        "--data".into(),
        lists(),
        "--output".into(),
        out.to_str().unwrap().into(),
    ];
    args.extend(extra.iter().cloned());
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let doc = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    (doc, text(&o.stdout))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn assert_scores(got: &Value, want: &Value, what: &str) {
    for key in ["lists", "skipped", "pairs", "tau_lists"] {
        assert_eq!(got[key], want[key], "{what}: {key}");
    }
    for (key, tol) in [
        ("cross_entropy", 1e-4),
        ("top1", 1e-12),
        ("pairwise_accuracy", 1e-12),
        ("kendall_tau", 1e-12),
    ] {
        let (g, w) = (got[key].as_f64(), want[key].as_f64());
        match (g, w) {
            (Some(g), Some(w)) => assert!((g - w).abs() <= tol, "{what}: {key} {g} vs {w}"),
            _ => assert_eq!(g, w, "{what}: {key}"),
        }
    }
}

#[test]
fn matches_torch_and_scipy_in_both_settings() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(path("tests/fixtures/eval_prefs/expected.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = expected["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 2);
    for s in settings {
        let name = s["name"].as_str().unwrap();
        let args = strings(&[
            "--adapter",
            &qwen2("adapter"),
            "--beta",
            &s["beta"].to_string(),
            "--logp",
            s["logp"].as_str().unwrap(),
            "--lambda",
            s["lambda_arg"].as_str().unwrap(),
            "--target-temperature",
            &s["temperature"].to_string(),
        ]);
        let (doc, stdout) = eval_prefs(&args, &dir.path().join(format!("{name}.json")));
        assert_eq!(doc["steerable"], false);
        let points = doc["points"].as_array().unwrap();
        assert_eq!(points.len(), 1, "{name}");
        let p = &points[0];
        for (dim, want) in s["dimensions"].as_object().unwrap() {
            assert_scores(&p["dimensions"][dim], want, &format!("{name} {dim}"));
            assert!(stdout.contains(dim.as_str()), "{stdout}");
        }
        assert_scores(&p["mixed"], &s["mixed"], &format!("{name} mixed"));
        // λ as written in the results is the one asked for.
        let lambda: Vec<f64> = serde_json::from_value(p["lambda"].clone()).unwrap();
        let want: Vec<f64> = serde_json::from_value(s["lambda"].clone()).unwrap();
        assert!(lambda.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12));
    }
}

#[test]
fn an_unconditioned_adapter_is_flat_over_the_sweep_and_a_soup_of_it_equals_it() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, stdout) = eval_prefs(
        &strings(&["--adapter", &qwen2("adapter"), "--sweep", "2"]),
        &dir.path().join("plain.json"),
    );
    let points = plain["points"].as_array().unwrap();
    assert_eq!(points.len(), 3, "the 0.5 grid on 2 dimensions");
    assert_eq!(plain["steerable"], false);
    for p in points {
        assert_eq!(p["dimensions"], points[0]["dimensions"]);
    }
    // A flat curve has no rank correlation with λ.
    assert_eq!(plain["controllability"]["helpfulness"], Value::Null);
    assert!(stdout.contains("controllability"), "{stdout}");
    let svg = std::fs::read_to_string(dir.path().join("plain.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("helpfulness") && svg.contains("honesty"));

    // Σ_k λ_k ΔW with the same ΔW twice is ΔW at every λ: the soup path runs per point and must
    // reproduce the plain adapter's numbers.
    let (soup, _) = eval_prefs(
        &strings(&[
            "--adapter",
            &qwen2("adapter"),
            "--adapter",
            &qwen2("adapter"),
            "--sweep",
            "2",
        ]),
        &dir.path().join("soup.json"),
    );
    assert_eq!(soup["steerable"], true);
    for (a, b) in soup["points"].as_array().unwrap().iter().zip(points) {
        for dim in ["helpfulness", "honesty"] {
            assert_scores(&a["dimensions"][dim], &b["dimensions"][dim], dim);
        }
        assert_scores(&a["mixed"], &b["mixed"], "mixed");
    }

    // Without an adapter the policy is the reference: every reward 0, CE = ln N exactly.
    let (base, _) = eval_prefs(&[], &dir.path().join("base.json"));
    let d = &base["points"][0]["dimensions"]["honesty"];
    assert_eq!(d["pairwise_accuracy"], 0.0);
    assert_eq!(d["kendall_tau"], Value::Null);
    let ce = d["cross_entropy"].as_f64().unwrap();
    // Lists of 3 and 4 responses: mean of ln 3 and ln 4 as the fixture has them (2 and 3).
    let want = (2.0 * 3f64.ln() + 3.0 * 4f64.ln()) / 5.0;
    assert!((ce - want).abs() < 1e-12, "{ce} vs {want}");
}

#[test]
fn bad_input_exits_2_with_a_located_message() {
    let dir = tempfile::tempdir().unwrap();
    let base = strings(&["--model", &qwen2("model"), "--data", &lists()]);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (strings(&["--sweep", "0"]), "--sweep"),
        (
            strings(&[
                "--adapter",
                &qwen2("adapter"),
                "--adapter",
                &qwen2("adapter"),
                "--adapter",
                &qwen2("adapter"),
            ]),
            "3 adapters for 2 preference dimensions",
        ),
        (strings(&["--lambda", "kindness=1"]), "kindness"),
        (strings(&["--beta", "0"]), "--beta"),
    ];
    for (extra, needle) in cases {
        let mut args = base.clone();
        args.extend(extra);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(needle),
            "{needle}: {}",
            text(&o.stderr)
        );
    }
    // A broken data line is named with its file and line.
    let bad = dir.path().join("bad.jsonl");
    let good = std::fs::read_to_string(lists()).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(
        &bad,
        format!("{first}\n{{\"prompt_ids\": [1, 2], \"responses\": 7}}\n"),
    )
    .unwrap();
    let o = run(&strings(&[
        "--model",
        &qwen2("model"),
        "--data",
        bad.to_str().unwrap(),
    ]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("bad.jsonl:2"),
        "{}",
        text(&o.stderr)
    );
}
