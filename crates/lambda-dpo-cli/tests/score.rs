//! `lambda-dpo score` against a committed torch computation of the paper's formula.
//!
//! `fixtures/score/gen_score.py` wrote `lists.jsonl` (5 pre-tokenized lists, N = 3–4, two rated
//! dimensions) and `expected.json`: float64 transformers + peft numbers on the tiny qwen2 fixture,
//! policy = base + PEFT adapter, reference = base, for λ-DPO in sum and mean mode under two
//! (β, λ, T) settings. The binary runs in f32, hence the 1e-4 tolerances.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Log-probs are f32 sums over a few tokens; loss, target and probabilities are f64 functions of
/// them (the target of the ratings alone).
const TOL_LOGPS: f64 = 1e-4;
const TOL_PROBS: f64 = 1e-4;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(rel: &str) -> PathBuf {
    manifest().join("tests/fixtures/score").join(rel)
}

fn qwen2(rel: &str) -> String {
    manifest()
        .join("../lambda-dpo-model/tests/fixtures/qwen2")
        .join(rel)
        .to_str()
        .unwrap()
        .to_string()
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn run(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
        .arg("score")
        .args(args)
        .output()
        .expect("lambda-dpo runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Scores `lists.jsonl` with the policy adapter plus `extra`, returning the output lines.
fn score(extra: &[&str]) -> (Vec<Value>, String) {
    let mut args: Vec<String> = vec![
        "--model".into(),
        qwen2("model"),
        "--adapter".into(),
        qwen2("adapter"),
        "--data".into(),
        fixture("lists.jsonl").to_str().unwrap().into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, stderr(&o))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, found {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Largest |a − b| over two equally long vectors.
fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn score_matches_the_torch_formula_for_sum_and_mean_and_two_settings() {
    let exp = expected();
    let lists = exp["lists"].as_array().unwrap();
    for setting in exp["settings"].as_array().unwrap() {
        let name = setting["name"].as_str().unwrap();
        let args: Vec<&str> = setting["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let (got, err) = score(&args);
        assert_eq!(got.len(), lists.len(), "{name}: one line per list");
        let results = setting["results"].as_array().unwrap();
        let (mut d_logps, mut d_loss, mut d_probs) = (0.0f64, 0.0f64, 0.0f64);
        for (i, ((g, l), r)) in got.iter().zip(lists).zip(results).enumerate() {
            assert_eq!(
                g["source"].as_str().unwrap(),
                format!("{}:{}", fixture("lists.jsonl").display(), i + 1)
            );
            assert_eq!(g["lengths"], l["lengths"], "{name} list {i}");
            d_logps = d_logps
                .max(max_diff(
                    &floats(&g["policy_logps"]),
                    &floats(&l["policy_logps"]),
                ))
                .max(max_diff(&floats(&g["ref_logps"]), &floats(&l["ref_logps"])));
            d_loss = d_loss.max((g["loss"].as_f64().unwrap() - r["loss"].as_f64().unwrap()).abs());
            d_probs = d_probs
                .max(max_diff(&floats(&g["target"]), &floats(&r["target"])))
                .max(max_diff(
                    &floats(&g["model_probs"]),
                    &floats(&r["model_probs"]),
                ));
        }
        eprintln!("{name}: max |Δ| logps {d_logps:.2e}, loss {d_loss:.2e}, probs {d_probs:.2e}");
        assert!(d_logps < TOL_LOGPS, "{name}: logps differ by {d_logps:e}");
        assert!(d_loss < TOL_PROBS, "{name}: loss differs by {d_loss:e}");
        assert!(
            d_probs < TOL_PROBS,
            "{name}: target/probs differ by {d_probs:e}"
        );

        // The stderr summary: the mean of the per-list losses and a top-1 line per dimension.
        let mean: f64 = results
            .iter()
            .map(|r| r["loss"].as_f64().unwrap())
            .sum::<f64>()
            / results.len() as f64;
        let prefix = format!("scored {} lists: mean loss ", lists.len());
        let shown: f64 = err
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no summary line in {err}"))
            .parse()
            .unwrap();
        assert!((shown - mean).abs() < 1e-5, "{err}");
        assert!(
            err.contains("helpfulness ") && err.contains("honesty "),
            "{err}"
        );
    }
}

#[test]
fn every_reference_route_gives_the_same_reference() {
    // --ref-model base (a second copy) equals the default (the adapter disabled); the policy's
    // own adapter as --ref-adapter makes policy and reference identical: L = −Σ p log(1/N).
    let (default, _) = score(&[]);
    let (separate, _) = score(&["--ref-model", &qwen2("model")]);
    let (same, _) = score(&["--ref-adapter", &qwen2("adapter")]);
    for ((d, s), m) in default.iter().zip(&separate).zip(&same) {
        assert!(max_diff(&floats(&d["ref_logps"]), &floats(&s["ref_logps"])) < 1e-5);
        assert!(max_diff(&floats(&m["ref_logps"]), &floats(&m["policy_logps"])) < 1e-5);
        let n = m["target"].as_array().unwrap().len() as f64;
        assert!((m["loss"].as_f64().unwrap() - n.ln()).abs() < 1e-5, "{m}");
    }
    let (free, err) = score(&["--reference-free"]);
    assert!(free.iter().all(|f| f["ref_logps"].is_null()), "{err}");
}

#[test]
fn bad_input_exits_2_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.jsonl");
    let ok = std::fs::read_to_string(fixture("lists.jsonl")).unwrap();
    let first = ok.lines().next().unwrap();
    let bad = r#"{"prompt_ids": [1, 2], "responses": [{"ids": [3, 99999], "scores": {"helpfulness": 1, "honesty": 2}}, {"ids": [4], "scores": {"helpfulness": 2, "honesty": 1}}]}"#;
    std::fs::write(&data, format!("{first}\n{bad}\n")).unwrap();
    let base = |extra: &[&str]| {
        let mut a = vec![
            "--model".to_string(),
            qwen2("model"),
            "--data".into(),
            data.to_str().unwrap().into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        run(&a)
    };

    let o = base(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("d.jsonl:2: field `responses[0]`"), "{e}");
    assert!(e.contains("found 99999"), "{e}");

    let o = base(&["--lambda", "helpfulness=1,harmlessness=1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--lambda: field `lambda.harmlessness`"),
        "{}",
        stderr(&o)
    );

    let o = base(&["--loss", "simpo", "--logp", "sum"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--logp"), "{}", stderr(&o));
}
