//! The per-list preference step: ln N at θ = ref, the surrogate gradient equals the gradient of
//! the loss written directly in tensors, the two-pass chunked path equals the one-pass path, and
//! prefix sharing (one packed forward per list) gives the loss and gradients of separate forwards.

mod common;

use common::*;

use candle_core::{DType, Device, Tensor};
use lambda_dpo::train::{list_step, ListInput, Reference, StepOptions};
use lambda_dpo_math::{LogpMode, Loss, Objective, Target};
use lambda_dpo_model::{Adapter, LoraConfig, LoraRun, ScoreOptions, ScoreRequest};

/// A prompt and four responses of different lengths (fixed pseudo-random ids).
fn list() -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut r = Lcg(12345);
    (r.ids(9), vec![r.ids(5), r.ids(8), r.ids(3), r.ids(11)])
}

fn opts(chunk: usize, seed: Option<u64>) -> StepOptions {
    StepOptions {
        chunk_size: chunk,
        dropout_seed: seed,
        grad_scale: 1.0,
        backward: true,
        score: ScoreOptions::default(),
        prefix_sharing: false,
        gradient_checkpointing: false,
    }
}

#[test]
fn first_step_loss_is_ln_n_and_ln_2() {
    let m = load_model("qwen2");
    let fresh = Adapter::new(&m.config, LoraConfig::default(), 3, &Device::Cpu).unwrap();
    let (prompt, responses) = list();
    let target = Target::from_probs(vec![0.1, 0.4, 0.3, 0.2]).unwrap();
    let input = ListInput {
        prompt: &prompt,
        responses: &responses,
        target: &target,
    };
    let obj = Objective::new(Loss::lambda_dpo());
    let s = list_step(
        &m,
        &fresh,
        &obj,
        input,
        Reference::DisabledAdapter,
        opts(4, None),
    )
    .unwrap();
    assert_eq!(
        s.output.loss,
        (4.0f64).ln(),
        "B = 0: policy = reference bit for bit, so L = ln N exactly"
    );
    let pair = vec![responses[0].clone(), responses[1].clone()];
    let t2 = Target::from_probs(vec![1.0, 0.0]).unwrap();
    let s = list_step(
        &m,
        &fresh,
        &Objective::new(Loss::dpo()),
        ListInput {
            prompt: &prompt,
            responses: &pair,
            target: &t2,
        },
        Reference::DisabledAdapter,
        opts(2, None),
    )
    .unwrap();
    assert_eq!(s.output.loss, (2.0f64).ln());
}

fn max_rel(a: &[Tensor], b: &[Tensor]) -> f64 {
    let mut worst = 0.0f64;
    for (x, y) in a.iter().zip(b) {
        let x: Vec<f64> = x
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap();
        let y: Vec<f64> = y
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap();
        let scale = y.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
        let d = x
            .iter()
            .zip(&y)
            .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
        worst = worst.max(d / scale);
    }
    worst
}

/// λ-DPO written directly with tensors (`−Σ p log softmax(β(ℓ − ℓ_ref))`) and back-propagated by
/// candle: the surrogate `Σ g_i ℓ_i` must give the same gradient.
#[test]
fn surrogate_gradient_equals_direct_backward() {
    let m = load_model("qwen2");
    let adapter =
        Adapter::load(&fixture("qwen2").join("adapter"), &m.config, &Device::Cpu).unwrap();
    let (prompt, responses) = list();
    let probs = vec![0.1, 0.4, 0.3, 0.2];
    let target = Target::from_probs(probs.clone()).unwrap();
    let beta = 0.5;
    let obj = Objective::new(Loss::LambdaDpo {
        beta,
        mode: LogpMode::Sum,
    });
    let s = list_step(
        &m,
        &adapter,
        &obj,
        ListInput {
            prompt: &prompt,
            responses: &responses,
            target: &target,
        },
        Reference::DisabledAdapter,
        opts(4, None),
    )
    .unwrap();

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
    let pol = m
        .score(
            &reqs,
            Some(LoraRun {
                adapter: &adapter,
                dropout_seed: None,
            }),
            ScoreOptions::default(),
        )
        .unwrap()
        .sums;
    let refr = m.score(&reqs, None, ScoreOptions::default()).unwrap().sums;
    let z = ((pol - refr).unwrap() * beta).unwrap(); // [N]
    let p = Tensor::new(
        probs.iter().map(|&x| x as f32).collect::<Vec<_>>(),
        &Device::Cpu,
    )
    .unwrap();
    // logsumexp without max-shift is fine at these magnitudes (|z| < 10).
    let lse = z.exp().unwrap().sum_all().unwrap().log().unwrap();
    let loss = (lse - (z * p).unwrap().sum_all().unwrap()).unwrap(); // −Σ p (z − lse), Σp = 1
    let l: f32 = loss.to_scalar().unwrap();
    assert!(
        (l as f64 - s.output.loss).abs() < 1e-5,
        "{l} vs {}",
        s.output.loss
    );
    let store = loss.backward().unwrap();
    let direct: Vec<Tensor> = adapter
        .named_vars()
        .iter()
        .map(|(_, v)| store.get(v.as_tensor()).unwrap().clone())
        .collect();
    let rel = max_rel(&s.grads, &direct);
    assert!(rel < 1e-4, "surrogate vs direct: {rel:e}");
}

#[test]
fn chunked_two_pass_equals_one_pass_with_and_without_dropout() {
    let m = load_model("llama");
    let mut adapter =
        Adapter::load(&fixture("llama").join("adapter"), &m.config, &Device::Cpu).unwrap();
    adapter.config.dropout = 0.1;
    let (prompt, responses) = list();
    let target = Target::from_probs(vec![0.1, 0.4, 0.3, 0.2]).unwrap();
    let input = ListInput {
        prompt: &prompt,
        responses: &responses,
        target: &target,
    };
    let obj = Objective::new(Loss::lambda_dpo());
    let one_pass = list_step(
        &m,
        &adapter,
        &obj,
        input,
        Reference::DisabledAdapter,
        opts(4, None),
    )
    .unwrap();
    for chunk in [1, 2, 3] {
        let chunked = list_step(
            &m,
            &adapter,
            &obj,
            input,
            Reference::DisabledAdapter,
            opts(chunk, None),
        )
        .unwrap();
        assert!(
            (one_pass.output.loss - chunked.output.loss).abs() < 1e-6,
            "chunk {chunk}"
        );
        let rel = max_rel(&chunked.grads, &one_pass.grads);
        assert!(rel < 1e-4, "chunk {chunk}: {rel:e}");
    }
    // Dropout masks are a function of (seed, chunk): a step is reproducible, and active.
    let a = list_step(
        &m,
        &adapter,
        &obj,
        input,
        Reference::DisabledAdapter,
        opts(2, Some(11)),
    )
    .unwrap();
    let b = list_step(
        &m,
        &adapter,
        &obj,
        input,
        Reference::DisabledAdapter,
        opts(2, Some(11)),
    )
    .unwrap();
    assert_eq!(a.output.loss, b.output.loss);
    assert_eq!(max_rel(&a.grads, &b.grads), 0.0);
    assert_ne!(a.output.loss, one_pass.output.loss);
}

/// `train.prefix_sharing`: the same loss, log-probs and gradients as separate forwards, one
/// pass and chunked, for every reference computed in the step, on Llama (llama3 rope) and
/// Qwen2 (q/k/v biases), with responses of 6, 1, 9 and 3 tokens.
#[test]
fn prefix_sharing_gives_the_loss_and_gradients_of_separate_forwards() {
    let (prompt, mut responses) = list();
    responses[1].truncate(1);
    responses[2].truncate(9);
    responses[0].push(17);
    let target = Target::from_probs(vec![0.1, 0.4, 0.3, 0.2]).unwrap();
    let input = ListInput {
        prompt: &prompt,
        responses: &responses,
        target: &target,
    };
    let obj = Objective::new(Loss::lambda_dpo());
    for name in ["llama", "qwen2"] {
        let m = load_model(name);
        let other = load_model(name);
        // The PEFT fixture adapter: B ≠ 0, so every var has a gradient.
        let adapter =
            Adapter::load(&fixture(name).join("adapter"), &m.config, &Device::Cpu).unwrap();
        let references = [
            ("disabled adapter", Reference::DisabledAdapter),
            ("separate model", Reference::Model(&other)),
            ("none", Reference::None),
        ];
        for (label, reference) in references {
            for chunk in [4, 3] {
                let run = |prefix_sharing| {
                    let o = StepOptions {
                        prefix_sharing,
                        ..opts(chunk, None)
                    };
                    list_step(&m, &adapter, &obj, input, reference, o).unwrap()
                };
                let (separate, shared) = (run(false), run(true));
                let what = format!("{name}, reference {label}, chunk {chunk}");
                let dl = (separate.output.loss - shared.output.loss).abs();
                assert!(dl < 1e-5, "{what}: loss differs by {dl}");
                let logps = |s: &lambda_dpo::train::ListStep| -> Vec<f64> {
                    s.policy_logps
                        .iter()
                        .chain(s.reference_logps.iter().flatten())
                        .copied()
                        .collect()
                };
                let (a, b) = (logps(&separate), logps(&shared));
                assert_eq!(a.len(), b.len());
                for (x, y) in a.iter().zip(&b) {
                    assert!(
                        (x - y).abs() < 1e-5 * x.abs().max(1.0),
                        "{what}: {x} vs {y}"
                    );
                }
                assert_eq!(separate.lengths, shared.lengths);
                let rel = max_rel(&shared.grads, &separate.grads);
                eprintln!("{what}: |Δ loss| {dl:.1e}, gradients {rel:.1e} of their max");
                assert!(
                    rel < 1e-5,
                    "{what}: gradients differ by {rel:e} of their max"
                );
            }
        }
    }
    // With dropout the packed step is reproducible and the masks are active.
    let m = load_model("llama");
    let mut adapter =
        Adapter::load(&fixture("llama").join("adapter"), &m.config, &Device::Cpu).unwrap();
    adapter.config.dropout = 0.1;
    let step = |seed| {
        let o = StepOptions {
            prefix_sharing: true,
            ..opts(4, seed)
        };
        list_step(&m, &adapter, &obj, input, Reference::DisabledAdapter, o).unwrap()
    };
    let (a, b, off) = (step(Some(11)), step(Some(11)), step(None));
    assert_eq!(a.output.loss, b.output.loss);
    assert_eq!(max_rel(&a.grads, &b.grads), 0.0);
    assert_ne!(a.output.loss, off.output.loss);
}
