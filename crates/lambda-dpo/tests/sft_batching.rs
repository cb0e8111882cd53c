//! SFT micro-batching: the `batch_size` examples of a micro-batch run as one forward (packed
//! into one row) and one backward, and give what running them one at a time gives (float
//! rounding).
//!
//! - the model API: [`Model::score_packed`] (what the trainer runs) and [`Model::score_rows`]
//!   (right-padded rows) over sequences of very different lengths, one LoRA dropout seed per
//!   sequence, equal scoring each alone with its seed (log-probs and the gradient of a weighted
//!   sum of per-sequence losses, with dropout on), also checkpointed; and the comparison can
//!   fail: the padded batch with attention allowed onto the pads differs from it;
//! - the training loop on the tiny Llama fixture: `batch_size = 4 × grad_accum = 1` logs the
//!   losses and gradient norms of `batch_size = 1 × grad_accum = 4` and ends with the same
//!   weights, for full fine-tuning and for LoRA (with dropout: the per-row seeds are the
//!   per-example seeds), and with gradient checkpointing. Checked to fail when the examples
//!   see what they should not: right-padded rows with the mask opened onto the pads (first
//!   logged loss 9.42 vs 9.98), or packed examples attending to the earlier ones (10.02 vs
//!   9.98).

mod common;

use common::*;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use lambda_dpo::train::{train, RunOptions, TrainConfig};
use lambda_dpo_model::{Adapter, LoraRun, Model, ScoreOptions, ScoreRequest, Scored};

fn rows() -> Vec<Vec<u32>> {
    let mut r = Lcg(77);
    vec![r.ids(3), r.ids(17), r.ids(8), r.ids(29)]
}

fn weighted(s: &Scored) -> candle_core::Result<Tensor> {
    let w: Vec<f32> = (0..s.sums.dim(0)?).map(|b| (b + 1) as f32).collect();
    let w = Tensor::from_vec(w, s.sums.dim(0)?, s.sums.device())?;
    (&s.sums * w)?.sum_all()
}

#[test]
fn batched_rows_with_row_seeds_equal_one_forward_per_row() {
    let m = Model::load(&fixture("llama").join("model"), DType::F32, &Device::Cpu).unwrap();
    let mut a = Adapter::load(&fixture("llama").join("adapter"), &m.config, &Device::Cpu).unwrap();
    a.config.dropout = 0.1;
    let vars = a.vars();
    let ids = rows();
    let seeds = [11u64, 12, 13, 14];
    let requests: Vec<ScoreRequest<'_>> = ids
        .iter()
        .map(|ids| ScoreRequest { ids, start: 1 })
        .collect();
    let opts = ScoreOptions::default();
    let lora = |seed| {
        Some(LoraRun {
            adapter: &a,
            dropout_seed: seed,
        })
    };

    // One at a time: log-probs, and the gradient of the same weighted sum, accumulated.
    let mut alone_logps = Vec::new();
    let mut alone_grads: Vec<Tensor> = Vec::new();
    for (b, (r, &seed)) in requests.iter().zip(&seeds).enumerate() {
        let s = m.score(&[*r], lora(Some(seed)), opts).unwrap();
        alone_logps.extend(values(&s.token_logprobs));
        let store = ((&s.sums * (b + 1) as f64).unwrap().sum_all().unwrap())
            .backward()
            .unwrap();
        let g: Vec<Tensor> = vars
            .iter()
            .map(|v| store.get(v.as_tensor()).unwrap().clone())
            .collect();
        alone_grads = if alone_grads.is_empty() {
            g
        } else {
            alone_grads
                .iter()
                .zip(&g)
                .map(|(x, y)| (x + y).unwrap())
                .collect()
        };
    }

    // One right-padded forward with a seed per row: the same values and gradients.
    let batch = m
        .score_rows(&requests, lora(None), Some(&seeds), opts)
        .unwrap();
    let batch_logps = values(&batch.token_logprobs);
    assert_eq!(batch_logps.len(), alone_logps.len());
    for (x, y) in batch_logps.iter().zip(&alone_logps) {
        assert!(
            (x - y).abs() < 1e-5 * y.abs().max(1.0),
            "log-prob {x} vs {y}"
        );
    }
    let store = weighted(&batch).unwrap().backward().unwrap();
    let got: Vec<Tensor> = vars
        .iter()
        .map(|v| store.get(v.as_tensor()).unwrap().clone())
        .collect();
    let rel = max_rel("batched gradients", &got, &alone_grads, true);
    eprintln!("batched vs one at a time: gradients {rel:.1e} of their max");
    assert!(rel < 1e-5, "gradients differ by {rel:e}");

    // Packed into one row (what the trainer runs), and both layouts checkpointed: the same
    // values, the same gradients.
    let packed = m
        .score_packed(&requests, lora(None), Some(&seeds), opts)
        .unwrap();
    assert_eq!(packed.offsets, batch.offsets);
    for (x, y) in values(&packed.token_logprobs).iter().zip(&alone_logps) {
        assert!((x - y).abs() < 1e-5 * y.abs().max(1.0), "packed {x} vs {y}");
    }
    let store = weighted(&packed).unwrap().backward().unwrap();
    let got: Vec<Tensor> = vars
        .iter()
        .map(|v| store.get(v.as_tensor()).unwrap().clone())
        .collect();
    let rel = max_rel("packed gradients", &got, &alone_grads, true);
    eprintln!("packed vs one at a time: gradients {rel:.1e} of their max");
    assert!(rel < 1e-5, "packed gradients differ by {rel:e}");
    for packed in [false, true] {
        let ck = if packed {
            m.score_packed_checkpointed(&requests, lora(None), Some(&seeds), opts)
        } else {
            m.score_rows_checkpointed(&requests, lora(None), Some(&seeds), opts)
        }
        .unwrap();
        for (x, y) in values(&ck.scored().token_logprobs).iter().zip(&alone_logps) {
            assert!(
                (x - y).abs() < 1e-5 * y.abs().max(1.0),
                "checkpointed {x} vs {y}"
            );
        }
        let got: Vec<Tensor> = ck
            .backward(weighted, &vars)
            .unwrap()
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let rel = max_rel("checkpointed gradients", &got, &alone_grads, true);
        assert!(
            rel < 1e-5,
            "checkpointed (packed {packed}) gradients differ by {rel:e}"
        );
    }

    // The dropout masks matter: one shared seed (what a plain batched `score` draws) differs.
    let shared = m.score(&requests, lora(Some(11)), opts).unwrap();
    let d = values(&shared.token_logprobs)
        .iter()
        .zip(&alone_logps)
        .fold(0.0f64, |mx, (x, y)| mx.max((x - y).abs()));
    assert!(
        d > 1e-3,
        "per-row seeds are not what makes the batch equal: {d}"
    );
    // A wrong number of seeds is an error, not a silent reuse.
    assert!(m
        .score_rows(&requests, lora(None), Some(&seeds[..3]), opts)
        .is_err());
    assert!(m
        .score_packed(&requests, lora(None), Some(&seeds[..3]), opts)
        .is_err());
}

/// The comparison above can fail: if real tokens could attend to the padding (no causal mask on
/// the pads), the short rows' hidden states would change by far more than the tolerance.
#[test]
fn attending_to_the_padding_would_change_the_short_rows() {
    let m = Model::load(&fixture("llama").join("model"), DType::F32, &Device::Cpu).unwrap();
    let ids = rows();
    let t = ids.iter().map(Vec::len).max().unwrap();
    let (short, len) = (&ids[0], ids[0].len());
    let mut padded = vec![0u32; ids.len() * t];
    for (b, r) in ids.iter().enumerate() {
        padded[b * t..b * t + r.len()].copy_from_slice(r);
    }
    let batch_ids = Tensor::from_vec(padded, (ids.len(), t), &Device::Cpu).unwrap();
    let positions: Vec<u32> = (0..t as u32).collect();
    let alone = m
        .hidden_states(
            &Tensor::from_slice(short, (1, len), &Device::Cpu).unwrap(),
            &positions[..len],
            None,
        )
        .unwrap();
    let row0 = |h: &Tensor| h.narrow(0, 0, 1).unwrap().narrow(1, 0, len).unwrap();
    let causal = m.hidden_states(&batch_ids, &positions, None).unwrap();
    let d_causal = max_rel(
        "causal",
        &[row0(&causal)],
        std::slice::from_ref(&alone),
        true,
    );
    assert!(d_causal < 1e-5, "right padding leaked: {d_causal:e}");
    let open = Tensor::zeros((t, t), DType::F32, &Device::Cpu).unwrap();
    let leaky = m
        .hidden_states_masked(&batch_ids, &positions, &open, None)
        .unwrap();
    let d_leaky = max_rel("leaky", &[row0(&leaky)], &[alone], true);
    eprintln!("short row vs alone: causal {d_causal:.1e}, attending to pads {d_leaky:.1e}");
    assert!(
        d_leaky > 1e-2,
        "a leaking mask would go unnoticed: {d_leaky:e}"
    );
}

/// SFT conversations of very different lengths (one or two turns, 1 to 23 words per message:
/// 103 to 185 tokens with the Llama template's ~100-token header), so every micro-batch is
/// padded. `max_length` must stay above them: cut to a common length, nothing would be padded
/// (a leaking padding mask then passes, as seen with `max_length = 96`).
fn write_sft(path: &Path, n: usize) {
    let words = [
        "apple", "river", "stone", "cloud", "amber", "lemon", "tiger", "orbit", "quiet", "maple",
    ];
    let mut lcg = Lcg(5);
    let mut rnd = |m: u64| lcg.below(m);
    let mut out = String::new();
    for i in 0..n {
        let mut say = |k: u64| -> String {
            (0..k)
                .map(|_| words[rnd(words.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        };
        let user = say(1 + (i as u64 * 7) % 13);
        let answer = say(1 + (i as u64 * 5) % 23);
        let mut messages = vec![
            serde_json::json!({"role": "user", "content": user}),
            serde_json::json!({"role": "assistant", "content": answer}),
        ];
        if i % 3 == 0 {
            messages.push(serde_json::json!({"role": "user", "content": say(4)}));
            messages.push(serde_json::json!({"role": "assistant", "content": say(9)}));
        }
        out.push_str(&serde_json::json!({ "messages": messages }).to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// Every tensor of every `.safetensors` file in `dir`.
fn weights(dir: &Path) -> HashMap<String, Tensor> {
    let mut all = HashMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            all.extend(candle_core::safetensors::load(&p, &Device::Cpu).unwrap());
        }
    }
    assert!(!all.is_empty(), "no weights in {}", dir.display());
    all
}

/// A finished run's logged `(loss, grad_norm)` per step and its product's weights.
///
/// AdamW's ε is 10⁻² here, not 10⁻⁸: with a tiny ε the update of an element whose gradient is
/// near zero is ~`lr · g/|g|`, which turns the float noise of an exactly-zero-ish gradient
/// element (10⁻⁷ of the largest) into a visible weight difference (2.5·10⁻⁴ of the max after 3
/// steps at lr 10⁻², seen with LoRA). With ε = 10⁻² the update is Lipschitz in the gradient,
/// so the final weights compare the gradients to the tolerance and not Adam's sign function.
fn run(dir: &Path, out: &str, extra: &str) -> (Vec<(f64, f64)>, HashMap<String, Tensor>) {
    let text = format!(
        "[model]\npath = \"{}\"\n[data]\ntrain = \"sft.jsonl\"\nmax_length = 1024\n[train]\nstage = \"sft\"\noutput_dir = \"{out}\"\nlearning_rate = 0.01\nmax_steps = 3\nwarmup_ratio = 0.0\nlr_schedule = \"constant\"\nseed = 3\nadam = {{ beta1 = 0.9, beta2 = 0.999, eps = 1e-2, weight_decay = 0.0 }}\n{extra}\n",
        fixture("llama").join("model").display()
    );
    let cfg_path = dir.join(format!("{out}.toml"));
    std::fs::write(&cfg_path, text).unwrap();
    let cfg = TrainConfig::load(&cfg_path, &[]).unwrap();
    let summary = train(&cfg, &RunOptions::default(), &mut |_| {}).unwrap();
    let logged = std::fs::read_to_string(cfg.train.output_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|r| Some((r.get("loss")?.as_f64()?, r.get("grad_norm")?.as_f64()?)))
        .collect();
    (logged, weights(&summary.adapter_dir.unwrap()))
}

fn assert_same_run(
    what: &str,
    a: &(Vec<(f64, f64)>, HashMap<String, Tensor>),
    b: &(Vec<(f64, f64)>, HashMap<String, Tensor>),
) {
    assert_eq!(a.0.len(), 3, "{what}: {:?}", a.0);
    assert_eq!(a.0.len(), b.0.len(), "{what}");
    for ((la, ga), (lb, gb)) in a.0.iter().zip(&b.0) {
        assert!(
            (la - lb).abs() < 1e-5 * lb.abs().max(1.0),
            "{what}: loss {a:?} vs {b:?}",
            a = a.0,
            b = b.0
        );
        assert!(
            (ga - gb).abs() < 1e-5 * gb.abs().max(1e-3),
            "{what}: grad_norm {a:?} vs {b:?}",
            a = a.0,
            b = b.0
        );
    }
    // The run learns, so the weights compared have moved.
    assert_ne!(b.0[0].0, b.0[2].0, "{what}: {:?}", b.0);
    let mut names: Vec<&String> = b.1.keys().collect();
    names.sort();
    assert_eq!(a.1.len(), b.1.len(), "{what}: tensor count");
    let (x, y): (Vec<Tensor>, Vec<Tensor>) = names
        .iter()
        .map(|n| (a.1[*n].clone(), b.1[*n].clone()))
        .unzip();
    let rel = max_rel(what, &x, &y, true);
    eprintln!("{what}: final weights differ by {rel:.1e} of their max");
    assert!(rel < 1e-5, "{what}: final weights differ by {rel:e}");
}

#[test]
fn batched_sft_runs_equal_one_example_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    write_sft(&dir.path().join("sft.jsonl"), 10);
    for name in ["full", "lora"] {
        for dropout in [0.0, 0.1] {
            if name == "full" && dropout > 0.0 {
                continue; // no adapter, no dropout
            }
            let extra = |bs: usize, ga: usize, ckpt: bool| {
                let full = if name == "full" {
                    "full_finetune = true\n"
                } else {
                    ""
                };
                format!("batch_size = {bs}\ngrad_accum = {ga}\ngradient_checkpointing = {ckpt}\n{full}[lora]\nr = 4\ndropout = {dropout}\n[reference]\nmode = \"none\"\n")
            };
            let tag = format!("{name}-{dropout}");
            let one = run(dir.path(), &format!("{tag}-1x4"), &extra(1, 4, false));
            let four = run(dir.path(), &format!("{tag}-4x1"), &extra(4, 1, false));
            assert_same_run(&format!("{tag}: 4×1 vs 1×4"), &four, &one);
            // Micro-batches of 2 over two accumulation steps, and checkpointed batches.
            let two = run(dir.path(), &format!("{tag}-2x2"), &extra(2, 2, false));
            assert_same_run(&format!("{tag}: 2×2 vs 1×4"), &two, &one);
            let ck = run(dir.path(), &format!("{tag}-4x1-ckpt"), &extra(4, 1, true));
            assert_same_run(&format!("{tag}: checkpointed 4×1 vs 1×4"), &ck, &one);
        }
    }
}
