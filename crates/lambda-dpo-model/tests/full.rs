//! Full fine-tuning: every weight gets a gradient that agrees with finite differences (the
//! custom lm-head backward included, tied and untied), and trained weights save as a folder
//! that loads back to the same outputs.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use lambda_dpo_model::{Model, ScoreOptions, ScoreRequest};

fn loss(model: &Model, exp: &Expected) -> Tensor {
    let reqs: Vec<ScoreRequest<'_>> = exp
        .cases
        .iter()
        .take(3)
        .map(|c| ScoreRequest {
            ids: &c.input_ids,
            start: c.completion_start,
        })
        .collect();
    let w = Tensor::new(&[1.0f32, -0.5, 0.25], &Device::Cpu).unwrap();
    (model
        .score(
            &reqs,
            None,
            ScoreOptions {
                logit_rows_per_chunk: 5,
            },
        )
        .unwrap()
        .sums
        * w)
        .unwrap()
        .sum_all()
        .unwrap()
}

#[test]
fn every_weight_gets_a_gradient_matching_finite_differences() {
    for name in ["llama", "qwen2"] {
        let exp = expected(name);
        let mut m = model(name, DType::F32);
        let vars = m.make_trainable().unwrap();
        let grads = loss(&m, &exp).backward().unwrap();
        for (key, v) in &vars {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: {key} has no gradient"));
            let n: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(n > 0.0, "{name}: {key} has a zero gradient");
        }
        // Central differences on the largest-gradient entry of a few tensors.
        for key in [
            "model.embed_tokens.weight",
            "lm_head.weight",
            "model.norm.weight",
            "model.layers.1.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.bias",
        ] {
            let Some((_, v)) = vars.iter().find(|(k, _)| k == key) else {
                continue;
            };
            let g: Vec<f32> = grads
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let (idx, &analytic) = g
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap();
            let base: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let eps = 1e-2f32;
            let at = |delta: f32| -> f64 {
                let mut p = base.clone();
                p[idx] += delta;
                v.set(&Tensor::from_vec(p, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                f64::from(loss(&m, &exp).to_scalar::<f32>().unwrap())
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * f64::from(eps));
            v.set(&Tensor::from_vec(base, v.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let rel = (numeric - f64::from(analytic)).abs() / f64::from(analytic.abs());
            assert!(
                rel < 2e-2,
                "{name}: {key}[{idx}]: analytic {analytic}, numeric {numeric}"
            );
        }
    }
}

#[test]
fn trained_weights_save_as_a_loadable_folder() {
    let exp = expected("qwen2");
    let mut m = model("qwen2", DType::F32);
    let vars = m.make_trainable().unwrap();
    // Perturb one weight so the saved model differs from the fixture.
    let (_, v) = &vars[3];
    v.set(&(v.as_tensor() * 1.5).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    m.save_pretrained(&fixture("qwen2").join("model"), dir.path())
        .unwrap();
    let reloaded = Model::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let a: f32 = loss(&m, &exp).to_scalar().unwrap();
    let b: f32 = loss(&reloaded, &exp).to_scalar().unwrap();
    assert_eq!(a, b);
    assert!(dir.path().join("tokenizer.json").is_file());
    let e = model("qwen2", DType::BF16)
        .make_trainable()
        .unwrap_err()
        .to_string();
    assert!(e.contains("f32"), "{e}");
}
