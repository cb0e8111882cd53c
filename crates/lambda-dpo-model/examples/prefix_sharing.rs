//! Times one preference list's forward + backward with and without prefix sharing.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p lambda-dpo-model --example prefix_sharing \
//!     [-- P C N REPEATS]                     (defaults: 128 128 4 10)
//! ```
//!
//! Model: the random tiny Llama of `benchmarks/logprobs_transformers.py --make` (hidden 256,
//! intermediate 688, 4 layers, 8 heads / 2 kv heads, vocab 2000, untied, f32), written here
//! with seeded random weights (N(0, 0.02²)) so no Python is needed. Adapter: LoRA r 8, α 16 on
//! all seven projections with non-zero B (as after some training), dropout 0.05 with a seed (the
//! training path). One list: a P-token prompt and N responses of C tokens.
//!
//! Each repeat runs, interleaved (in alternating order) so that machine load and allocator
//! state hit both alike: separate forwards
//! (`Model::score` over N rows of P + C) and the packed forward (`Model::score_shared`, P +
//! N·(C − 1) columns), each as forward + backward of `Σ g_i ℓ_i` (the trainer's surrogate), and
//! each as a graph-free forward (the reference pass). Prints the median of each and the ratios.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use lambda_dpo_model::{Adapter, LoraConfig, LoraRun, Model, ScoreOptions, ScoreRequest};

/// SplitMix64 → uniform (0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + 1e-12
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next(), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn tensor(&mut self, shape: &[usize], std: f64) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (self.normal() * std) as f32).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }
}

/// Writes the bench model's HF folder (config.json + model.safetensors) into `dir`.
fn write_model(dir: &std::path::Path) {
    let (v, e, i, layers, h, hk) = (2000, 256, 688, 4, 8, 2);
    let d = e / h;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": v, "hidden_size": e, "intermediate_size": i,
        "num_hidden_layers": layers, "num_attention_heads": h, "num_key_value_heads": hk,
        "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "attention_bias": false, "mlp_bias": false,
        "torch_dtype": "float32"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    let mut rng = Rng(20240726);
    let mut w = std::collections::HashMap::new();
    w.insert(
        "model.embed_tokens.weight".to_string(),
        rng.tensor(&[v, e], 0.02),
    );
    w.insert("lm_head.weight".to_string(), rng.tensor(&[v, e], 0.02));
    let ones = Tensor::ones(e, DType::F32, &Device::Cpu).expect("ones");
    w.insert("model.norm.weight".to_string(), ones.clone());
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for (name, shape) in [
            ("self_attn.q_proj", [h * d, e]),
            ("self_attn.k_proj", [hk * d, e]),
            ("self_attn.v_proj", [hk * d, e]),
            ("self_attn.o_proj", [e, h * d]),
            ("mlp.gate_proj", [i, e]),
            ("mlp.up_proj", [i, e]),
            ("mlp.down_proj", [e, i]),
        ] {
            w.insert(format!("{p}.{name}.weight"), rng.tensor(&shape, 0.02));
        }
        w.insert(format!("{p}.input_layernorm.weight"), ones.clone());
        w.insert(format!("{p}.post_attention_layernorm.weight"), ones.clone());
    }
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).expect("safetensors");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("P C N REPEATS are integers"))
        .collect();
    let arg = |k: usize, default: usize| args.get(k).copied().unwrap_or(default);
    let (p, c, n, repeats) = (arg(0, 128), arg(1, 128), arg(2, 4), arg(3, 10));

    let dir = tempfile::tempdir().expect("tempdir");
    write_model(dir.path());
    let model = Model::load(dir.path(), DType::F32, &Device::Cpu).expect("model");
    let adapter = Adapter::new(&model.config, LoraConfig::default(), 1, &Device::Cpu).unwrap();
    let mut rng = Rng(7);
    for (k, var) in adapter.named_vars() {
        if k.contains("lora_B") {
            let shape = var.as_tensor().dims().to_vec();
            var.set(&rng.tensor(&shape, 0.01)).unwrap();
        }
    }

    let mut ids =
        |len: usize| -> Vec<u32> { (0..len).map(|_| (rng.next() * 1997.0) as u32 + 3).collect() };
    let prompt = ids(p);
    let responses: Vec<Vec<u32>> = (0..n).map(|_| ids(c)).collect();
    let full: Vec<Vec<u32>> = responses
        .iter()
        .map(|r| prompt.iter().chain(r).copied().collect())
        .collect();
    let requests: Vec<ScoreRequest<'_>> = full
        .iter()
        .map(|ids| ScoreRequest { ids, start: p })
        .collect();
    let g = Tensor::from_vec(
        (0..n).map(|i| 0.1 * (i as f32 + 1.0)).collect::<Vec<_>>(),
        n,
        &Device::Cpu,
    )
    .unwrap(); // fixed ∂L/∂ℓ
    let opts = ScoreOptions::default();
    let lora = |step: u64| {
        Some(LoraRun {
            adapter: &adapter,
            dropout_seed: Some(step),
        })
    };
    let train_step = |shared: bool, step: u64| -> f64 {
        let t = Instant::now();
        let s = if shared {
            model.score_shared(&prompt, &responses, lora(step), opts)
        } else {
            model.score(&requests, lora(step), opts)
        }
        .unwrap();
        let grads = (s.sums * &g)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(adapter.vars()[0].as_tensor()).is_some());
        t.elapsed().as_secs_f64()
    };
    let forward = |shared: bool| -> f64 {
        let t = Instant::now();
        if shared {
            model.score_shared(&prompt, &responses, None, opts)
        } else {
            model.score(&requests, None, opts)
        }
        .unwrap();
        t.elapsed().as_secs_f64()
    };

    let (mut sep, mut sh, mut sep_f, mut sh_f) = (vec![], vec![], vec![], vec![]);
    for step in 0..repeats as u64 + 2 {
        // Two warm-up repeats (allocator, page faults) are not counted.
        // Alternating order (A B B A …): whichever runs second finds the allocator warm.
        let (a, b, x, y) = if step % 2 == 0 {
            let (a, b) = (train_step(false, step), train_step(true, step));
            (a, b, forward(false), forward(true))
        } else {
            let (b, a) = (train_step(true, step), train_step(false, step));
            let (y, x) = (forward(true), forward(false));
            (a, b, x, y)
        };
        if step >= 2 {
            sep.push(a);
            sh.push(b);
            sep_f.push(x);
            sh_f.push(y);
        }
    }
    let columns_sep = n * (p + c);
    let columns_sh = p + n * (c - 1);
    println!(
        "P {p}, C {c}, N {n}, {repeats} repeats, RAYON_NUM_THREADS {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    println!(
        "columns: separate {columns_sep}, shared {columns_sh} (ratio {:.2})",
        columns_sep as f64 / columns_sh as f64
    );
    let (a, b) = (median(sep), median(sh));
    println!(
        "forward+backward: separate {:.1} ms, shared {:.1} ms, speed-up {:.2}x",
        a * 1e3,
        b * 1e3,
        a / b
    );
    let (x, y) = (median(sep_f), median(sh_f));
    println!(
        "forward (no graph): separate {:.1} ms, shared {:.1} ms, speed-up {:.2}x",
        x * 1e3,
        y * 1e3,
        x / y
    );
}
