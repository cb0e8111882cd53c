//! SVD-LoRA (Panacea): a fresh λ-conditioned adapter is a no-op at every λ; λ reaches the
//! output; every variable (A, B, σ, s) receives its exact gradient; merging at λ equals running
//! the adapter at λ; the files round-trip; misuse is a typed error.

mod common;

use candle_core::{DType, Device, Tensor};
use common::model;
use lambda_dpo_model::{soup, Adapter, LoraConfig, LoraRun, Model, ScoreOptions, ScoreRequest};

const M: usize = 3;

fn svd_config() -> LoraConfig {
    LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        lambda_dims: M,
        ..Default::default()
    }
}

/// An SVD-LoRA adapter with deterministic non-zero B, σ and s (a trained-looking adapter).
fn trained(m: &Model) -> Adapter {
    let a = Adapter::new(&m.config, svd_config(), 11, &Device::Cpu).unwrap();
    for (j, (k, v)) in a.named_vars().into_iter().enumerate() {
        // A keeps its random init; B, σ and s get deterministic values around their roles.
        let (offset, amplitude) = if k.contains("lora_B") {
            (0.0, 0.08)
        } else if k.ends_with("sigma") {
            (1.0, 0.5)
        } else if k.ends_with("lambda_scale") {
            (2.0, 1.0)
        } else {
            continue;
        };
        let shape = v.as_tensor().shape().clone();
        let vals: Vec<f32> = (0..shape.elem_count())
            .map(|i| offset + amplitude * ((i * 7 + j * 13) as f32).sin())
            .collect();
        v.set(&Tensor::from_vec(vals, shape, &Device::Cpu).unwrap())
            .unwrap();
    }
    a
}

fn sequences() -> Vec<Vec<u32>> {
    vec![
        vec![5, 17, 300, 42, 99, 1, 64],
        vec![600, 2, 3, 4, 250, 251, 252, 8, 9, 10],
    ]
}

/// Token log-probs of [`sequences`] (and their summed total, with a graph).
fn score(m: &Model, a: Option<&Adapter>) -> (Vec<f32>, Tensor) {
    let seqs = sequences();
    let reqs: Vec<ScoreRequest<'_>> = seqs
        .iter()
        .map(|ids| ScoreRequest { ids, start: 2 })
        .collect();
    let lora = a.map(|adapter| LoraRun {
        adapter,
        dropout_seed: None,
    });
    let s = m.score(&reqs, lora, ScoreOptions::default()).unwrap();
    (
        s.token_logprobs.to_vec1().unwrap(),
        s.sums.sum_all().unwrap(),
    )
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn fresh_adapter_is_a_no_op_at_every_lambda() {
    for name in ["llama", "qwen2"] {
        let m = model(name, DType::F32);
        let a = Adapter::new(&m.config, svd_config(), 0, &Device::Cpu).unwrap();
        assert!(a.is_lambda_conditioned());
        let (base, _) = score(&m, None);
        for lambda in [[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]] {
            let (got, _) = score(&m, Some(&a.with_lambda(&lambda).unwrap()));
            assert_eq!(got, base, "{name} at {lambda:?}");
        }
        // r learned singular values + m λ slots per projection, σ and s start at 1.
        let (key, v) = &a.named_vars()[0];
        assert!(key.ends_with("q_proj.lora_A.weight"), "{key}");
        assert_eq!(v.as_tensor().dim(0).unwrap(), 4 + M);
    }
}

#[test]
fn lambda_reaches_the_output_and_merging_at_lambda_equals_running_at_lambda() {
    for name in ["llama", "qwen2"] {
        let m = model(name, DType::F32);
        let a = trained(&m);
        let l1 = [1.0, 0.0, 0.0];
        let l2 = [0.0, 0.2, 0.8];
        let (y1, _) = score(&m, Some(&a.with_lambda(&l1).unwrap()));
        let (y2, _) = score(&m, Some(&a.with_lambda(&l2).unwrap()));
        assert!(max_diff(&y1, &y2) > 1e-3, "{name}: λ changes nothing");
        // The merged weights at λ (what `export --lambda` writes) compute the same thing.
        let mut merged = model(name, DType::F32);
        merged.merge_adapter(&a.with_lambda(&l2).unwrap()).unwrap();
        let (ym, _) = score(&merged, None);
        assert!(max_diff(&ym, &y2) < 1e-4, "{name}: {}", max_diff(&ym, &y2));
    }
}

#[test]
fn every_variable_gets_its_exact_gradient() {
    let m = model("llama", DType::F32);
    let a = trained(&m);
    let lambda = [0.5, 0.3, 0.2];
    let run = a.with_lambda(&lambda).unwrap();
    let (_, total) = score(&m, Some(&run));
    let grads = total.backward().unwrap();
    let vars = a.named_vars();
    assert_eq!(vars.len(), 7 * 4 * m.config.num_layers);
    for (k, v) in &vars {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{k} has no gradient"));
        let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(norm > 0.0, "{k}: zero gradient");
    }
    // Central finite differences on σ and s of one projection (the new parameters), in f64
    // arithmetic on f32 log-probs: agreement to ~1e-2 relative is what f32 allows.
    for suffix in [
        "self_attn.v_proj.lora_S.sigma",
        "mlp.down_proj.lora_S.lambda_scale",
    ] {
        let (k, v) = vars
            .iter()
            .find(|(k, _)| k.contains("layers.1.") && k.ends_with(suffix))
            .unwrap();
        let analytic: Vec<f32> = grads.get(v.as_tensor()).unwrap().to_vec1().unwrap();
        let orig: Vec<f32> = v.as_tensor().to_vec1().unwrap();
        let eps = 1e-2f32;
        let f = |x: &[f32]| -> f64 {
            v.set(&Tensor::from_slice(x, x.len(), &Device::Cpu).unwrap())
                .unwrap();
            let (_, t) = score(&m, Some(&a.with_lambda(&lambda).unwrap()));
            t.to_scalar::<f32>().unwrap() as f64
        };
        let mut plus = orig.clone();
        plus[0] += eps;
        let mut minus = orig.clone();
        minus[0] -= eps;
        let numeric = (f(&plus) - f(&minus)) / (2.0 * eps as f64);
        f(&orig);
        let rel = (numeric - analytic[0] as f64).abs() / numeric.abs().max(1e-3);
        assert!(
            rel < 2e-2,
            "{k}: analytic {} vs numeric {numeric}",
            analytic[0]
        );
    }
}

#[test]
fn files_round_trip_exactly() {
    let m = model("qwen2", DType::F32);
    let a = trained(&m);
    let dir = tempfile::tempdir().unwrap();
    a.save(dir.path(), "base").unwrap();
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["lambda_dims"], M);
    assert_eq!(cfg["r"], 4);
    let back = Adapter::load(dir.path(), &m.config, &Device::Cpu).unwrap();
    assert_eq!(back.config.lambda_dims, M);
    let lambda = [0.1, 0.6, 0.3];
    let (want, _) = score(&m, Some(&a.with_lambda(&lambda).unwrap()));
    let (got, _) = score(&m, Some(&back.with_lambda(&lambda).unwrap()));
    assert_eq!(got, want);
    // A file whose λ-scale tensors are missing is refused with the key it lacks.
    let st = dir.path().join("adapter_model.safetensors");
    let tensors = candle_core::safetensors::load(&st, &Device::Cpu).unwrap();
    let kept: std::collections::HashMap<String, Tensor> = tensors
        .into_iter()
        .filter(|(k, _)| !k.ends_with("lambda_scale"))
        .collect();
    candle_core::safetensors::save(&kept, &st).unwrap();
    let err = Adapter::load(dir.path(), &m.config, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("lora_S.lambda_scale"), "{err}");
}

#[test]
fn misuse_is_a_typed_error() {
    let m = model("llama", DType::F32);
    let a = trained(&m);
    // Running without a λ.
    let seqs = sequences();
    let reqs = [ScoreRequest {
        ids: &seqs[0],
        start: 2,
    }];
    let lora = LoraRun {
        adapter: &a,
        dropout_seed: None,
    };
    let err = m
        .score(&reqs, Some(lora), ScoreOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("--lambda"), "{err}");
    assert!(a.delta(0, lambda_dpo_model::Target::Q).is_err());
    // λ of the wrong length, off the simplex, negative.
    for bad in [&[0.5, 0.5][..], &[0.5, 0.5, 0.5], &[1.2, -0.1, -0.1]] {
        let err = a.with_lambda(bad).unwrap_err().to_string();
        assert!(err.contains("λ"), "{err}");
    }
    // A plain adapter has no λ; a soup takes only plain adapters.
    let plain = Adapter::new(&m.config, LoraConfig::default(), 0, &Device::Cpu).unwrap();
    assert!(plain
        .with_lambda(&[1.0])
        .unwrap_err()
        .to_string()
        .contains("not λ-conditioned"));
    let err = soup(&[&plain, &a], &[0.5, 0.5]).unwrap_err();
    assert!(err.to_string().contains("SVD-LoRA"), "{err}");
}
