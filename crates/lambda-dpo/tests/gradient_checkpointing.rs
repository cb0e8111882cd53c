//! `train.gradient_checkpointing`: recomputing the decoder blocks one at a time in the backward
//! gives the loss and every gradient of one backward through the whole graph (up to float
//! rounding), with LoRA dropout on (the recompute must draw the forward's masks), on Llama
//! (tied embeddings, llama3 rope) and Qwen2 (q/k/v biases, untied head):
//!
//! - the model API ([`Model::score_checkpointed`], [`Model::score_shared_checkpointed`])
//!   against [`Model::score`] / [`Model::score_shared`] with a weighted token loss;
//! - the list step, one pass and chunked, separate rows and prefix sharing, with the
//!   disabled-adapter and the cached reference;
//! - full fine-tuning, where the head (final norm, lm-head) and the embeddings are trained too;
//! - the training loop (preference and SFT stages), which logs the same losses.
//!
//! Every comparison also checks that the gradients compared are real: each variable's reference
//! gradient is nonzero, so a path that dropped gradients could not pass.

mod common;

use common::*;

use std::path::Path;

use candle_core::{Device, Tensor, Var};
use lambda_dpo::train::step::list_step_for;
use lambda_dpo::train::{list_step, train, ListInput, ListStep, Reference, RunOptions};
use lambda_dpo::train::{StepOptions, TrainConfig};
use lambda_dpo_math::{Loss, Objective, Target};
use lambda_dpo_model::{Adapter, LoraRun, Model, ScoreOptions, ScoreRequest, Scored};

const MODELS: [&str; 2] = ["llama", "qwen2"];

/// The PEFT fixture adapter (B ≠ 0, so every var has a gradient) with LoRA dropout 0.1.
fn adapter(name: &str, m: &Model) -> Adapter {
    let mut a = Adapter::load(&fixture(name).join("adapter"), &m.config, &Device::Cpu).unwrap();
    a.config.dropout = 0.1;
    a
}

/// A prompt and four responses of 6, 1, 9 and 12 tokens (fixed pseudo-random ids).
fn list() -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut r = Lcg(4242);
    (r.ids(9), vec![r.ids(6), r.ids(1), r.ids(9), r.ids(12)])
}

fn opts(chunk: usize, prefix_sharing: bool, gradient_checkpointing: bool) -> StepOptions {
    StepOptions {
        chunk_size: chunk,
        dropout_seed: Some(11),
        grad_scale: 0.5,
        backward: true,
        score: ScoreOptions::default(),
        prefix_sharing,
        gradient_checkpointing,
    }
}

/// Asserts two steps agree: loss, every log-prob, every gradient (each nonzero when `nonzero`).
fn assert_same_step(what: &str, ckpt: &ListStep, full: &ListStep, nonzero: bool) {
    let dl = (ckpt.output.loss - full.output.loss).abs();
    assert!(
        dl < 1e-6 * full.output.loss.abs().max(1.0),
        "{what}: loss {} vs {}",
        ckpt.output.loss,
        full.output.loss
    );
    for (x, y) in ckpt.policy_logps.iter().zip(&full.policy_logps) {
        assert!(
            (x - y).abs() < 1e-5 * y.abs().max(1.0),
            "{what}: {x} vs {y}"
        );
    }
    let rel = max_rel(what, &ckpt.grads, &full.grads, nonzero);
    eprintln!("{what}: |Δ loss| {dl:.1e}, gradients {rel:.1e} of their max");
    assert!(
        rel < 1e-5,
        "{what}: gradients differ by {rel:e} of their max"
    );
}

/// The model API: the checkpointed forward gives the log-probs of the ordinary one, and its
/// block-by-block backward the gradients of one backward through the whole graph, for a loss
/// that weights every scored token differently (so every row's gradient path matters).
#[test]
fn checkpointed_backward_equals_one_backward_through_the_whole_graph() {
    let (prompt, responses) = list();
    let ids: Vec<Vec<u32>> = responses
        .iter()
        .map(|r| prompt.iter().chain(r).copied().collect())
        .collect();
    let requests: Vec<ScoreRequest<'_>> = ids
        .iter()
        .map(|ids| ScoreRequest {
            ids,
            start: prompt.len(),
        })
        .collect();
    let tokens: usize = responses.iter().map(Vec::len).sum();
    let w = Tensor::from_vec(
        (0..tokens).map(|i| 1.0 - 0.13 * i as f32).collect(),
        tokens,
        &Device::Cpu,
    )
    .unwrap();
    let loss = |s: &Scored| (&s.token_logprobs * &w)?.sum_all();
    for name in MODELS {
        let m = load_model(name);
        let a = adapter(name, &m);
        let vars = a.vars();
        let lora = Some(LoraRun {
            adapter: &a,
            dropout_seed: Some(5),
        });
        for shared in [false, true] {
            let what = format!("{name}, prefix sharing {shared}");
            let opts = ScoreOptions::default();
            let full = if shared {
                m.score_shared(&prompt, &responses, lora, opts)
            } else {
                m.score(&requests, lora, opts)
            }
            .unwrap();
            let store = loss(&full).unwrap().backward().unwrap();
            let want: Vec<Tensor> = vars
                .iter()
                .map(|v| store.get(v.as_tensor()).unwrap().clone())
                .collect();
            let ck = if shared {
                m.score_shared_checkpointed(&prompt, &responses, lora, opts)
            } else {
                m.score_checkpointed(&requests, lora, opts)
            }
            .unwrap();
            let (a_vals, b_vals) = (
                values(&ck.scored().token_logprobs),
                values(&full.token_logprobs),
            );
            assert_eq!(ck.scored().offsets, full.offsets, "{what}");
            for (x, y) in a_vals.iter().zip(&b_vals) {
                assert!((x - y).abs() < 1e-5, "{what}: log-prob {x} vs {y}");
            }
            assert!(
                !ck.scored().sums.track_op(),
                "{what}: the checkpointed forward kept a graph"
            );
            let got: Vec<Tensor> = ck
                .backward(loss, &vars)
                .unwrap()
                .into_iter()
                .map(|g| g.expect("every adapter var has a gradient"))
                .collect();
            let rel = max_rel(&what, &got, &want, true);
            eprintln!("{what}: gradients {rel:.1e} of their max");
            assert!(rel < 1e-5, "{what}: gradients differ by {rel:e}");
        }
    }
}

/// The list step with `gradient_checkpointing` equals the step without, one pass (chunk 4 = N)
/// and two-pass (chunk 3), separate rows and prefix sharing, with the disabled-adapter and the
/// cached reference, dropout on.
#[test]
fn checkpointed_list_step_equals_the_full_graph_step() {
    let (prompt, responses) = list();
    let target = Target::from_probs(vec![0.1, 0.4, 0.3, 0.2]).unwrap();
    let input = ListInput {
        prompt: &prompt,
        responses: &responses,
        target: &target,
    };
    let obj = Objective::new(Loss::lambda_dpo());
    for name in MODELS {
        let m = load_model(name);
        let a = adapter(name, &m);
        // The cache's values: the reference forward of a disabled-adapter step.
        let cached = list_step(
            &m,
            &a,
            &obj,
            input,
            Reference::DisabledAdapter,
            opts(4, false, false),
        )
        .unwrap()
        .reference_logps
        .unwrap();
        let references = [
            ("disabled adapter", Reference::DisabledAdapter),
            ("cache", Reference::Given(&cached)),
        ];
        for (label, reference) in references {
            for chunk in [4, 3] {
                for shared in [false, true] {
                    let step = |ckpt| {
                        list_step(&m, &a, &obj, input, reference, opts(chunk, shared, ckpt))
                            .unwrap()
                    };
                    let what = format!(
                        "{name}, reference {label}, chunk {chunk}, prefix sharing {shared}"
                    );
                    assert_same_step(&what, &step(true), &step(false), true);
                }
            }
        }
        // Dropout is active in what was compared (another seed, another loss).
        let reference = Reference::DisabledAdapter;
        let seeded = list_step(&m, &a, &obj, input, reference, opts(4, false, true)).unwrap();
        let other = StepOptions {
            dropout_seed: Some(12),
            ..opts(4, false, true)
        };
        let reseeded = list_step(&m, &a, &obj, input, reference, other).unwrap();
        assert_ne!(seeded.output.loss, reseeded.output.loss, "{name}");
    }
}

/// Full fine-tuning: every weight is a variable, so the checkpointed backward must also produce
/// the head's gradients (final norm, lm-head) and the embeddings' (tied to the head in the
/// Llama fixture, a separate matrix in Qwen2's).
#[test]
fn checkpointed_full_finetune_step_equals_the_full_graph_step() {
    let (prompt, responses) = list();
    let target = Target::from_probs(vec![0.1, 0.4, 0.3, 0.2]).unwrap();
    let input = ListInput {
        prompt: &prompt,
        responses: &responses,
        target: &target,
    };
    let obj = Objective::new(Loss::lambda_dpo());
    for name in MODELS {
        let mut m = load_model(name);
        let empty = Adapter::empty(&m.config, Default::default());
        // The reference: the starting weights, computed before they become variables.
        let cached = list_step(
            &m,
            &empty,
            &obj,
            input,
            Reference::DisabledAdapter,
            opts(4, false, false),
        )
        .unwrap()
        .reference_logps
        .unwrap();
        let named = m.make_trainable().unwrap();
        let vars: Vec<Var> = named.iter().map(|(_, v)| v.clone()).collect();
        for chunk in [4, 3] {
            let step = |ckpt| {
                list_step_for(
                    &m,
                    &empty,
                    &vars,
                    &obj,
                    input,
                    Reference::Given(&cached),
                    opts(chunk, false, ckpt),
                )
                .unwrap()
            };
            let what = format!("{name} full fine-tuning, chunk {chunk}");
            let (ckpt, full) = (step(true), step(false));
            // The stages only checkpointing adds: the head and the embeddings.
            for key in [
                "model.embed_tokens.weight",
                "model.norm.weight",
                "lm_head.weight",
            ] {
                if let Some(k) = named.iter().position(|(n, _)| n == key) {
                    let g = values(&full.grads[k]);
                    assert!(g.iter().any(|&v| v != 0.0), "{what}: {key} has no gradient");
                }
            }
            // Every weight but the key biases (zero in exact arithmetic) has a real gradient.
            for ((n, _), g) in named.iter().zip(&full.grads) {
                if !n.ends_with("k_proj.bias") {
                    assert!(
                        values(g).iter().any(|&v| v != 0.0),
                        "{what}: {n} has no gradient"
                    );
                }
            }
            assert_same_step(&what, &ckpt, &full, false);
        }
    }
}

/// Lists of 4 responses of 5–8 tokens after a 6-token prompt (the loop tests' shape).
fn write_lists(path: &Path, n: usize) {
    let mut lcg = Lcg(99);
    let mut rnd = |m: u64| lcg.below(m);
    let mut out = String::new();
    for _ in 0..n {
        let prompt: Vec<u64> = (0..6).map(|_| 30 + rnd(600)).collect();
        let responses: Vec<serde_json::Value> = (0..4u64)
            .map(|q| {
                let ids: Vec<u64> = (0..5 + q).map(|_| 30 + rnd(600)).collect();
                serde_json::json!({"ids": ids, "scores": {"helpfulness": q + 1, "honesty": 4 - q}})
            })
            .collect();
        out.push_str(
            &serde_json::json!({"prompt_ids": prompt, "responses": responses}).to_string(),
        );
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// The losses a run logs (training and held-out).
fn run_losses(dir: &Path, text: &str, out: &str) -> Vec<f64> {
    let cfg_path = dir.join(format!("{out}.toml"));
    std::fs::write(&cfg_path, text).unwrap();
    let cfg = TrainConfig::load(&cfg_path, &[]).unwrap();
    train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    std::fs::read_to_string(cfg.train.output_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .flat_map(|r| ["loss", "eval/loss"].map(|k| r.get(k).and_then(|v| v.as_f64())))
        .flatten()
        .collect()
}

/// `train.gradient_checkpointing` reaches the loop: three optimizer steps (the later ones
/// depend on the earlier gradients) of a preference run with dropout and held-out evaluation,
/// and of an SFT run, log the losses of the run without it.
#[test]
fn checkpointed_runs_log_the_losses_of_full_graph_runs() {
    let dir = tempfile::tempdir().unwrap();
    write_lists(&dir.path().join("train.jsonl"), 6);
    write_lists(&dir.path().join("eval.jsonl"), 2);
    let mut sft = String::new();
    for i in 0..4 {
        sft.push_str(
            &serde_json::json!({"messages": [
                {"role": "user", "content": format!("Say the word number {i}.")},
                {"role": "assistant", "content": "The word is banana."}
            ]})
            .to_string(),
        );
        sft.push('\n');
    }
    std::fs::write(dir.path().join("sft.jsonl"), sft).unwrap();
    let model = fixture("qwen2").join("model");
    for stage in ["preference", "sft"] {
        let losses = |on: bool| {
            let data = if stage == "sft" {
                "train = \"sft.jsonl\""
            } else {
                "train = \"train.jsonl\"\neval = \"eval.jsonl\""
            };
            let eval = if stage == "sft" {
                ""
            } else {
                "eval_every = 1\n"
            };
            let text = format!(
                "[model]\npath = \"{}\"\n[data]\n{data}\n[lora]\nr = 4\ndropout = 0.1\n[train]\nstage = \"{stage}\"\noutput_dir = \"{stage}-{on}\"\nlearning_rate = 0.01\nmax_steps = 3\ngrad_accum = 2\nwarmup_ratio = 0.0\nlr_schedule = \"constant\"\n{eval}gradient_checkpointing = {on}\n",
                model.display()
            );
            run_losses(dir.path(), &text, &format!("{stage}-{on}"))
        };
        let (a, b) = (losses(true), losses(false));
        assert_eq!(a.len(), b.len(), "{stage}");
        assert!(a.len() >= 3, "{stage}: {a:?}");
        // The run learns (the gradients compared are not zero): the loss moves.
        assert_ne!(b[0], b[b.len() - 1], "{stage}: {b:?}");
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() < 1e-5 * y.abs().max(1.0),
                "{stage}: {a:?} vs {b:?}"
            );
        }
    }
}
