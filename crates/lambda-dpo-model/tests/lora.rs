//! LoRA behaviour: gradients reach exactly the adapter, a fresh adapter is a no-op, disabling
//! an adapter gives the base model, PEFT files round-trip, dropout is seeded, and merged
//! exports score like base + adapter. Also sharded checkpoints and the bf16 path.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::*;
use lambda_dpo_model::{
    export::merge_and_save, Adapter, LoraConfig, LoraRun, Model, ScoreOptions, ScoreRequest,
};

fn reqs(exp: &Expected) -> Vec<ScoreRequest<'_>> {
    exp.cases
        .iter()
        .map(|c| ScoreRequest {
            ids: &c.input_ids,
            start: c.completion_start,
        })
        .collect()
}

fn scores(model: &Model, exp: &Expected, lora: Option<LoraRun<'_>>) -> Vec<f32> {
    model
        .score(&reqs(exp), lora, ScoreOptions::default())
        .unwrap()
        .token_logprobs
        .to_vec1()
        .unwrap()
}

/// Every base tensor of the model (weights, biases, norms, embeddings).
fn base_tensors(model: &Model) -> Vec<Tensor> {
    let mut v = vec![
        model.embed_tokens.clone(),
        model.norm.clone(),
        model.lm_head.clone(),
    ];
    for l in &model.layers {
        v.push(l.input_norm.clone());
        v.push(l.post_attention_norm.clone());
        for p in &l.proj {
            v.push(p.weight.clone());
            v.extend(p.bias.clone());
        }
    }
    v
}

#[test]
fn one_backward_reaches_every_lora_var_and_no_base_weight() {
    for name in ["llama", "qwen2"] {
        let exp = expected(name);
        let model = model(name, DType::F32);
        // A fresh adapter (B = 0): A still gets a gradient only through B, so train one step's
        // worth of non-zero B by loading the fixture adapter instead.
        let adapter = adapter(name, &model);
        let s = model
            .score(
                &reqs(&exp),
                Some(LoraRun {
                    adapter: &adapter,
                    dropout_seed: None,
                }),
                ScoreOptions::default(),
            )
            .unwrap();
        let grads = s.sums.sum_all().unwrap().backward().unwrap();
        for (key, var) in adapter.named_vars() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: {key} has no gradient"));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(norm > 0.0, "{name}: {key} has an all-zero gradient");
        }
        for t in base_tensors(&model) {
            assert!(
                grads.get(&t).is_none(),
                "{name}: a frozen base tensor of shape {:?} received a gradient",
                t.dims()
            );
        }
        // Nothing weight-shaped is left in the store either: candle's own matmul would leave
        // an unnamed ∂L/∂(Wᵀ) behind for every projection; the frozen matmul never builds it.
        let lora_ids: Vec<_> = adapter.vars().iter().map(|v| v.as_tensor().id()).collect();
        let weight_shapes: Vec<Vec<usize>> = base_tensors(&model)
            .iter()
            .filter(|t| t.rank() == 2)
            .flat_map(|t| [t.dims().to_vec(), t.t().unwrap().dims().to_vec()])
            .collect();
        for id in grads.get_ids() {
            let g = grads.get_id(*id).unwrap();
            if !lora_ids.contains(id) {
                assert!(
                    !weight_shapes.contains(&g.dims().to_vec()),
                    "{name}: a weight-shaped gradient {:?} was materialised",
                    g.dims()
                );
            }
        }
    }
}

#[test]
fn fresh_adapter_is_bit_identical_and_disabled_adapter_is_the_base() {
    for name in ["llama", "qwen2"] {
        let exp = expected(name);
        let model = model(name, DType::F32);
        let base = scores(&model, &exp, None);
        let fresh = Adapter::new(&model.config, LoraConfig::default(), 7, &Device::Cpu).unwrap();
        let with_fresh = scores(
            &model,
            &exp,
            Some(LoraRun {
                adapter: &fresh,
                dropout_seed: None,
            }),
        );
        assert_eq!(
            base, with_fresh,
            "{name}: B = 0 must not change a single bit"
        );
        // A trained adapter changes the outputs; "disabled" (no LoraRun) is the base model,
        // which equals transformers' base numbers.
        let trained = adapter(name, &model);
        let on = scores(
            &model,
            &exp,
            Some(LoraRun {
                adapter: &trained,
                dropout_seed: None,
            }),
        );
        assert!(on.iter().zip(&base).any(|(a, b)| (a - b).abs() > 1e-2));
        let want: Vec<f64> = exp.cases.iter().flat_map(|c| c.base.clone()).collect();
        let got: Vec<f64> = base.iter().map(|&x| x as f64).collect();
        assert!(max_abs_diff(&got, &want) < 1e-4);
    }
}

#[test]
fn fresh_adapter_targets_all_seven_projections_with_zero_b() {
    let model = model("llama", DType::F32);
    let a = Adapter::new(&model.config, LoraConfig::default(), 1, &Device::Cpu).unwrap();
    assert_eq!(a.named_vars().len(), 2 * 7 * model.config.num_layers);
    for (k, v) in a.named_vars() {
        let sum: f32 = v
            .as_tensor()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        if k.contains("lora_B") {
            assert_eq!(sum, 0.0, "{k}");
        } else {
            assert!(sum > 0.0, "{k}");
        }
    }
}

#[test]
fn peft_adapter_round_trips_through_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let model = model("qwen2", DType::F32);
    let original = adapter("qwen2", &model);
    original.save(dir.path(), "../model").unwrap();
    let reloaded = Adapter::load(dir.path(), &model.config, &Device::Cpu).unwrap();
    assert_eq!(original.config, reloaded.config);
    let a: HashMap<String, Vec<f32>> = original
        .named_vars()
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    for (k, v) in reloaded.named_vars() {
        assert_eq!(
            a[&k],
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            "{k}"
        );
    }
    // The files are PEFT's: same key set as the fixture written by peft itself.
    let ours =
        candle_core::safetensors::load(dir.path().join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    let peft = candle_core::safetensors::load(
        fixture("qwen2").join("adapter/adapter_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let mut ok: Vec<_> = ours.keys().collect();
    let mut pk: Vec<_> = peft.keys().collect();
    ok.sort();
    pk.sort();
    assert_eq!(ok, pk);
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 4);
    assert_eq!(cfg["target_modules"].as_array().unwrap().len(), 7);
}

#[test]
fn dropout_is_seeded_and_off_without_a_seed() {
    let exp = expected("llama");
    let model = model("llama", DType::F32);
    let mut a = adapter("llama", &model);
    a.config.dropout = 0.5;
    let plain = scores(
        &model,
        &exp,
        Some(LoraRun {
            adapter: &a,
            dropout_seed: None,
        }),
    );
    let s1 = scores(
        &model,
        &exp,
        Some(LoraRun {
            adapter: &a,
            dropout_seed: Some(1),
        }),
    );
    let s1b = scores(
        &model,
        &exp,
        Some(LoraRun {
            adapter: &a,
            dropout_seed: Some(1),
        }),
    );
    let s2 = scores(
        &model,
        &exp,
        Some(LoraRun {
            adapter: &a,
            dropout_seed: Some(2),
        }),
    );
    assert_eq!(s1, s1b);
    assert_ne!(s1, s2);
    assert_ne!(s1, plain);
}

#[test]
fn exported_merged_model_scores_like_base_plus_adapter() {
    for name in ["llama", "qwen2"] {
        let exp = expected(name);
        let out = tempfile::tempdir().unwrap();
        let base = model(name, DType::F32);
        let a = adapter(name, &base);
        let summary = merge_and_save(&fixture(name).join("model"), &a, out.path()).unwrap();
        assert_eq!(summary.merged, 7 * base.config.num_layers);
        assert!(summary.copied_files.contains(&"tokenizer.json".to_string()));
        let merged = Model::load(out.path(), DType::F32, &Device::Cpu).unwrap();
        let got: Vec<f64> = scores(&merged, &exp, None)
            .iter()
            .map(|&x| x as f64)
            .collect();
        let want: Vec<f64> = exp.cases.iter().flat_map(|c| c.adapter.clone()).collect();
        let d = max_abs_diff(&got, &want);
        assert!(d < 1e-4, "{name}: merged vs peft adapter: {d:e}");
        // Tied embeddings stay tied: no lm_head tensor is invented.
        let st = candle_core::safetensors::load(out.path().join("model.safetensors"), &Device::Cpu)
            .unwrap();
        assert_eq!(
            st.contains_key("lm_head.weight"),
            !base.config.tie_word_embeddings
        );
    }
}

#[test]
fn sharded_checkpoint_loads_identically() {
    let src = fixture("llama").join("model");
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let all = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let tensors: Vec<(String, Tensor)> = part
            .iter()
            .map(|n| ((*n).clone(), all[*n].clone()))
            .collect();
        lambda_dpo_model::io::write_safetensors(&dir.path().join(file), &tensors, None).unwrap();
        for n in part {
            weight_map.insert((*n).clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let exp = expected("llama");
    let single = scores(&model("llama", DType::F32), &exp, None);
    let sharded = scores(
        &Model::load(dir.path(), DType::F32, &Device::Cpu).unwrap(),
        &exp,
        None,
    );
    assert_eq!(single, sharded);
}

#[test]
fn bf16_compute_stays_close_to_f32() {
    for name in ["llama", "qwen2"] {
        let exp = expected(name);
        let m32 = model(name, DType::F32);
        let m16 = model(name, DType::BF16);
        let a = adapter(name, &m32);
        let lora = Some(LoraRun {
            adapter: &a,
            dropout_seed: None,
        });
        let s32 = scores(&m32, &exp, lora);
        let s16 = scores(&m16, &exp, lora);
        let mean_abs: f32 = s32
            .iter()
            .zip(&s16)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / s32.len() as f32;
        // bf16 has 8 bits of mantissa; on a random tiny model per-token log-probs stay within
        // a few tenths on average (the LoRA branch and softmax statistics are f32).
        assert!(mean_abs < 0.25, "{name}: mean |bf16 − f32| = {mean_abs}");
        assert!(s16.iter().all(|x| x.is_finite() && *x <= 0.0));
    }
}

#[test]
fn merging_an_adapter_in_memory_gives_the_adapter_model() {
    let exp = expected("qwen2");
    let mut m = model("qwen2", DType::F32);
    let a = adapter("qwen2", &m);
    assert_eq!(m.merge_adapter(&a).unwrap(), 14);
    let got: Vec<f64> = scores(&m, &exp, None).iter().map(|&x| x as f64).collect();
    let want: Vec<f64> = exp.cases.iter().flat_map(|c| c.adapter.clone()).collect();
    assert!(max_abs_diff(&got, &want) < 1e-4);
}
