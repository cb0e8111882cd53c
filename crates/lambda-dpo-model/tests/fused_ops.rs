//! The fused CPU kernels ([`lambda_dpo_model::kernels`]) against the composed ops they replace:
//! values and gradients (candle backprop of `Σ y ⊙ G` for a random upstream G, through `Var`s)
//! within 1e-5 of the tensor's largest magnitude, on odd shapes (rows not a multiple of the
//! thread count, last dim 1 and large, −∞-masked entries, broadcast tables); then the whole
//! decoder on both fixtures (Llama with llama3 rope scaling, Qwen2 with q/k/v biases): token
//! log-probs and the LoRA gradients of a λ-DPO-shaped loss with the kernels on equal them off,
//! for separate and prefix-shared forwards.

mod common;

use candle_core::{DType, Device, Tensor, Var, D};
use common::*;
use lambda_dpo_model::{
    kernels, ops, rope, Adapter, FusedOps, LoraConfig, LoraRun, Model, ModelConfig, ScoreOptions,
    ScoreRequest, Scored,
};

const TOL: f64 = 1e-5;

/// Deterministic pseudo-random values in [lo, hi).
fn randn(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

fn rand_tensor(dims: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(randn(n, seed, lo, hi), dims, &Device::Cpu).unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    v.iter().fold(0.0f64, |m, x| m.max(x.abs() as f64))
}

/// `max|a − b| / max|b|` (absolute when b is all zero); NaN anywhere fails.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let av: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let bv: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert!(av.iter().all(|x| !x.is_nan()), "NaN in the fused result");
    assert!(bv.iter().all(|x| !x.is_nan()), "NaN in the reference");
    let d = av
        .iter()
        .zip(&bv)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs() as f64));
    let scale = max_abs(b);
    if scale > 0.0 {
        d / scale
    } else {
        d
    }
}

/// Runs `f` on fresh `Var`s holding `inputs`, back-propagates `Σ f(..) ⊙ G`, and returns the
/// output and the gradient of every input.
fn value_and_grads(
    inputs: &[Tensor],
    upstream_seed: u64,
    f: impl Fn(&[Tensor]) -> Tensor,
) -> (Tensor, Vec<Tensor>) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts);
    let g = rand_tensor(y.dims(), upstream_seed, -1.0, 1.0);
    let store = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
    let grads = ts
        .iter()
        .map(|t| store.get(t).expect("every input has a gradient").clone())
        .collect();
    (y.detach(), grads)
}

/// Fused and composed on the same inputs: values and every gradient within [`TOL`].
fn check_op(
    label: &str,
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Tensor,
    composed: impl Fn(&[Tensor]) -> Tensor,
) -> f64 {
    let (yf, gf) = value_and_grads(inputs, 99, fused);
    let (yc, gc) = value_and_grads(inputs, 99, composed);
    let mut worst = rel_err(&yf, &yc);
    assert!(worst <= TOL, "{label}: values differ by {worst:e}");
    for (i, (a, b)) in gf.iter().zip(&gc).enumerate() {
        let e = rel_err(a, b);
        assert!(e <= TOL, "{label}: gradient of input {i} differs by {e:e}");
        worst = worst.max(e);
    }
    eprintln!("{label}: max relative error {worst:.2e}");
    worst
}

#[test]
fn fused_rms_norm_matches_composed_with_input_and_weight_gradients() {
    // Rows 1, 7 (not a multiple of 2 threads), 3×5×… ; last dim 1, 13, 4099. With one
    // element per row, y ≈ w·sign(x) and ∂y/∂x = w·ε/(x²+ε)^{3/2} is a difference of two
    // terms ~1/|x| that cancel to ~ε: both versions lose ~2e-3 of it to f32 rounding at
    // ε = 1e-6, so those rows use ε = 0.1, where the gradient is well conditioned.
    for (k, dims) in [
        vec![1, 1],
        vec![7, 1],
        vec![7, 13],
        vec![3, 5, 64],
        vec![2, 3, 4099],
        vec![257, 512],
    ]
    .into_iter()
    .enumerate()
    {
        let eps = if dims[dims.len() - 1] == 1 { 0.1 } else { 1e-6 };
        let n = *dims.last().unwrap();
        let x = rand_tensor(&dims, 10 + k as u64, -2.0, 2.0);
        let w = rand_tensor(&[n], 20 + k as u64, 0.5, 1.5);
        check_op(
            &format!("rms_norm {dims:?}"),
            &[x, w],
            |t| kernels::rms_norm(&t[0], &t[1], eps).unwrap(),
            |t| ops::rms_norm(&t[0], &t[1], eps).unwrap(),
        );
    }
}

#[test]
fn fused_rms_norm_with_a_frozen_weight_gives_no_weight_gradient() {
    let x = Var::from_tensor(&rand_tensor(&[5, 9], 1, -1.0, 1.0)).unwrap();
    let w = rand_tensor(&[9], 2, 0.5, 1.5); // a plain tensor: frozen
    let y = kernels::rms_norm(x.as_tensor(), &w, 1e-5).unwrap();
    let store = y.sum_all().unwrap().backward().unwrap();
    assert!(store.get(x.as_tensor()).is_some());
    assert!(store.get(&w).is_none());
}

#[test]
fn fused_swiglu_matches_composed() {
    for (k, dims) in [
        vec![1],
        vec![7, 1],
        vec![3, 5, 11],
        vec![2, 129, 1408],
        vec![40_000],
    ]
    .into_iter()
    .enumerate()
    {
        let a = rand_tensor(&dims, 30 + k as u64, -8.0, 8.0);
        let b = rand_tensor(&dims, 40 + k as u64, -2.0, 2.0);
        check_op(
            &format!("swiglu {dims:?}"),
            &[a, b],
            |t| kernels::swiglu(&t[0], &t[1]).unwrap(),
            |t| (t[0].silu().unwrap() * &t[1]).unwrap(),
        );
    }
}

/// `[T, S]` mask: causal after `offset` cached keys, plus every 5th key of a row masked when
/// `holes` (always leaving key 0 visible).
fn mask(t: usize, s: usize, offset: usize, holes: bool) -> Tensor {
    let v: Vec<f32> = (0..t * s)
        .map(|i| {
            let (q, k) = (i / s, i % s);
            if k > q + offset || (holes && k > 0 && (k + q) % 5 == 0) {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(v, (t, s), &Device::Cpu).unwrap()
}

#[test]
fn fused_softmax_matches_composed_with_masked_entries() {
    // (dims of x, mask dims as broadcast, scale)
    let cases: Vec<(Vec<usize>, Tensor, f64)> = vec![
        (
            vec![3, 1],
            Tensor::zeros((3, 1), DType::F32, &Device::Cpu).unwrap(),
            1.0,
        ),
        (vec![2, 3, 7, 7], mask(7, 7, 0, false), 0.125),
        (vec![1, 5, 9, 12], mask(9, 12, 3, true), 0.3),
        (vec![2, 2, 33, 4099], mask(33, 4099, 4066, true), 0.0884),
        // A per-row mask [B, 1, T, S], as the cached forward passes it.
        (
            vec![3, 4, 5, 6],
            Tensor::cat(
                &[
                    mask(5, 6, 1, false),
                    mask(5, 6, 0, true),
                    mask(5, 6, 1, true),
                ],
                0,
            )
            .unwrap()
            .reshape((3, 1, 5, 6))
            .unwrap(),
            0.5,
        ),
    ];
    for (k, (dims, m, scale)) in cases.into_iter().enumerate() {
        let x = rand_tensor(&dims, 50 + k as u64, -6.0, 6.0);
        let m1 = m.clone();
        let y = kernels::scaled_masked_softmax(&x, scale, &m).unwrap();
        // Masked entries are exactly 0.
        let masked = m.broadcast_as(y.shape()).unwrap().flatten_all().unwrap();
        let yv: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let mv: Vec<f32> = masked.to_vec1().unwrap();
        assert!(yv
            .iter()
            .zip(&mv)
            .all(|(y, m)| *m != f32::NEG_INFINITY || *y == 0.0));
        check_op(
            &format!("softmax {dims:?}"),
            &[x],
            move |t| kernels::scaled_masked_softmax(&t[0], scale, &m).unwrap(),
            move |t| {
                ops::softmax_last_dim(&(&t[0] * scale).unwrap().broadcast_add(&m1).unwrap())
                    .unwrap()
            },
        );
    }
}

#[test]
fn fused_softmax_of_a_fully_masked_row_is_zero_not_nan() {
    let x = Var::from_tensor(&rand_tensor(&[2, 4], 3, -1.0, 1.0)).unwrap();
    let m = Tensor::from_vec(
        vec![
            0.0f32,
            f32::NEG_INFINITY,
            0.0,
            0.0,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ],
        (2, 4),
        &Device::Cpu,
    )
    .unwrap();
    let y = kernels::scaled_masked_softmax(x.as_tensor(), 1.0, &m).unwrap();
    let rows: Vec<Vec<f32>> = y.to_vec2().unwrap();
    assert_eq!(rows[1], vec![0.0; 4]);
    assert!((rows[0].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    let store = (&y * rand_tensor(&[2, 4], 4, -1.0, 1.0))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g: Vec<Vec<f32>> = store.get(x.as_tensor()).unwrap().to_vec2().unwrap();
    assert!(g.iter().flatten().all(|v| v.is_finite()));
    assert_eq!(g[1], vec![0.0; 4]);
    assert_eq!(g[0][1], 0.0);
}

#[test]
fn fused_rope_matches_composed_for_default_and_llama3_tables() {
    let llama = ModelConfig::from_dir(&fixture("llama").join("model")).unwrap();
    let qwen = ModelConfig::from_dir(&fixture("qwen2").join("model")).unwrap();
    for (label, cfg) in [("llama3-scaled", &llama), ("default", &qwen)] {
        let inv = rope::inv_freq(cfg);
        let d = cfg.head_dim;
        // Shared positions [T, d] with T = 7 (odd rows per head).
        let positions: Vec<u32> = (0..7).collect();
        let (cos, sin) = rope::cos_sin(&inv, &positions, DType::F32, &Device::Cpu).unwrap();
        let x = rand_tensor(&[3, 5, 7, d], 60, -2.0, 2.0);
        let (c1, s1) = (cos.clone(), sin.clone());
        check_op(
            &format!("rope {label} [3, 5, 7, {d}]"),
            &[x],
            move |t| kernels::rope(&t[0], &cos, &sin).unwrap(),
            move |t| rope::apply(&t[0], &c1, &s1).unwrap(),
        );
        // Per-row positions [B, 1, T, d] (left padding in generation), far positions.
        let positions: Vec<u32> = (0..2 * 3).map(|i| 1000 + 7 * i).collect();
        let (cos, sin) = rope::cos_sin(&inv, &positions, DType::F32, &Device::Cpu).unwrap();
        let cos = cos.reshape((2, 1, 3, d)).unwrap();
        let sin = sin.reshape((2, 1, 3, d)).unwrap();
        let x = rand_tensor(&[2, 4, 3, d], 61, -2.0, 2.0);
        let (c1, s1) = (cos.clone(), sin.clone());
        check_op(
            &format!("rope {label} per-row [2, 4, 3, {d}]"),
            &[x],
            move |t| kernels::rope(&t[0], &cos, &sin).unwrap(),
            move |t| rope::apply(&t[0], &c1, &s1).unwrap(),
        );
    }
    // Head dim 2 (one pair), a non-contiguous input.
    let cos = rand_tensor(&[3, 2], 70, -1.0, 1.0);
    let sin = rand_tensor(&[3, 2], 71, -1.0, 1.0);
    let x = rand_tensor(&[3, 4, 2], 72, -1.0, 1.0); // transposed to [4, 3, 2]
    let (c1, s1) = (cos.clone(), sin.clone());
    check_op(
        "rope d=2, transposed input",
        &[x],
        move |t| kernels::rope(&t[0].transpose(0, 1).unwrap(), &cos, &sin).unwrap(),
        move |t| rope::apply(&t[0].transpose(0, 1).unwrap(), &c1, &s1).unwrap(),
    );
}

#[test]
fn fused_ops_parse_from_the_environment_syntax() {
    assert_eq!(FusedOps::parse("0"), FusedOps::NONE);
    assert_eq!(FusedOps::parse(""), FusedOps::ALL);
    let one = FusedOps::parse("softmax, rope");
    assert!(one.softmax && one.rope && !one.rms_norm && !one.swiglu && !one.dropout);
    assert!(FusedOps::parse("dropout").dropout);
}

/// SplitMix64 drawn one after another (the composed dropout's generator), written out here so
/// the kernel's counter-based draws are checked against the sequential definition.
fn sequential_mask(rows: usize, n: usize, p: f64, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let keep = (1.0 / (1.0 - p)) as f32;
    (0..rows * n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            if u < p {
                0.0
            } else {
                keep
            }
        })
        .collect()
}

#[test]
fn fused_dropout_equals_the_sequential_mask_exactly_in_value_and_gradient() {
    // Runs of 3, 1 and 33 rows with their own seeds; 37 × 700 elements span several chunks.
    let (m, n, p) = (37, 700, 0.3);
    let runs = [(3usize, 11u64), (1, 0xDEAD_BEEF), (33, u64::MAX - 5)];
    let mut mask = Vec::new();
    for &(rows, seed) in &runs {
        mask.extend(sequential_mask(rows, n, p, seed));
    }
    let zeros = mask.iter().filter(|&&v| v == 0.0).count() as f64 / mask.len() as f64;
    assert!((zeros - p).abs() < 0.01, "dropped share {zeros}");
    let mask = Tensor::from_vec(mask, (m, n), &Device::Cpu).unwrap();
    let x = rand_tensor(&[m, n], 5, -2.0, 2.0);
    let (yf, gf) = value_and_grads(std::slice::from_ref(&x), 7, |t| {
        kernels::dropout(&t[0], p, &runs).unwrap()
    });
    let (yc, gc) = value_and_grads(std::slice::from_ref(&x), 7, |t| {
        t[0].broadcast_mul(&mask).unwrap()
    });
    let bits = |t: &Tensor| -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    };
    assert!(bits(&yf) == bits(&yc), "values differ");
    assert!(bits(&gf[0]) == bits(&gc[0]), "gradients differ");
    // Seeds that cover the wrong number of rows are an error, not a silent truncation.
    let err = kernels::dropout(&x, p, &[(36, 1)]).unwrap_err().to_string();
    assert!(err.contains("36 of 37"), "{err}");
}

// ------------------------------------------------------------------------------------------
// The whole decoder, fused on vs off.

fn perturbed_adapter(model: &Model) -> Adapter {
    let a = Adapter::new(&model.config, LoraConfig::default(), 3, &Device::Cpu).unwrap();
    for (j, (k, v)) in a.named_vars().into_iter().enumerate() {
        let old: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let vals: Vec<f32> = old
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let wave = 0.08 * ((i * 7 + j * 13) as f32).sin();
                if k.contains("lora_A") {
                    x + 0.1 * wave
                } else {
                    wave
                }
            })
            .collect();
        let shape = v.as_tensor().shape().clone();
        v.set(&Tensor::from_vec(vals, shape, &Device::Cpu).unwrap())
            .unwrap();
    }
    a
}

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

fn score(model: &Model, lora: Option<LoraRun<'_>>, shared: bool) -> Scored {
    let (prompt, responses) = list();
    if shared {
        return model
            .score_shared(&prompt, &responses, lora, ScoreOptions::default())
            .unwrap();
    }
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

/// `L = −Σ_i w_i · log softmax(β·(ℓ − ℓ_ref))_i` with fixed targets and references.
fn lambda_dpo_loss(sums: &Tensor) -> Tensor {
    let dev = sums.device();
    let w = Tensor::new(&[0.4f32, 0.1, 0.3, 0.2], dev).unwrap();
    let reference = Tensor::new(&[-20.0f32, -6.0, -30.0, -9.0], dev).unwrap();
    let z = ((sums - reference).unwrap() * 0.1).unwrap();
    let logp = candle_core::Tensor::log_sum_exp(&z, D::Minus1).unwrap();
    let logp = z.broadcast_sub(&logp).unwrap();
    (logp * w).unwrap().sum_all().unwrap().neg().unwrap()
}

#[test]
fn decoder_with_fused_kernels_equals_composed_on_both_fixtures() {
    for name in ["llama", "qwen2"] {
        for dtype in [DType::F32, DType::F64] {
            for shared in [false, true] {
                let mut model = model(name, dtype);
                let adapter = perturbed_adapter(&model);
                let run = Some(LoraRun {
                    adapter: &adapter,
                    dropout_seed: None,
                });
                let label = format!("{name} {dtype:?} shared={shared}");
                model.fused = FusedOps::NONE;
                let a = score(&model, run, shared);
                model.fused = FusedOps::ALL;
                let b = score(&model, run, shared);
                let dt = rel_err(
                    &b.token_logprobs.to_dtype(DType::F32).unwrap(),
                    &a.token_logprobs.to_dtype(DType::F32).unwrap(),
                );
                let ds = rel_err(
                    &b.sums.to_dtype(DType::F32).unwrap(),
                    &a.sums.to_dtype(DType::F32).unwrap(),
                );
                assert!(
                    dt <= TOL && ds <= TOL,
                    "{label}: log-probs {dt:e}, sums {ds:e}"
                );
                let vars = adapter.vars();
                let ga = lambda_dpo_loss(&a.sums).backward().unwrap();
                let gb = lambda_dpo_loss(&b.sums).backward().unwrap();
                let mut worst = 0.0f64;
                for v in &vars {
                    let x = ga
                        .get(v.as_tensor())
                        .expect("composed: every var has a gradient");
                    let y = gb
                        .get(v.as_tensor())
                        .expect("fused: every var has a gradient");
                    assert!(
                        max_abs(x) > 0.0,
                        "{label}: an all-zero gradient proves nothing"
                    );
                    worst = worst.max(rel_err(y, x));
                }
                eprintln!(
                    "{label}: log-probs {dt:.2e}, sums {ds:.2e}, {} LoRA gradients {worst:.2e} (relative to max)",
                    vars.len()
                );
                assert!(worst <= TOL, "{label}: LoRA gradients differ by {worst:e}");
            }
        }
    }
}

#[test]
fn decoder_lora_dropout_fused_equals_composed_exactly() {
    for name in ["llama", "qwen2"] {
        for shared in [false, true] {
            let mut model = model(name, DType::F32);
            let adapter = perturbed_adapter(&model);
            let run = Some(LoraRun {
                adapter: &adapter,
                dropout_seed: Some(1234),
            });
            model.fused = FusedOps::NONE;
            let a = score(&model, run, shared);
            model.fused = FusedOps {
                dropout: true,
                ..FusedOps::NONE
            };
            let b = score(&model, run, shared);
            let sums = |s: &Scored| -> Vec<f32> { s.sums.to_vec1().unwrap() };
            assert_eq!(sums(&a), sums(&b), "{name} shared={shared}");
            let ga = lambda_dpo_loss(&a.sums).backward().unwrap();
            let gb = lambda_dpo_loss(&b.sums).backward().unwrap();
            let flat = |t: &Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
            for v in adapter.vars() {
                let (x, y) = (
                    ga.get(v.as_tensor()).unwrap(),
                    gb.get(v.as_tensor()).unwrap(),
                );
                assert_eq!(
                    flat(x),
                    flat(y),
                    "{name} shared={shared}: a LoRA gradient differs"
                );
            }
            // The masks are really applied: without dropout the sums differ.
            let c = score(
                &model,
                Some(LoraRun {
                    adapter: &adapter,
                    dropout_seed: None,
                }),
                shared,
            );
            assert_ne!(sums(&b), sums(&c), "{name}: dropout changed nothing");
        }
    }
}

#[test]
fn fused_lm_head_log_softmax_matches_composed() {
    // 7 rows in chunks of 3 (a ragged last chunk); vocabularies of 1, 13 and 5003; the head
    // as a Var too (full fine-tuning trains it).
    for (k, v) in [1usize, 13, 5003].into_iter().enumerate() {
        let (m, e) = (7, 24);
        let h = rand_tensor(&[m, e], 80 + k as u64, -1.0, 1.0);
        let w = rand_tensor(&[v, e], 90 + k as u64, -1.0, 1.0);
        let targets: Vec<u32> = (0..m as u32).map(|i| (i * 7919) % v as u32).collect();
        let (t1, t2) = (targets.clone(), targets);
        check_op(
            &format!("lm-head log-softmax V={v}"),
            &[h, w],
            move |t| ops::lm_head_logprobs(&t[0], &t[1], &t1, 3, true).unwrap(),
            move |t| ops::lm_head_logprobs(&t[0], &t[1], &t2, 3, false).unwrap(),
        );
    }
}
