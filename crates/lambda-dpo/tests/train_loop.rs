//! The training loop end to end on the tiny Qwen2 fixture and a synthetic listwise file:
//! first-step loss ln N (λ-DPO) and ln 2 (DPO), learning in 50 steps (training loss down,
//! held-out top-1 up from the step-0 baseline), and kill-and-resume giving a bit-identical
//! adapter.

mod common;

use common::*;

use std::path::{Path, PathBuf};

use lambda_dpo::train::{train, RunOptions, TrainConfig};

fn fixture_model() -> PathBuf {
    model_dir("qwen2")
}

/// Lists of 4 responses where quality is visible in the tokens: the better a response, the
/// more copies of token 17 it has; two dimensions agree on the order.
fn write_data(path: &Path, n: usize, seed: u64) {
    let mut lcg = Lcg(seed);
    let mut rnd = |m: u64| lcg.below(m);
    let mut out = String::new();
    for _ in 0..n {
        let prompt: Vec<u64> = (0..6).map(|_| 30 + rnd(600)).collect();
        let mut responses = Vec::new();
        for q in 0..4u64 {
            let mut ids: Vec<u64> = (0..5).map(|_| 30 + rnd(600)).collect();
            for _ in 0..q {
                let at = rnd(ids.len() as u64 + 1) as usize;
                ids.insert(at, 17);
            }
            responses.push(
                serde_json::json!({"ids": ids, "scores": {"helpfulness": q + 1, "honesty": q + 2}}),
            );
        }
        // Shuffle the order so position carries no signal.
        for i in (1..4).rev() {
            let j = rnd(i as u64 + 1) as usize;
            responses.swap(i, j);
        }
        out.push_str(
            &serde_json::json!({"prompt_ids": prompt, "responses": responses}).to_string(),
        );
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

fn config(dir: &Path, out: &str, extra: &str) -> TrainConfig {
    let text = format!(
        r#"
[model]
path = "{model}"
[data]
train = "train.jsonl"
eval = "eval.jsonl"
[lora]
r = 4
alpha = 8.0
[train]
output_dir = "{out}"
learning_rate = 0.01
max_steps = 40
grad_accum = 2
warmup_ratio = 0.0
lr_schedule = "constant"
seed = 7
{extra}
"#,
        model = fixture_model().display()
    );
    let cfg_path = dir.join(format!("{out}.toml"));
    std::fs::write(&cfg_path, text).unwrap();
    TrainConfig::load(&cfg_path, &[]).unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_data(&dir.path().join("train.jsonl"), 16, 1);
    write_data(&dir.path().join("eval.jsonl"), 8, 2);
    dir
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn first_step_loss_is_ln_n_then_training_learns() {
    let dir = setup();
    let mut cfg = config(dir.path(), "run", "eval_every = 50");
    cfg.train.max_steps = Some(50);
    let summary = train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(summary.steps, 50);
    let m = metrics(&cfg.train.output_dir);
    let steps: Vec<&serde_json::Value> = m.iter().filter(|r| r.get("loss").is_some()).collect();
    assert_eq!(steps.len(), 50);
    let first = steps[0]["loss"].as_f64().unwrap();
    assert!(
        (first - 4f64.ln()).abs() < 1e-12,
        "first-step loss {first} ≠ ln 4"
    );
    let mean_loss = |rs: &[&serde_json::Value]| {
        rs.iter().map(|r| r["loss"].as_f64().unwrap()).sum::<f64>() / rs.len() as f64
    };
    let (early, late) = (mean_loss(&steps[..5]), mean_loss(&steps[45..]));
    // Held out: a baseline before any update (step 0) and the end (step 50).
    let evals: Vec<&serde_json::Value> =
        m.iter().filter(|r| r.get("eval/loss").is_some()).collect();
    let at = |step: u64| {
        evals
            .iter()
            .find(|r| r["step"] == step)
            .unwrap_or_else(|| panic!("no eval at step {step}: {evals:?}"))
    };
    let (top1_0, top1_50) = (
        at(0)["eval/listwise/top1"].as_f64().unwrap(),
        at(50)["eval/listwise/top1"].as_f64().unwrap(),
    );
    let (eval_loss_0, eval_loss_50) = (
        at(0)["eval/loss"].as_f64().unwrap(),
        at(50)["eval/loss"].as_f64().unwrap(),
    );
    eprintln!(
        "training loss {early:.4} → {late:.4}; held-out loss {eval_loss_0:.4} → {eval_loss_50:.4}, top-1 {top1_0:.3} → {top1_50:.3}"
    );
    assert!(
        late < early - 0.05,
        "training loss did not go down: {early} → {late}"
    );
    // Before any update every implicit reward is 0: top-1 is chance (1/4, ties counted 1/k)
    // and the held-out loss is ln 4.
    assert!((top1_0 - 0.25).abs() < 1e-12, "step-0 top-1 {top1_0}");
    assert!((eval_loss_0 - 4f64.ln()).abs() < 1e-12, "{eval_loss_0}");
    assert!(
        top1_50 > top1_0 + 0.25,
        "held-out top-1 did not rise: {top1_0} → {top1_50}"
    );
    assert!(
        eval_loss_50 < eval_loss_0,
        "held-out loss did not fall: {eval_loss_0} → {eval_loss_50}"
    );
    assert_eq!(summary.eval_metrics.unwrap()["step"], 50);
    // TRL's metric names are there, and the per-dimension listwise ones.
    for key in [
        "rewards/chosen",
        "rewards/margins",
        "grad_norm",
        "learning_rate",
        "listwise/kendall/helpfulness",
        "lambda/honesty",
        "tokens_per_second",
        "peak_rss_mb",
    ] {
        assert!(steps[3].get(key).is_some(), "missing metric {key}");
    }
    assert!(summary
        .adapter_dir
        .unwrap()
        .join("adapter_model.safetensors")
        .is_file());
    assert!(cfg.train.output_dir.join("config.resolved.toml").is_file());
}

#[test]
fn dpo_first_step_is_ln_2() {
    let dir = setup();
    let mut cfg = config(dir.path(), "dpo", "");
    cfg.loss.loss = lambda_dpo_math::Loss::dpo();
    cfg.train.max_steps = Some(1);
    train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    let first = metrics(&cfg.train.output_dir)[0]["loss"].as_f64().unwrap();
    assert!((first - 2f64.ln()).abs() < 1e-12, "{first}");
}

#[test]
fn killed_and_resumed_run_gives_bit_identical_adapter() {
    let dir = setup();
    let extra = "max_steps = 6\nsave_every = 2";
    let full = config(dir.path(), "full", &extra.replace("max_steps = 6\n", ""));
    let mut full = full;
    full.train.max_steps = Some(6);
    train(&full, &RunOptions::default(), &mut |_| {}).unwrap();

    let mut part = config(dir.path(), "part", "save_every = 2");
    part.train.max_steps = Some(6);
    let stopped = train(
        &part,
        &RunOptions {
            resume: false,
            stop_after: Some(3),
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(stopped.steps, 3);
    assert!(stopped.adapter_dir.is_none());
    let resumed = train(
        &part,
        &RunOptions {
            resume: true,
            stop_after: None,
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(resumed.steps, 6);
    let a = std::fs::read(
        full.train
            .output_dir
            .join("adapter/adapter_model.safetensors"),
    )
    .unwrap();
    let b = std::fs::read(
        part.train
            .output_dir
            .join("adapter/adapter_model.safetensors"),
    )
    .unwrap();
    assert!(a == b, "resumed adapter differs from the uninterrupted one");
}

#[test]
fn cached_reference_equals_disabled_adapter_and_is_rebuilt_on_change() {
    let dir = setup();
    let mut plain = config(dir.path(), "plain", "");
    plain.train.max_steps = Some(3);
    let mut cached = config(dir.path(), "cached", "");
    cached.train.max_steps = Some(3);
    cached.reference.mode = lambda_dpo::train::config::ReferenceMode::Cache;
    train(&plain, &RunOptions::default(), &mut |_| {}).unwrap();
    train(&cached, &RunOptions::default(), &mut |_| {}).unwrap();
    let cache = dir.path().join("train.jsonl.refcache.json");
    assert!(cache.is_file(), "cache written beside the data");
    let a = std::fs::read(
        plain
            .train
            .output_dir
            .join("adapter/adapter_model.safetensors"),
    )
    .unwrap();
    let b = std::fs::read(
        cached
            .train
            .output_dir
            .join("adapter/adapter_model.safetensors"),
    )
    .unwrap();
    assert!(
        a == b,
        "the cached reference must give exactly the disabled-adapter run"
    );
    let fp = |p: &Path| {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(p).unwrap()).unwrap()
            ["fingerprint"]
            .clone()
    };
    let first = fp(&cache);
    // Other truncation ⇒ other tokens ⇒ other fingerprint: the cache is rebuilt, not trusted.
    cached.data.max_length = 12;
    cached.train.output_dir = dir.path().join("cached2");
    train(&cached, &RunOptions::default(), &mut |_| {}).unwrap();
    assert_ne!(fp(&cache), first);
}

#[test]
fn sft_adapter_is_merged_so_the_reference_is_the_sft_model() {
    let dir = setup();
    let adapter = fixture_model().parent().unwrap().join("adapter");
    // Continuing the adapter itself with a disabled-adapter reference is refused (#8459).
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        format!(
            "[model]\npath = \"{}\"\nadapter = \"{}\"\n[data]\ntrain = \"train.jsonl\"\n",
            fixture_model().display(),
            adapter.display()
        ),
    )
    .unwrap();
    let e = TrainConfig::load(&p, &[]).unwrap_err().to_string();
    assert!(e.contains("8459") && e.contains("sft_adapter"), "{e}");
    // Merged: policy (SFT + fresh adapter) equals the reference (SFT) at step 0 ⇒ ln N.
    let mut cfg = config(dir.path(), "handoff", "");
    cfg.model.sft_adapter = Some(adapter);
    cfg.train.max_steps = Some(1);
    train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    let first = metrics(&cfg.train.output_dir)[0]["loss"].as_f64().unwrap();
    assert!((first - 4f64.ln()).abs() < 1e-12, "{first}");
}

#[test]
fn sft_stage_trains_on_assistant_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 0..6 {
        lines.push_str(
            &serde_json::json!({"messages": [
                {"role": "user", "content": format!("Say the word number {i}.")},
                {"role": "assistant", "content": "The word is banana."}
            ]})
            .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(dir.path().join("sft.jsonl"), lines).unwrap();
    let text = format!(
        "[model]\npath = \"{}\"\n[data]\ntrain = \"sft.jsonl\"\n[lora]\nr = 4\n[train]\nstage = \"sft\"\noutput_dir = \"sft-run\"\nlearning_rate = 0.01\nmax_steps = 12\ngrad_accum = 2\nwarmup_ratio = 0.0\nlr_schedule = \"constant\"\n",
        fixture_model().display()
    );
    std::fs::write(dir.path().join("sft.toml"), text).unwrap();
    let cfg = TrainConfig::load(&dir.path().join("sft.toml"), &[]).unwrap();
    train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    let m = metrics(&cfg.train.output_dir);
    let losses: Vec<f64> = m
        .iter()
        .filter_map(|r| r.get("loss").and_then(|v| v.as_f64()))
        .collect();
    assert!(
        losses[0] > 1.0,
        "random model starts far from the answer: {}",
        losses[0]
    );
    assert!(
        losses[losses.len() - 1] < losses[0] * 0.5,
        "SFT loss did not fall: {losses:?}"
    );
}

#[test]
fn non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dir = setup();
    let mut cfg = config(dir.path(), "nan", "save_every = 1");
    // Warmup makes the first update a no-op (lr 0 at step 0), so step 1 is a good checkpoint;
    // then an absurd learning rate sends the adapter to ±∞ on the second update.
    cfg.train.warmup_ratio = 0.1; // 4 warmup steps of 40
    cfg.train.learning_rate = 1e38;
    cfg.train.max_grad_norm = None;
    cfg.train.adam.eps = 1e-30;
    let err = train(&cfg, &RunOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("non-finite value") && err.contains("at step 2") && err.contains("hint:"),
        "{err}"
    );
    // The good checkpoint is there, finite, and the diverged update was never saved.
    let checkpoints = cfg.train.output_dir.join("checkpoints");
    let names: Vec<String> = std::fs::read_dir(&checkpoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["step-00000001"]);
    let f = checkpoints.join("step-00000001/adapter/adapter_model.safetensors");
    for (name, t) in candle_core::safetensors::load(&f, &candle_core::Device::Cpu).unwrap() {
        let s: f32 = t.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(s.is_finite(), "{name} in {} is not finite", f.display());
    }
    assert!(
        !cfg.train.output_dir.join("adapter").exists(),
        "no final adapter from a diverged run"
    );
    // The metrics stop at the last good step.
    let steps: Vec<u64> = metrics(&cfg.train.output_dir)
        .iter()
        .filter(|r| r.get("loss").is_some())
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1]);
}

#[test]
fn full_finetune_learns_resumes_bit_identically_and_writes_a_model_folder() {
    let dir = setup();
    let extra = "full_finetune = true\nsave_every = 2\n[reference]\nmode = \"cache\"";
    let mut full = config(dir.path(), "ft-full", extra);
    full.train.max_steps = Some(6);
    full.train.learning_rate = 1e-3;
    let summary = train(&full, &RunOptions::default(), &mut |_| {}).unwrap();
    // Policy = starting weights = the cached reference at step 0 ⇒ ln N.
    let first = metrics(&full.train.output_dir)[0]["loss"].as_f64().unwrap();
    assert!((first - 4f64.ln()).abs() < 1e-12, "{first}");
    let product = summary.adapter_dir.unwrap();
    assert!(product.ends_with("model"), "{}", product.display());
    let trained =
        lambda_dpo_model::Model::load(&product, candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(trained.config.num_layers, 2);
    let bytes = |p: &Path| std::fs::read(p.join("model/model.safetensors")).unwrap();
    assert!(
        bytes(&full.train.output_dir)
            != std::fs::read(fixture_model().join("model.safetensors")).unwrap(),
        "full fine-tuning left the weights unchanged"
    );

    let mut part = config(dir.path(), "ft-part", extra);
    part.train.max_steps = Some(6);
    part.train.learning_rate = 1e-3;
    let stopped = train(
        &part,
        &RunOptions {
            resume: false,
            stop_after: Some(3),
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(stopped.steps, 3);
    train(
        &part,
        &RunOptions {
            resume: true,
            stop_after: None,
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(
        bytes(&full.train.output_dir) == bytes(&part.train.output_dir),
        "resumed full fine-tune differs from the uninterrupted one"
    );
    // A LoRA-only setting with full fine-tuning is refused at load, naming the field.
    let p = dir.path().join("bad-ft.toml");
    std::fs::write(
        &p,
        format!(
            "[model]\npath = \"{}\"\n[data]\ntrain = \"train.jsonl\"\n[train]\nfull_finetune = true\n",
            fixture_model().display()
        ),
    )
    .unwrap();
    let e = TrainConfig::load(&p, &[]).unwrap_err().to_string();
    assert!(e.contains("reference.mode") && e.contains("hint:"), "{e}");
}

#[test]
fn skip_invalid_is_never_silent_the_load_report_is_returned_and_written() {
    let dir = setup();
    // One broken record in the middle of the training file.
    let p = dir.path().join("train.jsonl");
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.insert_str(text.find('\n').unwrap() + 1, "{\"prompt_ids\": [1, 2]}\n");
    std::fs::write(&p, text).unwrap();
    let mut cfg = config(dir.path(), "skips", "");
    cfg.train.max_steps = Some(1);
    // Without skip_invalid the broken record stops the run before any training.
    let err = train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("train.jsonl:2"), "{err}");
    cfg.data.skip_invalid = true;
    let summary = train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    let roles: Vec<&str> = summary
        .data_reports
        .iter()
        .map(|r| r.role.as_str())
        .collect();
    assert_eq!(roles, ["train", "eval"]);
    let train_report = &summary.data_reports[0].report;
    assert_eq!(train_report.skipped.count, 1);
    assert_eq!((train_report.records, train_report.kept), (17, 16));
    let written: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cfg.train.output_dir.join("data_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written[0]["role"], "train");
    assert_eq!(written[0]["report"]["skipped"]["count"], 1);
    assert!(written[0]["report"]["skipped"]["first"][0]
        .as_str()
        .unwrap()
        .contains("train.jsonl:2"));
    assert_eq!(written[1]["report"]["kept"], 8);
}

/// Pairs rated on one dimension, `score`, that the listwise file does not have.
fn write_pairs(path: &Path, n: usize) {
    let mut out = String::new();
    for i in 0..n as u64 {
        let line = serde_json::json!({"prompt_ids": [40 + i, 41, 42], "responses": [
            {"ids": [50 + i, 17, 17], "scores": {"score": 8}},
            {"ids": [60 + i, 61], "scores": {"score": 3}}
        ]});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn several_training_files_are_concatenated_over_the_union_of_their_dimensions() {
    let dir = setup();
    write_data(&dir.path().join("lists.jsonl"), 12, 3);
    write_pairs(&dir.path().join("pairs.jsonl"), 4);
    let text = format!(
        "[model]\npath = \"{}\"\n[data]\ntrain = [\"lists.jsonl\", \"pairs.jsonl\"]\neval_fraction = 0.25\n[lora]\nr = 2\n[train]\noutput_dir = \"multi\"\nmax_steps = 2\ngrad_accum = 2\nlearning_rate = 0.01\n[reference]\nmode = \"cache\"\n",
        fixture_model().display()
    );
    let p = dir.path().join("multi.toml");
    std::fs::write(&p, &text).unwrap();
    let cfg = TrainConfig::load(&p, &[]).unwrap();
    let summary = train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    assert!(summary.adapter_dir.is_some());
    let files: Vec<String> = summary
        .data_reports
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.role,
                r.file.file_name().unwrap().to_string_lossy()
            )
        })
        .collect();
    assert_eq!(files, ["train lists.jsonl", "train pairs.jsonl"]);
    // In order: the held-out quarter (the last 4 of 16 lists) is exactly the pairs file, so
    // held-out λ lives on `score` alone (the other dimensions dropped for those lists).
    let eval = summary.eval_metrics.unwrap();
    assert_eq!(eval["eval/lambda/score"].as_f64(), Some(1.0), "{eval}");
    assert_eq!(
        eval["eval/lambda/helpfulness"].as_f64(),
        Some(0.0),
        "{eval}"
    );
    // Several files share no "beside the data": their reference cache is in the run folder.
    assert!(cfg
        .train
        .output_dir
        .join("data.train.refcache.json")
        .is_file());
    // The resolved config keeps the list.
    let resolved =
        std::fs::read_to_string(cfg.train.output_dir.join("config.resolved.toml")).unwrap();
    assert!(resolved.contains("pairs.jsonl"), "{resolved}");

    // A default rating fills the absent dimensions, counted in the report …
    let cfg = TrainConfig::load(
        &p,
        &[
            "data.missing_rating={ policy = \"default\", value = 1.0 }".into(),
            "train.output_dir=multi-default".into(),
        ],
    )
    .unwrap();
    let summary = train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    // lists.jsonl lacks `score` (12 lists × 4), pairs.jsonl lacks two dimensions (4 × 2 × 2).
    let filled: Vec<usize> = summary
        .data_reports
        .iter()
        .map(|r| r.report.missing_filled)
        .collect();
    assert_eq!(filled, [48, 16]);
    // … and missing policy "error" refuses the combination, naming the field.
    let cfg = TrainConfig::load(
        &p,
        &[
            "data.missing_rating={ policy = \"error\" }".into(),
            "train.output_dir=multi-error".into(),
        ],
    )
    .unwrap();
    let e = train(&cfg, &RunOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data.missing_rating") && e.contains("`score`") && e.contains("hint:"),
        "{e}"
    );
}

#[test]
fn top1_at_step_0_is_chance_not_the_index_tie_break() {
    // Chosen-first pairs: at step 0 every implicit reward is 0, so an index tie-break would
    // make response 0 the model's pick and report top-1 = 1.0. Ties count 1/k: chance is 0.5.
    let dir = setup();
    write_pairs(&dir.path().join("pairs.jsonl"), 4);
    let mut cfg = config(dir.path(), "top1", "");
    cfg.data.train = dir.path().join("pairs.jsonl").into();
    cfg.data.eval = None;
    cfg.train.max_steps = Some(1);
    train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    let first = &metrics(&cfg.train.output_dir)[0];
    assert_eq!(first["listwise/top1"].as_f64(), Some(0.5), "{first}");
    assert_eq!(first["listwise/top1/score"].as_f64(), Some(0.5), "{first}");
}

#[test]
fn resume_after_a_lost_checkpoint_cuts_the_log_back_and_stays_bit_identical() {
    let dir = setup();
    let extra = "save_every = 2\neval_every = 2";
    let mut full = config(dir.path(), "lost-full", extra);
    full.train.max_steps = Some(6);
    train(&full, &RunOptions::default(), &mut |_| {}).unwrap();

    let mut part = config(dir.path(), "lost-part", extra);
    part.train.max_steps = Some(6);
    let opts = |resume, stop_after| RunOptions { resume, stop_after };
    train(&part, &opts(false, Some(4)), &mut |_| {}).unwrap();
    // A crash after step 4's metrics but before its checkpoint landed: only step 2 survives,
    // while metrics.jsonl already holds steps 3 and 4 (and the held-out line at 4).
    let ckpts = part.train.output_dir.join("checkpoints");
    std::fs::remove_dir_all(ckpts.join("step-00000004")).unwrap();
    assert!(ckpts.join("step-00000002").is_dir());
    train(&part, &opts(true, None), &mut |_| {}).unwrap();

    let adapter = |c: &TrainConfig| {
        std::fs::read(c.train.output_dir.join("adapter/adapter_model.safetensors")).unwrap()
    };
    assert!(
        adapter(&full) == adapter(&part),
        "resumed adapter differs from the uninterrupted one"
    );
    let steps = |c: &TrainConfig, key: &str| -> Vec<u64> {
        metrics(&c.train.output_dir)
            .iter()
            .filter(|r| r.get(key).is_some())
            .map(|r| r["step"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(steps(&part, "loss"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(steps(&part, "eval/loss"), [0, 2, 4, 6]);
    // Line for line the same log as the uninterrupted run, timing fields aside.
    let strip = |c: &TrainConfig| -> Vec<serde_json::Value> {
        metrics(&c.train.output_dir)
            .into_iter()
            .map(|mut r| {
                let o = r.as_object_mut().unwrap();
                o.remove("tokens_per_second");
                o.remove("peak_rss_mb");
                r
            })
            .collect()
    };
    assert_eq!(strip(&full), strip(&part));
}

/// `train.prefix_sharing` reaches the step: two steps (with held-out evaluation) log the same
/// losses as separate forwards, up to float rounding (dropout off, see below).
#[test]
fn prefix_sharing_run_logs_the_losses_of_separate_forwards() {
    let dir = setup();
    let losses = |name: &str, on: bool| -> Vec<f64> {
        let mut cfg = config(
            dir.path(),
            name,
            &format!("prefix_sharing = {on}\neval_every = 1"),
        );
        cfg.train.max_steps = Some(2);
        // LoRA dropout would draw other masks for the shared prompt (one per list instead of
        // one per response): equal losses need it off.
        cfg.lora.dropout = 0.0;
        train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
        metrics(&cfg.train.output_dir)
            .iter()
            .flat_map(|r| ["loss", "eval/loss"].map(|k| r.get(k).and_then(|v| v.as_f64())))
            .flatten()
            .collect()
    };
    let (a, b) = (losses("separate", false), losses("shared", true));
    assert_eq!(a.len(), b.len());
    assert!(a.len() >= 4, "{a:?}");
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5 * x.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

/// Every loss and loop option the other tests leave out, 2 steps each: the loss stays finite
/// and the product is written.
#[test]
fn every_loss_reference_mode_and_loop_option_runs_two_steps() {
    let dir = setup();
    let model = fixture_model();
    let cases: Vec<(&str, String)> = vec![
        ("ipo", "[loss]\ntype = \"ipo\"".into()),
        ("simpo", "[loss]\ntype = \"simpo\"".into()),
        ("orpo", "[loss]\ntype = \"orpo\"".into()),
        ("list-mle", "[loss]\ntype = \"list-mle\"".into()),
        ("lipo-lambda", "[loss]\ntype = \"lipo-lambda\"".into()),
        (
            "reference-model",
            format!(
                "[reference]\nmode = \"model\"\npath = \"{}\"",
                model.display()
            ),
        ),
        ("reference-none", "[reference]\nmode = \"none\"".into()),
        ("lambda-per-step", "[lambda]\nper = \"step\"".into()),
        ("chunk-size-2", "chunk_size = 2".into()),
        (
            "prefix-sharing-chunked-cache",
            "prefix_sharing = true\nchunk_size = 3\n[reference]\nmode = \"cache\"".into(),
        ),
        ("keep-last-1", "save_every = 1\nkeep_last = 1".into()),
    ];
    for (name, extra) in cases {
        // Options of [train] go there; whole sections are appended after it.
        let (train_extra, sections) = if extra.starts_with('[') {
            ("", extra.as_str())
        } else {
            (extra.as_str(), "")
        };
        let mut cfg = config(
            dir.path(),
            &format!("opt-{name}"),
            &format!("{train_extra}\n{sections}"),
        );
        cfg.train.max_steps = Some(2);
        let summary = train(&cfg, &RunOptions::default(), &mut |_| {})
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary.steps, 2, "{name}");
        let losses: Vec<f64> = metrics(&cfg.train.output_dir)
            .iter()
            .filter_map(|r| r.get("loss").and_then(serde_json::Value::as_f64))
            .collect();
        assert_eq!(losses.len(), 2, "{name}");
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        let product = summary.adapter_dir.expect("a product");
        assert!(
            product.join("adapter_model.safetensors").is_file(),
            "{name}: no adapter"
        );
        if name == "keep-last-1" {
            let left: Vec<String> = std::fs::read_dir(cfg.train.output_dir.join("checkpoints"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(left, ["step-00000002"], "keep_last = 1 prunes step 1");
        }
        // The sampler's state in the final checkpoint counts its draws: one per list (2 steps ×
        // grad-accum 2), or one per optimizer step with lambda.per = "step".
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                cfg.train
                    .output_dir
                    .join("checkpoints/step-00000002/state.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let draws = if name == "lambda-per-step" { 2 } else { 4 };
        assert_eq!(state["sampler"]["draws"], draws, "{name}: {state}");
    }
}
