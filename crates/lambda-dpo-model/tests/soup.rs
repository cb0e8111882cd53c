//! Adapter soups: the combined update is exactly Σ λ_k ΔW_k, one-hot λ reproduces an adapter,
//! the soup round-trips through the PEFT files, and mismatched adapters are typed errors.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{adapter, model};
use lambda_dpo_model::{
    soup, Adapter, LoraConfig, LoraRun, Model, ScoreOptions, ScoreRequest, SoupError, Target,
};

/// A second adapter for `m` with a different rank (2, α = 6) and non-zero B, so that its update
/// differs from the fixture adapter's.
fn other_adapter(m: &Model, seed: u64) -> Adapter {
    let cfg = LoraConfig {
        r: 2,
        alpha: 6.0,
        dropout: 0.0,
        ..Default::default()
    };
    let a = Adapter::new(&m.config, cfg, seed, &Device::Cpu).unwrap();
    // Deterministic B values (tests must not depend on a thread RNG).
    for (j, (k, v)) in a.named_vars().into_iter().enumerate() {
        if k.contains("lora_B") {
            let shape = v.as_tensor().shape().clone();
            let vals: Vec<f32> = (0..shape.elem_count())
                .map(|i| 0.05 * ((i * 7 + j * 13 + seed as usize) as f32).sin())
                .collect();
            v.set(&Tensor::from_vec(vals, shape, &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    a
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn sequences() -> Vec<Vec<u32>> {
    vec![
        vec![5, 17, 300, 42, 99, 1, 64],
        vec![600, 2, 3, 4, 250, 251, 252, 8, 9, 10],
    ]
}

fn logprobs(m: &Model, a: Option<&Adapter>) -> Vec<f32> {
    let seqs = sequences();
    let reqs: Vec<ScoreRequest<'_>> = seqs
        .iter()
        .map(|ids| ScoreRequest { ids, start: 2 })
        .collect();
    let lora = a.map(|adapter| LoraRun {
        adapter,
        dropout_seed: None,
    });
    m.score(&reqs, lora, ScoreOptions::default())
        .unwrap()
        .token_logprobs
        .to_vec1()
        .unwrap()
}

#[test]
fn soup_delta_is_the_lambda_weighted_sum_of_deltas() {
    for name in ["llama", "qwen2"] {
        let m = model(name, DType::F32);
        let a = adapter(name, &m);
        let b = other_adapter(&m, 3);
        let lambdas = [0.3, -1.2];
        let s = soup(&[&a, &b], &lambdas).unwrap();
        assert_eq!(s.config.r, a.config.r + b.config.r);
        for layer in 0..m.config.num_layers {
            for t in Target::ALL {
                let got = s.delta(layer, t).unwrap().unwrap();
                let da = a.delta(layer, t).unwrap().unwrap();
                let db = b.delta(layer, t).unwrap().unwrap();
                let want = ((da * lambdas[0]).unwrap() + (db * lambdas[1]).unwrap()).unwrap();
                let diff = max_abs(&got, &want);
                assert!(diff < 1e-6, "{name} layer {layer} {t:?}: {diff}");
            }
        }
    }
}

#[test]
fn one_hot_soup_gives_the_adapters_own_logprobs() {
    for name in ["llama", "qwen2"] {
        let m = model(name, DType::F32);
        let a = adapter(name, &m);
        let b = other_adapter(&m, 5);
        for (lambdas, single) in [([1.0, 0.0], &a), ([0.0, 1.0], &b)] {
            let s = soup(&[&a, &b], &lambdas).unwrap();
            let want = logprobs(&m, Some(single));
            let got = logprobs(&m, Some(&s));
            let diff = want
                .iter()
                .zip(&got)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-5, "{name} {lambdas:?}: {diff}");
        }
        // And a half-half soup of an adapter with itself is that adapter.
        let s = soup(&[&a, &a], &[0.5, 0.5]).unwrap();
        let diff = logprobs(&m, Some(&a))
            .iter()
            .zip(&logprobs(&m, Some(&s)))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "{name} self-soup: {diff}");
    }
}

#[test]
fn soup_saves_as_a_peft_adapter_and_loads_back_exactly() {
    let m = model("qwen2", DType::F32);
    let a = adapter("qwen2", &m);
    let b = other_adapter(&m, 9);
    let s = soup(&[&a, &b], &[0.25, 0.75]).unwrap();
    assert_eq!(s.config.r, 6);
    assert_eq!(s.config.scale_for_rank(6), 1.0);
    let dir = tempfile::tempdir().unwrap();
    s.save(dir.path(), "../model").unwrap();
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["r"], 6);
    assert_eq!(cfg["lora_alpha"].as_f64(), Some(6.0));
    let back = Adapter::load(dir.path(), &m.config, &Device::Cpu).unwrap();
    for layer in 0..m.config.num_layers {
        for t in Target::ALL {
            let x = s.delta(layer, t).unwrap().unwrap();
            let y = back.delta(layer, t).unwrap().unwrap();
            assert_eq!(max_abs(&x, &y), 0.0, "layer {layer} {t:?}");
        }
    }
}

#[test]
fn mismatched_inputs_are_typed_errors() {
    let m = model("qwen2", DType::F32);
    let a = adapter("qwen2", &m);
    assert!(matches!(soup(&[], &[]), Err(SoupError::Empty)));
    assert!(matches!(
        soup(&[&a, &a], &[1.0]),
        Err(SoupError::LambdaCount {
            expected: 2,
            found: 1
        })
    ));
    assert!(matches!(
        soup(&[&a, &a], &[0.5, f64::NAN]),
        Err(SoupError::NonFiniteLambda { index: 1, .. })
    ));
    let mut short = a.clone();
    short.layers.pop();
    assert!(matches!(
        soup(&[&a, &short], &[0.5, 0.5]),
        Err(SoupError::LayerCount {
            index: 1,
            expected: 2,
            found: 1
        })
    ));
    let q_only = Adapter::new(
        &m.config,
        LoraConfig {
            targets: vec![Target::Q],
            ..Default::default()
        },
        0,
        &Device::Cpu,
    )
    .unwrap();
    let err = soup(&[&a, &q_only], &[0.5, 0.5]).unwrap_err();
    assert!(
        matches!(
            err,
            SoupError::Targets {
                index: 1,
                layer: 0,
                target: Target::K,
                present: false
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not adapt `k_proj`"), "{err}");
    // An adapter of another base model (llama: q_proj is [128, 64], qwen2's [64, 64]).
    let llama = model("llama", DType::F32);
    let other = adapter("llama", &llama);
    let err = soup(&[&a, &other], &[0.5, 0.5]).unwrap_err();
    assert!(matches!(err, SoupError::Shape { index: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("same base model"), "{err}");
}
