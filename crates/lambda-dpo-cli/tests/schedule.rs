//! `lambda-dpo schedule` end to end: the App. D-shaped example (five points, degree 2, the λ-DPO
//! authors' ten λ as candidates, τ = 100), grid and Dirichlet candidates, and file:line errors.
//!
//! The five points and scores below are illustrative (ours): the paper's App. D numbers could
//! not be retrieved for this repository, so they are not reproduced. The checks are the ones
//! that matter for the method — the fit reproduces its training points to 1e-9 (the paper's
//! gradient-descent fit does not), and the probabilities are softmax(τ·score).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    bin()
        .arg("schedule")
        .args(args)
        .output()
        .expect("run lambda-dpo")
}

const POINTS: &str = r#"{"lambda": [0.25, 0.25, 0.25, 0.25], "score": 0.472}
{"lambda": [1.0, 0.0, 0.0, 0.0], "score": 0.455}
{"lambda": [0.0, 1.0, 0.0, 0.0], "score": 0.468}
{"lambda": [0.0, 0.0, 1.0, 0.0], "score": 0.461}
{"lambda": [0.0, 0.0, 0.0, 1.0], "score": 0.466}
"#;

/// The authors' ten λ (LLaMA-Factory fork, `TableLambdaScheduler.TABLE`), as published.
const AUTHORS_CANDIDATES: &str = r#"{"lambda": [0.212, 0.334, 0.245, 0.209]}
{"lambda": [0.126, 0.237, 0.131, 0.507]}
{"lambda": [0.542, 0.079, 0.256, 0.123]}
{"lambda": [0.233, 0.721, 0.020, 0.025]}
{"lambda": [0.004, 0.334, 0.281, 0.381]}
{"lambda": [0.320, 0.069, 0.513, 0.099]}
{"lambda": [0.236, 0.155, 0.358, 0.251]}
{"lambda": [0.141, 0.110, 0.701, 0.048]}
{"lambda": [0.070, 0.198, 0.388, 0.344]}
{"lambda": [0.090, 0.139, 0.306, 0.465]}
"#;

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn app_d_shaped_example_fits_its_points_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let points = write(dir.path(), "points.jsonl", POINTS);
    let cands = write(dir.path(), "candidates.jsonl", AUTHORS_CANDIDATES);
    let out = run(&[
        "--points",
        points.to_str().unwrap(),
        "--degree",
        "2",
        "--tau",
        "100",
        "--candidates",
        cands.to_str().unwrap(),
    ]);
    let v = stdout_json(&out);
    assert_eq!(v["degree"], 2);
    assert_eq!(v["num_features"], 15);
    assert_eq!(v["coefficients"].as_array().unwrap().len(), 15);
    assert_eq!(v["feature_names"][5], "l1*l1");
    for p in v["fit"].as_array().unwrap() {
        let (obs, pred) = (
            p["observed"].as_f64().unwrap(),
            p["predicted"].as_f64().unwrap(),
        );
        assert!(
            (obs - pred).abs() < 1e-9,
            "observed {obs} vs predicted {pred}"
        );
    }
    let cands = v["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 10);
    let scores: Vec<f64> = cands.iter().map(|c| c["score"].as_f64().unwrap()).collect();
    let probs: Vec<f64> = cands.iter().map(|c| c["prob"].as_f64().unwrap()).collect();
    assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    // prob_i / prob_j = exp(τ (score_i − score_j)).
    for i in 1..10 {
        let expected = (100.0 * (scores[i] - scores[0])).exp();
        assert!((probs[i] / probs[0] - expected).abs() < 1e-9 * expected);
    }
    // Three of the authors' rows sum to 1.001/0.999: used as given, reported on stderr.
    assert!(String::from_utf8_lossy(&out.stderr).contains("not on the simplex"));
}

#[test]
fn grid_and_dirichlet_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let points = write(dir.path(), "points.jsonl", POINTS);
    let p = points.to_str().unwrap();
    let grid = stdout_json(&run(&["--points", p, "--tau", "100", "--grid", "0.25"]));
    assert_eq!(grid["candidates"].as_array().unwrap().len(), 35); // C(4+3, 3)

    let a = stdout_json(&run(&[
        "--points",
        p,
        "--tau",
        "100",
        "--dirichlet",
        "8",
        "--seed",
        "7",
    ]));
    let b = stdout_json(&run(&[
        "--points",
        p,
        "--tau",
        "100",
        "--dirichlet",
        "8",
        "--seed",
        "7",
    ]));
    let c = stdout_json(&run(&[
        "--points",
        p,
        "--tau",
        "100",
        "--dirichlet",
        "8",
        "--seed",
        "8",
        "--alpha",
        "0.5",
    ]));
    assert_eq!(a["candidates"].as_array().unwrap().len(), 8);
    assert_eq!(a, b, "same seed, same candidates");
    assert_ne!(a["candidates"], c["candidates"]);
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_points_file_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{\"lambda\": [0.5, 0.5], \"score\": 1}\nnot json\n",
            ":2",
            "invalid JSON",
        ),
        (
            "{\"lambda\": [0.5, 0.5], \"score\": 1}\n{\"lambda\": [0.5, 0.5]}\n",
            ":2: field `score`",
            "missing",
        ),
        (
            "{\"lambda\": [0.5, 0.5], \"score\": 1}\n\n{\"lambda\": [1.0], \"score\": 2}\n",
            ":3: field `lambda`",
            "expected 2",
        ),
        (
            "{\"lambda\": [0.5, \"x\"], \"score\": 1}\n",
            ":1: field `lambda[1]`",
            "finite number",
        ),
        (
            "{\"lambda\": [0.5, 0.5], \"score\": \"high\"}\n",
            ":1: field `score`",
            "a string",
        ),
        ("\n\n", ": no", "no observed points"),
    ];
    for (i, (text, location, message)) in cases.iter().enumerate() {
        let points = write(dir.path(), "points.jsonl", text);
        let out = run(&[
            "--points",
            points.to_str().unwrap(),
            "--tau",
            "100",
            "--grid",
            "0.5",
        ]);
        let err = failure(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "case {i}: bad input exits with 2: {err}"
        );
        assert!(
            err.contains(&format!("points.jsonl{location}")),
            "case {i}: {err}"
        );
        assert!(err.contains(message), "case {i}: {err}");
        if i != 2 && i != 3 && i != 4 {
            assert!(err.contains("hint:"), "case {i}: {err}");
        }
    }
}

#[test]
fn candidates_must_match_the_points_dimension() {
    let dir = tempfile::tempdir().unwrap();
    let points = write(dir.path(), "points.jsonl", POINTS);
    let cands = write(
        dir.path(),
        "cands.jsonl",
        "{\"lambda\": [0.25, 0.25, 0.25, 0.25]}\n{\"lambda\": [0.5, 0.5]}\n",
    );
    let out = run(&[
        "--points",
        points.to_str().unwrap(),
        "--tau",
        "100",
        "--candidates",
        cands.to_str().unwrap(),
    ]);
    let err = failure(&out);
    assert!(
        err.contains("cands.jsonl:2: field `lambda`: has 2 weights, expected 4"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn exactly_one_candidate_source_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let points = write(dir.path(), "points.jsonl", POINTS);
    let p = points.to_str().unwrap();
    assert!(!run(&["--points", p, "--tau", "100"]).status.success());
    assert!(!run(&[
        "--points",
        p,
        "--tau",
        "100",
        "--grid",
        "0.5",
        "--dirichlet",
        "3"
    ])
    .status
    .success());
    let bad_step = failure(&run(&["--points", p, "--tau", "100", "--grid", "0.3"]));
    assert!(bad_step.contains("step"), "{bad_step}");
}
