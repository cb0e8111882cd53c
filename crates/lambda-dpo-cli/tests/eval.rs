//! `lambda-dpo eval` end to end on the tiny fixture models and the real benchmark items in
//! ../shared/data: every results entry equals the one lm-eval 0.4.13 printed for the same
//! items (fixtures in crates/lambda-dpo/tests/fixtures/eval, generator beside them), with and
//! without prefix sharing and batching, and bad flags exit 2 with a hint.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
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
        .arg("eval")
        .args(args)
        .output()
        .expect("binary runs")
}

fn fixture(model: &str, run: &str) -> Value {
    let p = repo().join(format!(
        "crates/lambda-dpo/tests/fixtures/eval/{model}/{run}.json"
    ));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Runs `eval` and returns its `results` object.
fn results(model: &str, tasks: &str, limit: &str, extra: &[&str], data: &str) -> Value {
    let dir = repo().join(format!(
        "crates/lambda-dpo-model/tests/fixtures/{model}/model"
    ));
    let mut args = vec![
        "--model",
        dir.to_str().unwrap(),
        "--tasks",
        tasks,
        "--limit",
        limit,
        "--data-dir",
        data,
    ];
    args.extend_from_slice(extra);
    let o = bin(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["results"].clone()
}

/// Same keys; numbers within 1e-9, everything else equal. TruthfulQA mc2 is a continuous
/// function of the log-likelihoods, which agree with lm-eval's to ~1 f32 ulp (≤ 1e-4): its
/// value may differ in the ninth decimal, so it gets 1e-5.
fn assert_entry(ours: &Value, want: &Value, what: &str) {
    let tol = if what.ends_with("truthfulqa_mc2") {
        1e-5
    } else {
        1e-9
    };
    let (o, w) = (ours.as_object().unwrap(), want.as_object().unwrap());
    assert_eq!(
        o.keys().collect::<Vec<_>>(),
        w.keys().collect::<Vec<_>>(),
        "{what}: keys"
    );
    for (k, wv) in w {
        match (o[k].as_f64(), wv.as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() < tol, "{what}.{k}: {a} vs {b}"),
            _ => assert_eq!(&o[k], wv, "{what}.{k}"),
        }
    }
}

#[test]
fn results_entries_equal_lm_eval_on_both_fixture_models() {
    let Some(data) = benchmarks() else { return };
    let data = data.to_str().unwrap();
    for model in ["llama", "qwen2"] {
        let r = results(
            model,
            "arc_easy,arc_challenge,hellaswag,wsc273",
            "20",
            &[],
            data,
        );
        for task in ["arc_easy", "arc_challenge", "hellaswag", "wsc273"] {
            let want = &fixture(model, &format!("{task}_0shot"))["results"][task];
            assert_entry(&r[task], want, &format!("{model}/{task}"));
        }
        // The padded path for every item, several items per forward: the same entries.
        let r = results(
            model,
            "arc_easy,wsc273",
            "20",
            &["--no-prefix-sharing", "--batch-size", "3"],
            data,
        );
        for task in ["arc_easy", "wsc273"] {
            let want = &fixture(model, &format!("{task}_0shot"))["results"][task];
            assert_entry(
                &r[task],
                want,
                &format!("{model}/{task} (batch 3, unshared)"),
            );
        }
        let r = results(model, "truthfulqa_mc1,truthfulqa_mc2", "16", &[], data);
        for task in ["truthfulqa_mc1", "truthfulqa_mc2"] {
            let want = &fixture(model, &format!("{task}_0shot"))["results"][task];
            assert_entry(&r[task], want, &format!("{model}/{task}"));
        }
        // MMLU: the fixture's first subject ran 10 items; subject entries carry lm-eval's alias.
        let r = results(model, "mmlu", "10", &[], data);
        let want = &fixture(model, "mmlu_0shot")["results"]["mmlu_abstract_algebra"];
        assert_entry(
            &r["mmlu_abstract_algebra"],
            want,
            &format!("{model}/mmlu_abstract_algebra"),
        );
        // GSM8K greedy generation, 32 new tokens as the fixture's run.
        let r = results(
            model,
            "gsm8k",
            "10",
            &["--num-fewshot", "0", "--max-gen-toks", "32"],
            data,
        );
        let want = &fixture(model, "gsm8k_0shot")["results"]["gsm8k"];
        assert_entry(&r["gsm8k"], want, &format!("{model}/gsm8k"));
    }
}

#[test]
fn bad_flags_exit_2_with_a_hint() {
    let dir = repo().join("crates/lambda-dpo-model/tests/fixtures/llama/model");
    let model = dir.to_str().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let data = empty.path().to_str().unwrap();
    for (extra, needle) in [
        (vec!["--tasks", "arc_hard"], "unknown task `arc_hard`"),
        (
            vec!["--tasks", "arc_easy", "--num-fewshot", "3"],
            "no few-shot split",
        ),
        (vec!["--tasks", "wsc273"], "no file for this task"),
    ] {
        let mut args = vec!["--model", model, "--data-dir", data];
        args.extend(extra);
        let o = bin(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(needle) && err.contains("hint:"), "{err}");
    }
    let o = bin(&[
        "--model",
        model,
        "--data-dir",
        data,
        "--tasks",
        "arc_easy",
        "--batch-size",
        "0",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--batch-size"), "{err}");
}
