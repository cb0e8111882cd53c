//! `--lambda` at inference, end to end: a prompt-conditioned adapter gets λ rendered into the
//! system message exactly as documented; an SVD-LoRA adapter runs at λ and `export --lambda`
//! writes a model that computes the same thing; a soup exports like its parts; and every
//! misuse is refused with exit code 2 and a hint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};
use lambda_dpo::train::conditioning::ConditioningInfo;
use lambda_dpo_model::{Adapter, LoraConfig, LoraRun, Model, ScoreOptions, ScoreRequest};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lambda-dpo-model/tests/fixtures")
        .join(rel)
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn dims() -> Vec<String> {
    vec!["helpfulness".into(), "honesty".into()]
}

/// The qwen2 fixture adapter copied into `dir` with a prompt-conditioning record.
fn prompt_adapter(dir: &Path) -> PathBuf {
    let d = dir.join("prompt-adapter");
    std::fs::create_dir_all(&d).unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(fixture("qwen2/adapter").join(f), d.join(f)).unwrap();
    }
    ConditioningInfo::new(&dims()).save(&d).unwrap();
    d
}

/// A trained-looking SVD-LoRA adapter (non-zero B, σ, s) for the qwen2 fixture, saved in `dir`.
fn svd_adapter(dir: &Path, m: &Model) -> PathBuf {
    let cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        lambda_dims: 2,
        ..Default::default()
    };
    let a = Adapter::new(&m.config, cfg, 5, &Device::Cpu).unwrap();
    for (j, (k, v)) in a.named_vars().into_iter().enumerate() {
        let (offset, amplitude) = if k.contains("lora_B") {
            (0.0, 0.1)
        } else if k.contains("lora_S") {
            (1.5, 1.0)
        } else {
            continue;
        };
        let shape = v.as_tensor().shape().clone();
        let vals: Vec<f32> = (0..shape.elem_count())
            .map(|i| offset + amplitude * ((i * 5 + j * 11) as f32).sin())
            .collect();
        v.set(&Tensor::from_vec(vals, shape, &Device::Cpu).unwrap())
            .unwrap();
    }
    let d = dir.join("svd-adapter");
    a.save(&d, "qwen2-fixture").unwrap();
    ConditioningInfo::svd_lora(&dims()).save(&d).unwrap();
    d
}

/// Summed log-prob of a fixed sequence's last tokens.
fn score(m: &Model, a: Option<&Adapter>) -> f32 {
    let ids: Vec<u32> = vec![5, 17, 300, 42, 99, 1, 64, 8, 9];
    let reqs = [ScoreRequest {
        ids: &ids,
        start: 3,
    }];
    let lora = a.map(|adapter| LoraRun {
        adapter,
        dropout_seed: None,
    });
    m.score(&reqs, lora, ScoreOptions::default())
        .unwrap()
        .sums
        .to_vec1::<f32>()
        .unwrap()[0]
}

fn generate(args: &[&str]) -> String {
    let mut all = vec![
        "generate",
        "--max-new-tokens",
        "8",
        "--prompt",
        "Name a colour.",
    ];
    all.extend_from_slice(args);
    let o = bin(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn prompt_conditioned_adapter_gets_the_documented_system_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("qwen2/model");
    let adapter = prompt_adapter(dir.path());
    // λ is rendered with two decimals, in the record's dimension order.
    let with_lambda = generate(&[
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--lambda",
        "0.3,0.7",
    ]);
    let by_hand = generate(&[
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--system",
        "Preference weights: helpfulness=0.30, honesty=0.70.",
    ]);
    assert_eq!(with_lambda, by_hand);
    let other = generate(&[
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--lambda",
        "1,0",
    ]);
    let by_hand_other = generate(&[
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--system",
        "Preference weights: helpfulness=1.00, honesty=0.00.",
    ]);
    assert_eq!(other, by_hand_other);

    // Off the simplex, or the wrong number of weights: exit 2, naming the dimensions.
    for bad in ["0.5,0.6", "1"] {
        let o = bin(&[
            "generate",
            "--model",
            s(&model),
            "--adapter",
            s(&adapter),
            "--lambda",
            bad,
            "--prompt",
            "x",
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("--lambda"), "{}", stderr(&o));
    }
    // `logprobs` does not render λ for it: refused, with the line to write in the hint.
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"input_ids\": [5, 17, 300], \"completion_start\": 1}\n",
    )
    .unwrap();
    let o = bin(&[
        "logprobs",
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--lambda",
        "0.3,0.7",
        "--input",
        s(&input),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Preference weights: helpfulness=0.30, honesty=0.70."),
        "{}",
        stderr(&o)
    );
    // Exporting it at a λ is refused: λ lives in the prompt, not the weights.
    let out = dir.path().join("merged");
    let o = bin(&[
        "export",
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--lambda",
        "0.5,0.5",
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("prompt-conditioned") && stderr(&o).contains("hint:"));
    // Without --lambda it merges, and the rendering travels with the model.
    let o = bin(&[
        "export",
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("lambda_conditioning.json").is_file());
}

#[test]
fn svd_lora_export_at_lambda_computes_what_the_adapter_computes_at_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = fixture("qwen2/model");
    let m = Model::load(&model_dir, DType::F32, &Device::Cpu).unwrap();
    let adapter_dir = svd_adapter(dir.path(), &m);
    let adapter = Adapter::load(&adapter_dir, &m.config, &Device::Cpu).unwrap();
    for (i, lambda) in [[0.25, 0.75], [1.0, 0.0]].iter().enumerate() {
        let out = dir.path().join(format!("merged-{i}"));
        let flag = format!("{},{}", lambda[0], lambda[1]);
        let o = bin(&[
            "export",
            "--model",
            s(&model_dir),
            "--adapter",
            s(&adapter_dir),
            "--lambda",
            &flag,
            "--out",
            s(&out),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let merged = Model::load(&out, DType::F32, &Device::Cpu).unwrap();
        let want = score(&m, Some(&adapter.with_lambda(lambda).unwrap()));
        let got = score(&merged, None);
        assert!((want - got).abs() < 1e-3, "λ {lambda:?}: {want} vs {got}");
        // `generate --lambda` with the adapter agrees with the merged model (greedy).
        let via_adapter = generate(&[
            "--model",
            s(&model_dir),
            "--adapter",
            s(&adapter_dir),
            "--lambda",
            &flag,
        ]);
        let via_merged = generate(&["--model", s(&out)]);
        assert_eq!(via_adapter, via_merged, "λ {lambda:?}");
    }
    // `logprobs --lambda` scores under the adapter at λ, as the merged model does.
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"input_ids\": [5, 17, 300, 42, 99, 1, 64, 8, 9], \"completion_start\": 3}\n",
    )
    .unwrap();
    let sum = |args: &[&str]| -> f64 {
        let mut all = vec!["logprobs", "--input", s(&input)];
        all.extend_from_slice(args);
        let o = bin(&all);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8(o.stdout).unwrap().trim()).unwrap();
        v["sum"].as_f64().unwrap()
    };
    let via_adapter = sum(&[
        "--model",
        s(&model_dir),
        "--adapter",
        s(&adapter_dir),
        "--lambda",
        "0.25,0.75",
    ]);
    let via_merged = sum(&["--model", s(&dir.path().join("merged-0"))]);
    assert!(
        (via_adapter - via_merged).abs() < 1e-3,
        "{via_adapter} vs {via_merged}"
    );

    // λ changes the merged model.
    let a = Model::load(&dir.path().join("merged-0"), DType::F32, &Device::Cpu).unwrap();
    let b = Model::load(&dir.path().join("merged-1"), DType::F32, &Device::Cpu).unwrap();
    assert!((score(&a, None) - score(&b, None)).abs() > 1e-3);

    // An SVD-LoRA adapter without --lambda, and a plain adapter with one: exit 2 with a hint.
    let o = bin(&[
        "generate",
        "--model",
        s(&model_dir),
        "--adapter",
        s(&adapter_dir),
        "--prompt",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("SVD-LoRA") && stderr(&o).contains("hint:"));
    let o = bin(&[
        "generate",
        "--model",
        s(&model_dir),
        "--adapter",
        s(&fixture("qwen2/adapter")),
        "--lambda",
        "0.5,0.5",
        "--prompt",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not λ-conditioned") && stderr(&o).contains("hint:"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn score_runs_an_svd_lora_policy_at_each_lists_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = fixture("qwen2/model");
    let m = Model::load(&model_dir, DType::F32, &Device::Cpu).unwrap();
    let adapter_dir = svd_adapter(dir.path(), &m);
    let data = dir.path().join("lists.jsonl");
    let r = |text: &str, h: u32, o: u32| serde_json::json!({"text": text, "scores": {"helpfulness": h, "honesty": o}});
    let line = serde_json::json!({
        "prompt": "Name a fruit.",
        "responses": [r("apple", 5, 1), r("pear pear", 1, 5), r("plum", 3, 3)],
    });
    std::fs::write(&data, format!("{line}\n")).unwrap();
    let policy = |lambda: &str| -> Vec<f64> {
        let o = bin(&[
            "score",
            "--model",
            s(&model_dir),
            "--adapter",
            s(&adapter_dir),
            "--data",
            s(&data),
            "--lambda",
            lambda,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8(o.stdout).unwrap().trim()).unwrap();
        v["policy_logps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (a, b) = (policy("1,0"), policy("0,1"));
    assert_eq!(a.len(), 3);
    assert!(
        a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3),
        "λ does not reach the SVD-LoRA policy: {a:?} vs {b:?}"
    );
}

#[test]
fn a_soup_exports_like_the_weighted_sum_of_its_parts() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = fixture("qwen2/model");
    let adapter_dir = fixture("qwen2/adapter");
    let (one, soup) = (dir.path().join("one"), dir.path().join("soup"));
    let o = bin(&[
        "export",
        "--model",
        s(&model_dir),
        "--adapter",
        s(&adapter_dir),
        "--out",
        s(&one),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // ½ΔW + ½ΔW = ΔW.
    let o = bin(&[
        "export",
        "--model",
        s(&model_dir),
        "--adapter",
        s(&adapter_dir),
        "--adapter",
        s(&adapter_dir),
        "--lambda",
        "0.5,0.5",
        "--out",
        s(&soup),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("soup of 2 adapters"), "{}", stderr(&o));
    let a = Model::load(&one, DType::F32, &Device::Cpu).unwrap();
    let b = Model::load(&soup, DType::F32, &Device::Cpu).unwrap();
    assert!((score(&a, None) - score(&b, None)).abs() < 1e-4);
}
