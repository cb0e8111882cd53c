//! Prefix sharing: one prompt and N responses scored in one packed forward
//! ([`Model::score_shared`]) give the per-token log-probs, per-response sums and LoRA
//! gradients of separate forwards ([`Model::score`]), on both fixture families (the Llama
//! fixture has llama3 rope scaling, the Qwen2 one q/k/v biases), with plain and SVD-LoRA
//! adapters, responses of different lengths including a 1-token one. Also: the segment-wise
//! packed attention equals the dense block mask, dropout is seeded and reaches every var, and
//! bad inputs are typed errors.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use lambda_dpo_model::{
    Adapter, LoraConfig, LoraRun, Model, PackedLayout, ScoreOptions, ScoreRequest, Scored,
};

/// Tolerance of every comparison (log-probs, sums, gradients relative to the tensor's max).
const TOL: f64 = 1e-5;

/// A prompt and four responses of different lengths (one of a single token), all ids below
/// both fixture vocabularies (768 and 805).
fn list() -> (Vec<u32>, Vec<Vec<u32>>) {
    let prompt = vec![11, 305, 42, 7, 99, 640, 3, 18, 250];
    let responses = vec![
        vec![5, 17, 300, 42, 99, 1, 64],
        vec![600],
        vec![2, 3, 4, 250, 251, 252, 8, 9, 10, 700, 12],
        vec![77, 78, 79],
    ];
    (prompt, responses)
}

/// Deterministic, non-trivial values for every var (B ≠ 0, so A gets a gradient too).
fn perturb(adapter: &Adapter, salt: usize) {
    for (j, (k, v)) in adapter.named_vars().into_iter().enumerate() {
        let (offset, amplitude) = if k.ends_with("sigma") {
            (1.0, 0.5)
        } else if k.ends_with("lambda_scale") {
            (2.0, 1.0)
        } else {
            (0.0, 0.08)
        };
        let old: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let vals: Vec<f32> = old
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let wave = amplitude * ((i * 7 + j * 13 + salt) as f32).sin();
                if k.contains("lora_A") {
                    x + 0.1 * wave // keep A's scale, move it off the init
                } else {
                    offset + wave
                }
            })
            .collect();
        let shape = v.as_tensor().shape().clone();
        v.set(&Tensor::from_vec(vals, shape, &Device::Cpu).unwrap())
            .unwrap();
    }
}

/// A plain LoRA adapter on all seven projections, perturbed.
fn plain(model: &Model) -> Adapter {
    let a = Adapter::new(&model.config, LoraConfig::default(), 3, &Device::Cpu).unwrap();
    perturb(&a, 0);
    a
}

/// An SVD-LoRA adapter (3 preference dimensions) bound to a λ, perturbed.
fn svd(model: &Model) -> Adapter {
    let cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        lambda_dims: 3,
        ..Default::default()
    };
    let a = Adapter::new(&model.config, cfg, 5, &Device::Cpu).unwrap();
    perturb(&a, 1);
    a.with_lambda(&[0.2, 0.5, 0.3]).unwrap()
}

fn separate(model: &Model, lora: Option<LoraRun<'_>>) -> Scored {
    let (prompt, responses) = list();
    let ids: Vec<Vec<u32>> = responses
        .iter()
        .map(|r| prompt.iter().chain(r).copied().collect())
        .collect();
    let reqs: Vec<ScoreRequest<'_>> = ids
        .iter()
        .map(|ids| ScoreRequest {
            ids,
            start: prompt.len(),
        })
        .collect();
    model.score(&reqs, lora, ScoreOptions::default()).unwrap()
}

fn shared(model: &Model, lora: Option<LoraRun<'_>>) -> Scored {
    let (prompt, responses) = list();
    model
        .score_shared(&prompt, &responses, lora, ScoreOptions::default())
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

/// A λ-DPO-shaped listwise loss of the per-response sums:
/// `L = −Σ_i w_i · log softmax(β·(ℓ − ℓ_ref))_i`, with fixed targets w and references.
fn lambda_dpo_loss(sums: &Tensor) -> Tensor {
    let dev = sums.device();
    let w = Tensor::new(&[0.4f32, 0.1, 0.3, 0.2], dev).unwrap();
    let reference = Tensor::new(&[-20.0f32, -6.0, -30.0, -9.0], dev).unwrap();
    let z = ((sums - reference).unwrap() * 0.1).unwrap(); // [N]
    let max = z.max_keepdim(0).unwrap().detach();
    let lse = z
        .broadcast_sub(&max)
        .unwrap()
        .exp()
        .unwrap()
        .sum_keepdim(0)
        .unwrap()
        .log()
        .unwrap()
        .add(&max)
        .unwrap();
    let logp = z.broadcast_sub(&lse).unwrap();
    (logp * w).unwrap().sum_all().unwrap().neg().unwrap()
}

/// Gradient of [`lambda_dpo_loss`] for every var.
fn grads(sums: &Tensor, vars: &[Var]) -> Vec<Tensor> {
    let store = lambda_dpo_loss(sums).backward().unwrap();
    vars.iter()
        .map(|v| {
            store
                .get(v.as_tensor())
                .expect("every var has a gradient")
                .clone()
        })
        .collect()
}

fn max_abs(t: &Tensor) -> f64 {
    let m = t.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    m.to_dtype(DType::F64).unwrap().to_scalar().unwrap()
}

/// Per var, `max|Δ| / max|g_separate|`: the largest over the vars with more than one
/// element, the largest over the one-element vars (SVD-LoRA's λ scale), and the largest |Δ|.
fn grad_diff(a: &[Tensor], b: &[Tensor]) -> (f64, f64, f64) {
    let (mut rel, mut rel_scalar, mut abs) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let d = max_abs(&(x - y).unwrap());
        let m = max_abs(x);
        assert!(m > 0.0, "an all-zero gradient proves nothing");
        if x.elem_count() == 1 {
            rel_scalar = rel_scalar.max(d / m);
        } else {
            rel = rel.max(d / m);
        }
        abs = abs.max(d);
    }
    (rel, rel_scalar, abs)
}

/// Log-probs, sums, offsets and gradients of the packed forward equal separate forwards, for
/// the model in f32 (the training dtype) and f64 (the LoRA update and the log-softmax are f32
/// in both).
fn check(name: &str, label: &str, adapter: impl Fn(&Model) -> Option<Adapter>) {
    for dtype in [DType::F32, DType::F64] {
        let model = model(name, dtype);
        let adapter = adapter(&model);
        let name = format!("{name} {label} {dtype:?}");
        let run = adapter.as_ref().map(|adapter| LoraRun {
            adapter,
            dropout_seed: None,
        });
        let a = separate(&model, run);
        let b = shared(&model, run);
        assert_eq!(a.offsets, b.offsets, "{name}");
        assert_eq!(b.lengths(), vec![7, 1, 11, 3], "{name}");
        let dt = max_abs_diff(&values(&a.token_logprobs), &values(&b.token_logprobs));
        let (sa, sb) = (values(&a.sums), values(&b.sums));
        let ds = max_abs_diff(&sa, &sb);
        // A sum of ~11 f32 log-probs near −70 is only good to a few of its ulps (7.6e-6).
        let ds_rel = sa
            .iter()
            .zip(&sb)
            .map(|(x, y)| (x - y).abs() / x.abs().max(1.0))
            .fold(0.0, f64::max);
        eprintln!(
            "{name}: max |Δ| token log-probs {dt:.2e}, sums {ds:.2e} ({ds_rel:.2e} relative)"
        );
        assert!(dt < TOL, "{name}: token log-probs differ by {dt}");
        assert!(ds_rel < TOL, "{name}: sums differ by {ds_rel} (relative)");
        if let Some(adapter) = &adapter {
            let vars = adapter.vars();
            let (rel, rel_scalar, abs) = grad_diff(&grads(&a.sums, &vars), &grads(&b.sums, &vars));
            eprintln!(
                "{name}: {} vars, gradient max |Δ| / max |g| {rel:.2e}, one-element vars {rel_scalar:.2e}, max |Δ| {abs:.2e}",
                vars.len()
            );
            assert!(rel < TOL, "{name}: gradients differ by {rel} of their max");
            // SVD-LoRA's λ scale gets one number summed over a whole projection with
            // cancellation (|g| ~ 4e-4 from terms ~100× larger), so its f32 noise is relatively
            // larger; its absolute difference is ~1e-8.
            assert!(
                rel_scalar < 10.0 * TOL,
                "{name}: λ-scale gradients differ by {rel_scalar}"
            );
        }
    }
}

#[test]
fn packed_list_equals_separate_forwards_without_adapter() {
    for name in ["llama", "qwen2"] {
        check(name, "base", |_| None);
    }
}

#[test]
fn packed_list_equals_separate_forwards_with_lora() {
    for name in ["llama", "qwen2"] {
        // The PEFT fixture adapter (from transformers + peft) and a perturbed fresh one.
        check(name, "fixture adapter", |m| Some(adapter(name, m)));
        check(name, "perturbed LoRA", |m| Some(plain(m)));
    }
}

#[test]
fn packed_list_equals_separate_forwards_with_svd_lora() {
    for name in ["llama", "qwen2"] {
        check(name, "SVD-LoRA", |m| Some(svd(m)));
    }
}

#[test]
fn segmentwise_attention_equals_the_dense_block_mask() {
    let layout = PackedLayout {
        prefix: 3,
        blocks: vec![2, 0, 1],
    };
    assert_eq!(layout.len(), 6);
    assert_eq!(layout.positions(), vec![0, 1, 2, 3, 4, 3]);
    assert_eq!(layout.block_start(2), 5);
    let mask: Vec<Vec<f32>> = layout.mask(&Device::Cpu).unwrap().to_vec2().unwrap();
    let seen: Vec<String> = mask
        .iter()
        .map(|row| {
            row.iter()
                .map(|&v| if v == 0.0 { '1' } else { '.' })
                .collect()
        })
        .collect();
    // Prefix causal; block 0 (cols 3-4) sees the prefix and itself; block 2 (col 5) does not
    // see block 0.
    assert_eq!(
        seen,
        ["1.....", "11....", "111...", "1111..", "11111.", "111..1"]
    );

    for name in ["llama", "qwen2"] {
        let m = model(name, DType::F32);
        let a = plain(&m);
        let run = Some(LoraRun {
            adapter: &a,
            dropout_seed: None,
        });
        let layout = PackedLayout {
            prefix: 5,
            blocks: vec![4, 0, 6, 1],
        };
        let ids: Vec<u32> = (0..layout.len() as u32)
            .map(|i| (i * 37 + 5) % 700)
            .collect();
        let ids = Tensor::from_vec(ids, (1, layout.len()), &Device::Cpu).unwrap();
        let packed = m.hidden_states_packed(&ids, &layout, run).unwrap();
        let dense = m
            .hidden_states_masked(
                &ids,
                &layout.positions(),
                &layout.mask(&Device::Cpu).unwrap(),
                run,
            )
            .unwrap();
        let d = max_abs(&(packed - dense).unwrap());
        assert!(d < 1e-5, "{name}: packed vs dense mask differ by {d}");
    }
}

#[test]
fn a_list_of_one_token_responses_runs_the_prompt_only() {
    let m = model("qwen2", DType::F32);
    let prompt = [4u32, 8, 15, 16, 23];
    let responses = [vec![42u32], vec![7], vec![42]];
    let b = m
        .score_shared(&prompt, &responses, None, ScoreOptions::default())
        .unwrap();
    let ids: Vec<Vec<u32>> = responses
        .iter()
        .map(|r| prompt.iter().chain(r).copied().collect())
        .collect();
    let reqs: Vec<ScoreRequest<'_>> = ids
        .iter()
        .map(|ids| ScoreRequest { ids, start: 5 })
        .collect();
    let a = m.score(&reqs, None, ScoreOptions::default()).unwrap();
    let (x, y) = (values(&a.token_logprobs), values(&b.token_logprobs));
    assert!(max_abs_diff(&x, &y) < TOL);
    assert_eq!(y[0], y[2], "the same token after the same prompt");
}

#[test]
fn dropout_is_seeded_and_reaches_every_var() {
    let m = model("llama", DType::F32);
    let a = Adapter::new(
        &m.config,
        LoraConfig {
            dropout: 0.2,
            ..Default::default()
        },
        9,
        &Device::Cpu,
    )
    .unwrap();
    perturb(&a, 2);
    let run = |seed| {
        Some(LoraRun {
            adapter: &a,
            dropout_seed: seed,
        })
    };
    let s1 = values(&shared(&m, run(Some(1))).sums);
    let s1_again = shared(&m, run(Some(1)));
    let s2 = values(&shared(&m, run(Some(2))).sums);
    let off = values(&shared(&m, run(None)).sums);
    assert_eq!(s1, values(&s1_again.sums), "same seed, same masks");
    assert!(max_abs_diff(&s1, &s2) > 1e-4, "another seed, other masks");
    assert!(max_abs_diff(&s1, &off) > 1e-4, "dropout is applied");
    let g = grads(&s1_again.sums, &a.vars());
    for t in g {
        let n: f32 = t.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(n > 0.0);
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let m = model("llama", DType::F32);
    let opts = ScoreOptions::default();
    let err = m.score_shared(&[], &[vec![1u32]], None, opts).unwrap_err();
    assert!(err.to_string().contains("completion_start = 0"), "{err}");
    let err = m
        .score_shared(&[1, 2], &[vec![3u32], vec![]], None, opts)
        .unwrap_err();
    assert!(err.to_string().contains("sequence 1"), "{err}");
    let err = m
        .score_shared(&[1, 2], &[vec![5000u32]], None, opts)
        .unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    let none: [Vec<u32>; 0] = [];
    assert!(m.score_shared(&[1, 2], &none, None, opts).is_err());
    let ids = Tensor::from_vec(vec![1u32, 2, 3], (1, 3), &Device::Cpu).unwrap();
    let layout = PackedLayout {
        prefix: 2,
        blocks: vec![2],
    };
    assert!(m.hidden_states_packed(&ids, &layout, None).is_err());
}
