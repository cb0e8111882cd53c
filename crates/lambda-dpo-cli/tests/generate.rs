//! End-to-end tests of `lambda-dpo generate` on the model crate's tiny fixtures: the binary's
//! output equals the library's generation, JSONL input keeps order and fields, bad lines fail
//! with file:line and exit code 2, and a half-half soup of an adapter with itself is the adapter.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device};
use lambda_dpo_model::{
    generate, row_seed, stop_token_ids, Adapter, GenerateOptions, Message, Model, Prompt, Tokenizer,
};
use serde_json::Value;

fn fixture(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lambda-dpo-model/tests/fixtures")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
        .arg("generate")
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

/// Runs the binary, expecting success, and parses its JSONL stdout.
fn lines(args: &[&str]) -> Vec<Value> {
    let o = bin(args);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const PROMPTS: &str = r#"{"id": "a", "prompt": "How do I boil an egg?"}
{"id": "b", "messages": [{"role": "user", "content": "Name a colour."}], "system": "Be brief."}

{"id": "c", "prompt": "Hi"}
{"id": "d", "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Why is the sky blue?"}]}
"#;

#[test]
fn prompt_end_to_end_equals_the_library() {
    let model_dir = fixture("qwen2/model");
    let adapter_dir = fixture("qwen2/adapter");
    let prompt = "How do I boil an egg?";
    let o = bin(&[
        "--model",
        &model_dir,
        "--adapter",
        &adapter_dir,
        "--prompt",
        prompt,
        "--max-new-tokens",
        "10",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("tokens/s"), "{}", stderr(&o));

    let m = Model::load(Path::new(&model_dir), DType::F32, &Device::Cpu).unwrap();
    let a = Adapter::load(Path::new(&adapter_dir), &m.config, &Device::Cpu).unwrap();
    let tok = Tokenizer::from_dir(Path::new(&model_dir)).unwrap();
    let ids = tok
        .encode_chat(&[Message::new("user", prompt)], true, &Default::default())
        .unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 10,
        stop_token_ids: stop_token_ids(Path::new(&model_dir), &m.config, &tok).unwrap(),
        ..Default::default()
    };
    let g = generate(&m, &tok, Some(&a), &[Prompt { ids: &ids, seed: 0 }], &opts).unwrap();
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        format!("{}\n", g[0].text)
    );

    // --raw: the text is tokenized as `tokenizer(prompt)`, no template.
    let o = bin(&[
        "--model",
        &model_dir,
        "--raw",
        "--prompt",
        prompt,
        "--max-new-tokens",
        "6",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ids = tok.encode(prompt, true).unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 6,
        ..opts
    };
    let g = generate(&m, &tok, None, &[Prompt { ids: &ids, seed: 0 }], &opts).unwrap();
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        format!("{}\n", g[0].text)
    );
}

#[test]
fn input_file_keeps_order_and_fields_and_batching_does_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", PROMPTS);
    let out = dir.path().join("out.jsonl");
    let out_s = out.to_string_lossy().into_owned();
    let model = fixture("llama/model");
    let common = [
        "--model",
        &model,
        "--input",
        &input,
        "--max-new-tokens",
        "8",
        "--temperature",
        "1.0",
        "--top-k",
        "50",
        "--top-p",
        "0.9",
        "--seed",
        "7",
    ];
    let mut args = common.to_vec();
    args.extend(["--output", &out_s, "--batch-size", "3"]);
    let o = bin(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "--output leaves stdout empty");
    let written: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = written.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    for l in &written {
        assert!(l["completion"].is_string(), "{l}");
        let n = l["num_tokens"].as_u64().unwrap();
        assert!((1..=8).contains(&n), "{l}");
        let reason = l["finish_reason"].as_str().unwrap();
        assert!(
            ["stop_token", "stop_string", "length"].contains(&reason),
            "{l}"
        );
        assert_eq!(reason == "length", n == 8, "{l}");
    }
    assert_eq!(written[1]["system"], "Be brief.");
    // Same seed, one prompt per batch: identical lines.
    let mut args = common.to_vec();
    args.extend(["--batch-size", "1"]);
    assert_eq!(lines(&args), written);
    // Another seed changes the samples.
    let mut args = common.to_vec();
    let last = args.len() - 1;
    args[last] = "8";
    assert_ne!(lines(&args), written);
}

#[test]
fn bad_input_lines_fail_with_file_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("qwen2/model");
    let cases = [
        (
            r#"{"prompt": 5}"#,
            "field `prompt`: expected a string, found a number",
        ),
        (r#"{"text": "x"}"#, "field `prompt`: missing"),
        (
            r#"{"prompt": "a", "messages": []}"#,
            "both `prompt` and `messages`",
        ),
        (r#"{"messages": [{"content": "x"}]}"#, "field `messages`"),
        (r#"{"prompt": "a", "system": 3}"#, "field `system`"),
        (r#"[1, 2]"#, "expected a JSON object, found an array"),
        (r#"{"prompt": "#, "invalid JSON"),
    ];
    for (line, expect) in cases {
        let input = write(
            dir.path(),
            "in.jsonl",
            &format!("{{\"prompt\": \"fine\"}}\n{line}\n"),
        );
        let o = bin(&["--model", &model, "--input", &input]);
        assert_eq!(o.status.code(), Some(2), "{line}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(&format!("{input}:2")), "{line}: {e}");
        assert!(e.contains(expect), "{line}: {e}");
    }
    // --raw has no template for conversations.
    let input = write(
        dir.path(),
        "in.jsonl",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n",
    );
    let o = bin(&["--model", &model, "--input", &input, "--raw"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(":1: field `messages`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn adapter_and_lambda_flags_are_checked() {
    let model = fixture("qwen2/model");
    let adapter = fixture("qwen2/adapter");
    let run = |extra: &[&str]| {
        let mut a = vec!["--model", model.as_str(), "--prompt", "hi"];
        a.extend_from_slice(extra);
        bin(&a)
    };
    let o = run(&["--adapter", &adapter, "--lambda", "0.5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not λ-conditioned"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("hint:"), "{}", stderr(&o));
    let o = run(&["--adapter", &adapter, "--adapter", &adapter]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--lambda 0.500,0.500"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "--adapter",
        &adapter,
        "--adapter",
        &adapter,
        "--lambda",
        "1,2,3",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("3 weights for 2 adapters"),
        "{}",
        stderr(&o)
    );
    let o = run(&["--lambda", "1"]);
    assert_eq!(o.status.code(), Some(2));
    let bad_flags: [&[&str]; 5] = [
        &["--raw", "--system", "x"],
        &["--temperature=-1", "--seed", "0"],
        &["--top-p", "0", "--seed", "0"],
        &["--top-k", "0", "--seed", "0"],
        &["--stop", "", "--seed", "0"],
    ];
    for bad in bad_flags {
        let o = run(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(bad[0].split('=').next().unwrap()),
            "{bad:?}: {}",
            stderr(&o)
        );
    }
    // clap: --prompt or --input is required.
    let o = bin(&["--model", &model]);
    assert!(!o.status.success());
}

#[test]
fn half_half_soup_of_an_adapter_with_itself_is_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", PROMPTS);
    for name in ["llama", "qwen2"] {
        let model = fixture(&format!("{name}/model"));
        let adapter = fixture(&format!("{name}/adapter"));
        let base = [
            "--model",
            &model,
            "--input",
            &input,
            "--max-new-tokens",
            "10",
        ];
        let mut single = base.to_vec();
        single.extend(["--adapter", &adapter]);
        let mut souped = base.to_vec();
        souped.extend([
            "--adapter",
            &adapter,
            "--adapter",
            &adapter,
            "--lambda",
            "0.5,0.5",
        ]);
        let a = lines(&single);
        assert_eq!(a, lines(&souped), "{name}");
        // And the adapter does change the output (the comparison is not vacuous).
        assert_ne!(a, lines(&base), "{name}");
    }
}

#[test]
fn stop_strings_cut_the_completion() {
    let model = fixture("llama/model");
    let args = [
        "--model",
        model.as_str(),
        "--prompt",
        "The capital of France is",
        "--max-new-tokens",
        "12",
    ];
    let free = bin(&args);
    assert!(free.status.success(), "{}", stderr(&free));
    let text = String::from_utf8(free.stdout).unwrap();
    let text = text.strip_suffix('\n').unwrap();
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() >= 8, "{text:?}");
    let stop: String = chars[4..7].iter().collect();
    let mut with_stop = args.to_vec();
    with_stop.extend(["--stop", &stop]);
    let cut = bin(&with_stop);
    assert!(cut.status.success(), "{}", stderr(&cut));
    let at = text.find(&stop).unwrap();
    assert_eq!(
        String::from_utf8(cut.stdout).unwrap(),
        format!("{}\n", &text[..at])
    );
    // Per-prompt seeds are what the library derives.
    assert_ne!(row_seed(0, 0), row_seed(0, 1));
}
