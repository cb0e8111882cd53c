//! `lambda-dpo data inspect|convert` end to end: what the user sees on stderr/stdout and the
//! exit codes (0; 2 for bad input).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("lambda-dpo runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../lambda-dpo-model/tests/fixtures")
        .join(name)
        .join("model")
}

/// `../shared/data/<rel>`: required under CI, skipped with a notice elsewhere.
fn shared(rel: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if !root.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing under CI",
            root.display()
        );
        eprintln!("notice: {} not found; skipping", root.display());
        return None;
    }
    Some(root.join(rel))
}

const GOOD: &str = r#"{"prompt": "Hi", "responses": [{"text": "Hello!", "scores": {"helpfulness": 5, "honesty": 4}}, {"text": "Go away.", "scores": {"helpfulness": 1, "honesty": "N/A"}}]}"#;

fn temp(name: &str, body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, body).unwrap();
    (dir, p)
}

#[test]
fn inspect_prints_a_report_on_stderr_and_json_on_stdout() {
    let (_d, p) = temp("d.jsonl", &format!("{GOOD}\n{GOOD}\n"));
    let o = run(&["data", "inspect", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let e = stderr(&o);
    assert!(
        e.contains("format      listwise (preference, JSON Lines)"),
        "{e}"
    );
    assert!(e.contains("N per list  2: 2"), "{e}");
    assert!(e.contains("honesty      2 rated, 2 missing"), "{e}");

    let o = run(&["data", "inspect", p.to_str().unwrap(), "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "listwise");
    assert_eq!(v["items"], 2);
    assert_eq!(v["dimensions"][1]["missing"], 2);
}

#[test]
fn inspect_with_a_model_measures_tokens() {
    let (_d, p) = temp("d.jsonl", &format!("{GOOD}\n"));
    let model = fixture_model("llama");
    let o = run(&[
        "data",
        "inspect",
        p.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--max-length",
        "16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("(chat template)"), "{e}");
    assert!(e.contains("prompt+longest"), "{e}");
    assert!(e.contains("truncated at max_length 16: 1 of 1 list"), "{e}");
}

#[test]
fn bad_input_exits_2_with_file_line_field_and_hint() {
    let (_d, p) = temp(
        "d.jsonl",
        &format!(
            "{GOOD}\n{}\n",
            r#"{"prompt": "p", "responses": [{"text": "a", "scores": {"helpfulness": "seven"}}, {"text": "b"}]}"#
        ),
    );
    let o = run(&["data", "inspect", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "error: {}:2: field `responses[0].scores.helpfulness`: expected a rating: a number, or N/A, empty or null when missing, found the string \"seven\"",
            p.display()
        )),
        "{e}"
    );
    assert!(e.contains("hint: ratings are numbers"), "{e}");

    // --skip-invalid: counted and summarised, exit 0.
    let o = run(&["data", "inspect", p.to_str().unwrap(), "--skip-invalid"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipped     1 invalid (rating 1)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_and_empty_files_exit_2() {
    let o = run(&["data", "inspect", "/nonexistent/file.jsonl"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("expected a readable file"),
        "{}",
        stderr(&o)
    );
    let (_d, p) = temp("e.jsonl", "");
    let o = run(&["data", "inspect", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("expected at least one record, found an empty file"));
}

#[test]
fn convert_writes_pairs_and_refuses_a_negative_lambda() {
    let (d, p) = temp("d.jsonl", &format!("{GOOD}\n"));
    let out = d.path().join("pairs.jsonl");
    let o = run(&[
        "data",
        "convert",
        p.to_str().unwrap(),
        "--to",
        "pairwise",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 lines written"), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&out).unwrap().trim()).unwrap();
    assert_eq!(
        (v["chosen"].as_str(), v["rejected"].as_str()),
        (Some("Hello!"), Some("Go away."))
    );

    let o = run(&[
        "data",
        "convert",
        p.to_str().unwrap(),
        "--to",
        "pairwise",
        out.to_str().unwrap(),
        "--lambda",
        "helpfulness=1,honesty=-0.5",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("error: --lambda: field `lambda.honesty`: expected a weight ≥ 0 (λ lies on the simplex), found -0.5"),
        "{}",
        stderr(&o)
    );

    // To stdout with `-`.
    let o = run(&[
        "data",
        "convert",
        p.to_str().unwrap(),
        "--to",
        "listwise",
        "-",
    ]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["responses"][1]["scores"]["honesty"],
        serde_json::Value::Null
    );
}

#[test]
fn unknown_format_name_is_a_usage_error() {
    let (_d, p) = temp("d.jsonl", GOOD);
    let o = run(&["data", "inspect", p.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("known formats: listwise, ultrafeedback"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn inspect_the_real_samples() {
    let (Some(uf), Some(bin), Some(alpaca)) = (
        shared("ultrafeedback/uf_raw_evol_instruct_row0_ratings_only.json"),
        shared("ultrafeedback/uf_binarized_trl_eval200.jsonl"),
        shared("sft/llamafactory_alpaca_en_demo_first200.json"),
    ) else {
        return;
    };
    let o = run(&["data", "inspect", uf.to_str().unwrap()]);
    assert!(o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("format      ultrafeedback (preference, JSON document)"),
        "{e}"
    );
    assert!(
        e.contains("helpfulness            4 rated, 0 missing  mean 3.00  [1:1 2:1 4:1 5:1]"),
        "{e}"
    );

    let o = run(&["data", "inspect", bin.to_str().unwrap()]);
    let e = stderr(&o);
    assert!(e.contains("records     200 read, 200 lists"), "{e}");
    assert!(
        e.contains("ties: 25 lists all tied (uniform target)"),
        "{e}"
    );
    assert!(e.contains("1 list left with N < 2"), "{e}");

    let model = fixture_model("qwen2");
    let o = run(&[
        "data",
        "inspect",
        alpaca.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("format      alpaca (sft, JSON array)"), "{e}");
    assert!(
        e.contains("assistant turns per conversation  1: 200"),
        "{e}"
    );
    assert!(e.contains("conversation"), "{e}");
}
