//! Parity with transformers + peft (float64 references from `fixtures/generate.py`):
//! per-token log-probs with and without the adapter, every LoRA gradient of a fixed loss,
//! tokenization, and chat-template renderings.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use lambda_dpo_model::{LoraRun, ScoreOptions, ScoreRequest, Tokenizer};

const MODELS: [&str; 2] = ["llama", "qwen2"];

fn requests(exp: &Expected) -> Vec<ScoreRequest<'_>> {
    exp.cases
        .iter()
        .map(|c| ScoreRequest {
            ids: &c.input_ids,
            start: c.completion_start,
        })
        .collect()
}

fn check_logprobs(name: &str, batched: bool) {
    let exp = expected(name);
    let model = model(name, DType::F32);
    let adapter = adapter(name, &model);
    let reqs = requests(&exp);
    for with_adapter in [false, true] {
        let lora = with_adapter.then_some(LoraRun {
            adapter: &adapter,
            dropout_seed: None,
        });
        let mut got: Vec<Vec<f64>> = Vec::new();
        if batched {
            // One right-padded batch of sequences of different lengths.
            let s = model
                .score(
                    &reqs,
                    lora,
                    ScoreOptions {
                        logit_rows_per_chunk: 7,
                    },
                )
                .unwrap();
            let flat: Vec<f32> = s.token_logprobs.to_vec1().unwrap();
            for w in s.offsets.windows(2) {
                got.push(flat[w[0]..w[1]].iter().map(|&x| x as f64).collect());
            }
        } else {
            for r in &reqs {
                let s = model
                    .score(std::slice::from_ref(r), lora, ScoreOptions::default())
                    .unwrap();
                got.push(
                    s.token_logprobs
                        .to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .map(|&x| x as f64)
                        .collect(),
                );
            }
        }
        for (c, g) in exp.cases.iter().zip(&got) {
            let want = if with_adapter { &c.adapter } else { &c.base };
            let d = max_abs_diff(g, want);
            assert!(
                d < 1e-4,
                "{name} adapter={with_adapter} batched={batched} len={}: max |Δ| = {d:e}",
                c.input_ids.len()
            );
        }
    }
}

#[test]
fn llama_logprobs_match_transformers() {
    check_logprobs("llama", false);
}

#[test]
fn qwen2_logprobs_match_transformers() {
    check_logprobs("qwen2", false);
}

#[test]
fn batched_right_padded_logprobs_match_transformers() {
    for name in MODELS {
        check_logprobs(name, true);
    }
}

/// L = Σ_c w_c · Σ_t log p(token) with the adapter on; every LoRA gradient against peft's.
#[test]
fn lora_gradients_match_peft() {
    for name in MODELS {
        let exp = expected(name);
        let model = model(name, DType::F32);
        let adapter = adapter(name, &model);
        let s = model
            .score(
                &requests(&exp),
                Some(LoraRun {
                    adapter: &adapter,
                    dropout_seed: None,
                }),
                ScoreOptions::default(),
            )
            .unwrap();
        let w = Tensor::new(
            exp.grad_loss_weights
                .iter()
                .map(|&x| x as f32)
                .collect::<Vec<_>>(),
            &Device::Cpu,
        )
        .unwrap();
        let loss = (s.sums * w).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let reference = candle_core::safetensors::load(
            fixture(name).join("lora_grads.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        let named = adapter.named_vars();
        assert_eq!(
            named.len(),
            reference.len(),
            "{name}: number of LoRA tensors"
        );
        for (key, var) in named {
            let want = reference
                .get(&key)
                .unwrap_or_else(|| panic!("{name}: no reference gradient for {key}"));
            let got = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for {key}"));
            let got: Vec<f64> = got
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1()
                .unwrap();
            let want: Vec<f64> = want
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1()
                .unwrap();
            let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let d = max_abs_diff(&got, &want);
            assert!(
                scale > 0.0,
                "{name}: reference gradient of {key} is all zeros"
            );
            assert!(
                d <= 1e-4 * scale,
                "{name}: {key}: max |Δ| = {d:e}, relative {:e}",
                d / scale
            );
        }
    }
}

#[test]
fn tokenization_matches_hf() {
    for name in MODELS {
        let exp = expected(name);
        let tok = Tokenizer::from_dir(&fixture(name).join("model")).unwrap();
        for t in &exp.tokenize {
            assert_eq!(
                tok.encode(&t.text, true).unwrap(),
                t.ids,
                "{name}: {:?}",
                t.text
            );
        }
    }
}

#[test]
fn chat_templates_render_like_apply_chat_template() {
    for name in MODELS {
        let exp = expected(name);
        let tok = Tokenizer::from_dir(&fixture(name).join("model")).unwrap();
        assert!(!exp.chat.is_empty());
        for c in exp.chat.iter().chain(&exp.chat_tools) {
            let mut extra = c.kwargs.clone();
            if let Some(tools) = &c.tools {
                extra.insert("tools".into(), tools.clone());
            }
            let text = tok
                .render_chat(&c.messages, c.add_generation_prompt, &extra)
                .unwrap();
            assert_eq!(text, c.text, "{name}: rendering of {:?}", c.messages);
            assert_eq!(
                tok.encode_chat(&c.messages, c.add_generation_prompt, &extra)
                    .unwrap(),
                c.ids,
                "{name}: ids"
            );
        }
    }
}
