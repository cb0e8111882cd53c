//! λ-conditioning by prompt end to end on the tiny Llama fixture: two dimensions that want
//! opposite responses; trained with λ in the system message, the policy's preference between
//! the two responses follows the λ it is shown. Also: the config refusals and the product's
//! `lambda_conditioning.json`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use lambda_dpo::train::conditioning::{Conditioner, ConditioningInfo};
use lambda_dpo::train::{train, RunOptions, TrainConfig};
use lambda_dpo_model::{Adapter, LoraRun, Message, Model, ScoreOptions, ScoreRequest, Tokenizer};

fn fixture_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lambda-dpo-model/tests/fixtures/llama/model")
}

const A: &str = "apple apple apple";
const B: &str = "pear pear pear";

/// `helpfulness` wants A, `honesty` wants B; two neutral responses rate 3 on both.
fn write_data(path: &Path, n: usize) {
    let mut out = String::new();
    for i in 0..n {
        let r = |text: &str, h: u32, o: u32| serde_json::json!({"text": text, "scores": {"helpfulness": h, "honesty": o}});
        let line = serde_json::json!({
            "prompt": format!("Name a fruit, number {i}."),
            "responses": [r(A, 5, 1), r(B, 1, 5), r("plum", 3, 3), r("fig fig", 3, 3)],
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

fn config(dir: &Path, extra: &str) -> TrainConfig {
    let text = format!(
        r#"
[model]
path = "{model}"
[data]
train = "train.jsonl"
eval_fraction = 0.0
[lora]
r = 8
alpha = 16.0
[train]
output_dir = "run"
learning_rate = 0.01
max_steps = 60
grad_accum = 2
warmup_ratio = 0.0
lr_schedule = "constant"
seed = 3
[loss]
type = "lambda-dpo"
beta = 0.5
{extra}
"#,
        model = fixture_model().display()
    );
    let p = dir.join("run.toml");
    std::fs::write(&p, text).unwrap();
    TrainConfig::load(&p, &[]).unwrap()
}

/// log π(A) − log π(B) after `prompt` (the end-of-turn token appended to each response), with
/// `adapter` (`None`: the reference, adapter disabled).
fn a_minus_b(model: &Model, adapter: Option<&Adapter>, tok: &Tokenizer, prompt: &[u32]) -> f64 {
    let eot = tok.token_to_id("<|eot_id|>").unwrap();
    let seq = |text: &str| {
        let mut ids = prompt.to_vec();
        ids.extend(tok.encode(text, false).unwrap());
        ids.push(eot);
        ids
    };
    let (a, b) = (seq(A), seq(B));
    let reqs = [
        ScoreRequest {
            ids: &a,
            start: prompt.len(),
        },
        ScoreRequest {
            ids: &b,
            start: prompt.len(),
        },
    ];
    let run = adapter.map(|adapter| LoraRun {
        adapter,
        dropout_seed: None,
    });
    let sums: Vec<f32> = model
        .score(&reqs, run, ScoreOptions::default())
        .unwrap()
        .sums
        .to_vec1()
        .unwrap();
    f64::from(sums[0] - sums[1])
}

/// log π(A) − log π(B) for one prompt conditioned on λ.
fn preference_for_a(model: &Model, adapter: &Adapter, tok: &Tokenizer, lambda: &[f64]) -> f64 {
    let c = Conditioner {
        tokenizer: tok,
        dimensions: vec!["helpfulness".into(), "honesty".into()],
        kwargs: Default::default(),
        max_length: 256,
    };
    let msgs = vec![Message::new("user", "Name a fruit, number 3.")];
    let prompt = c.prompt_ids("test", Some(&msgs), lambda, 16).unwrap();
    a_minus_b(model, Some(adapter), tok, &prompt)
}

#[test]
fn conditioned_policy_follows_the_lambda_it_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    write_data(&dir.path().join("train.jsonl"), 8);
    let cfg = config(
        dir.path(),
        "[lambda]\nconditioning = \"prompt\"\nkind = \"one-hot-cycle\"\ndim = 2",
    );
    let summary = train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(cfg.train.output_dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    // Fresh adapter: policy = reference, whatever the prompt says ⇒ ln N.
    assert!((first["loss"].as_f64().unwrap() - 4f64.ln()).abs() < 1e-12);
    let product = summary.adapter_dir.unwrap();
    let info = ConditioningInfo::load(&product).unwrap().unwrap();
    assert_eq!(info.dimensions, ["helpfulness", "honesty"]);

    let model = Model::load(&fixture_model(), DType::F32, &Device::Cpu).unwrap();
    let tok = Tokenizer::from_dir(&fixture_model()).unwrap();
    let adapter = Adapter::load(&product, &model.config, &Device::Cpu).unwrap();
    let for_help = preference_for_a(&model, &adapter, &tok, &[1.0, 0.0]);
    let for_honesty = preference_for_a(&model, &adapter, &tok, &[0.0, 1.0]);
    eprintln!("A−B: helpfulness {for_help:.3}, honesty {for_honesty:.3}");
    assert!(
        for_help > 0.0 && for_honesty < 0.0,
        "λ = helpfulness should prefer A (got {for_help:.3}), λ = honesty B (got {for_honesty:.3})"
    );
}

#[test]
fn conditioning_refuses_a_cached_reference_and_pre_tokenized_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        format!(
            "[model]\npath = \"{}\"\n[data]\ntrain = \"train.jsonl\"\n[reference]\nmode = \"cache\"\n[lambda]\nconditioning = \"prompt\"\n",
            fixture_model().display()
        ),
    )
    .unwrap();
    let e = TrainConfig::load(&p, &[]).unwrap_err().to_string();
    assert!(e.contains("reference.mode") && e.contains("hint:"), "{e}");

    std::fs::write(
        dir.path().join("ids.jsonl"),
        r#"{"prompt_ids": [5, 6, 7], "responses": [{"ids": [8], "scores": {"a": 1}}, {"ids": [9], "scores": {"a": 2}}]}
"#,
    )
    .unwrap();
    let mut cfg = config(dir.path(), "[lambda]\nconditioning = \"prompt\"");
    cfg.data.train = dir.path().join("ids.jsonl").into();
    cfg.train.max_steps = Some(1);
    cfg.train.output_dir = dir.path().join("ids-run");
    let e = train(&cfg, &RunOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ids.jsonl:1") && e.contains("lambda.conditioning") && e.contains("hint:"),
        "{e}"
    );
}

/// log π(A) − log π(B) for the plain prompt, with an SVD-LoRA adapter running at `lambda`
/// (`None`: the reference, adapter disabled).
fn svd_preference_for_a(
    model: &Model,
    adapter: &Adapter,
    tok: &Tokenizer,
    lambda: Option<&[f64]>,
) -> f64 {
    let msgs = vec![Message::new("user", "Name a fruit, number 3.")];
    let prompt = tok.encode_chat(&msgs, true, &Default::default()).unwrap();
    let at = lambda.map(|l| adapter.with_lambda(l).unwrap());
    a_minus_b(model, at.as_ref(), tok, &prompt)
}

#[test]
fn svd_lora_policy_follows_the_lambda_it_runs_at_and_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    write_data(&dir.path().join("train.jsonl"), 8);
    let lambda = "[lambda]\nconditioning = \"svd-lora\"\nkind = \"one-hot-cycle\"\ndim = 2";
    let cfg = config(dir.path(), lambda);
    let summary = train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    let product = summary.adapter_dir.unwrap();
    let info = ConditioningInfo::load(&product).unwrap().unwrap();
    assert_eq!(
        info.conditioning,
        lambda_dpo::train::conditioning::Conditioning::SvdLora
    );
    assert_eq!(info.dimensions, ["helpfulness", "honesty"]);

    let model = Model::load(&fixture_model(), DType::F32, &Device::Cpu).unwrap();
    let tok = Tokenizer::from_dir(&fixture_model()).unwrap();
    let adapter = Adapter::load(&product, &model.config, &Device::Cpu).unwrap();
    assert_eq!(adapter.config.lambda_dims, 2);
    // The objective is relative to the reference (s_i = β(ℓ_θ − ℓ_ref)), so what λ must steer
    // is the policy's preference *relative to the reference's*: the prompt here carries no λ,
    // and the tiny base model's own A−B is far from 0.
    let base = svd_preference_for_a(&model, &adapter, &tok, None);
    let for_help = svd_preference_for_a(&model, &adapter, &tok, Some(&[1.0, 0.0])) - base;
    let for_honesty = svd_preference_for_a(&model, &adapter, &tok, Some(&[0.0, 1.0])) - base;
    eprintln!("SVD-LoRA A−B minus the reference's ({base:.3}): helpfulness {for_help:.3}, honesty {for_honesty:.3}");
    assert!(
        for_help > 1.0 && for_honesty < -1.0,
        "λ = helpfulness should move towards A (got {for_help:.3}), λ = honesty towards B (got {for_honesty:.3})"
    );

    // Kill after 3 of 6 steps and resume: σ, s and their optimizer moments are checkpointed.
    let run = |name: &str, opts: RunOptions| {
        let mut c = config(dir.path(), lambda);
        c.train.max_steps = Some(6);
        c.train.save_every = Some(2);
        c.train.output_dir = dir.path().join(name);
        train(&c, &opts, &mut |_| {}).unwrap()
    };
    let whole = run("whole", RunOptions::default());
    run(
        "part",
        RunOptions {
            resume: false,
            stop_after: Some(3),
        },
    );
    let resumed = run(
        "part",
        RunOptions {
            resume: true,
            stop_after: None,
        },
    );
    let bytes = |s: &lambda_dpo::train::TrainSummary| {
        std::fs::read(
            s.adapter_dir
                .as_ref()
                .unwrap()
                .join("adapter_model.safetensors"),
        )
        .unwrap()
    };
    assert!(
        bytes(&whole) == bytes(&resumed),
        "resumed SVD-LoRA adapter differs"
    );
}

#[test]
fn svd_lora_is_refused_where_it_has_no_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        format!(
            "[model]\npath = \"{}\"\n[data]\ntrain = \"train.jsonl\"\n[train]\nfull_finetune = true\n[reference]\nmode = \"cache\"\n[lambda]\nconditioning = \"svd-lora\"\n",
            fixture_model().display()
        ),
    )
    .unwrap();
    let e = TrainConfig::load(&p, &[]).unwrap_err().to_string();
    assert!(
        e.contains("lambda.conditioning") && e.contains("hint:"),
        "{e}"
    );
}
