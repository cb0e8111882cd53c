//! `lambda-dpo bench`: throughput, time split, peak memory and MFU of the three things the tool
//! spends its time on, on a stated workload, as a text table or one JSON object.
//!
//! - `train-step`: one λ-DPO list per optimizer step, exactly as `lambda-dpo train` runs it —
//!   [`lambda_dpo::train::list_step`] (policy forward with graph, reference, loss, surrogate
//!   backward), global-norm clipping at 1.0 and the trainer's AdamW, LoRA on all seven
//!   projections (α = 16, dropout 0.05, the trainer's defaults).
//! - `logprobs`: forward-only scoring of the same N sequences (no adapter, no graph).
//! - `generate`: KV-cached greedy decoding of C new tokens after each of N prompts of P tokens
//!   ([`lambda_dpo_model::generate`], no stop token, so every row runs to C).
//!
//! The model is a `--preset` (seeded random weights of a fixed shape, written to a temporary
//! folder, see [`preset`]) or a real Hugging Face folder (`--model`). Token ids are drawn from
//! SplitMix64 seeded with `--seed` (benchmarks/torch_reference.py draws the same ids):
//! the prompt first, then each response.
//!
//! ```text
//! tokens/step   train-step, logprobs: N·(P + C)  (every token through the policy forward)
//!               generate: N·C generated tokens
//! forward       train-step: a forward-only list_step (policy + reference forward + loss, no
//!               graph) run before every step; backward+opt = step − forward
//! MFU           FLOPs per step / median step time / f32 matmul peak (measured, see measure.rs)
//! ```

mod measure;
mod preset;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::DType;
use lambda_dpo::train::{clip_grad_norm, list_step, AdamW, AdamWConfig};
use lambda_dpo::train::{ListInput, Reference, StepOptions};
use lambda_dpo_math::{Loss, Objective, Target};
use lambda_dpo_model::{
    generate_with_progress, Adapter, GenerateOptions, LoraConfig, Model, Prompt, ScoreOptions,
    ScoreRequest, Tokenizer,
};
use serde::Serialize;

use crate::input_error::InputError;
use crate::runtime::{device, parse_dtype};
use measure::{param_count, ParamCount, Stats};
use preset::{Preset, TempDir};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// λ-DPO training steps as `lambda-dpo train` runs them (one list per optimizer step): policy forward, reference, loss, backward, clipping, AdamW on LoRA.
    TrainStep(TrainStepArgs),
    /// Forward-only scoring of N sequences of P + C tokens (log-probs of the last C).
    Logprobs(WorkloadArgs),
    /// KV-cached greedy decoding: C new tokens after each of N prompts of P tokens.
    Generate(WorkloadArgs),
}

/// The workload flags every benchmark shares.
#[derive(Debug, clap::Args)]
struct WorkloadArgs {
    /// Built-in model shape with seeded random weights (default: tiny).
    #[arg(long, value_enum, conflicts_with = "model")]
    preset: Option<Preset>,
    /// A Hugging Face model folder instead of a preset.
    #[arg(long)]
    model: Option<PathBuf>,
    /// N: responses per list (train-step), sequences (logprobs) or prompts (generate).
    #[arg(long, default_value_t = 4)]
    n: usize,
    /// P: prompt tokens.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// C: response tokens (generate: new tokens per prompt).
    #[arg(long, default_value_t = 128)]
    response_len: usize,
    /// Measured steps (the statistics are over these).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Steps run first and not measured.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Compute dtype: f32 or bf16 (LoRA and softmax statistics stay f32).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Compute threads (default: RAYON_NUM_THREADS, else every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the preset's weights, the token ids and the LoRA init.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct TrainStepArgs {
    #[command(flatten)]
    w: WorkloadArgs,
    /// Where ℓ_ref comes from: the model with the adapter off (a second forward per step),
    /// values computed once before the steps (the trainer's reference cache), or none.
    #[arg(long, value_enum, default_value = "disabled-adapter")]
    reference: RefMode,
    /// LoRA rank r (α = 16, dropout 0.05, all seven projections).
    #[arg(long, default_value_t = 8)]
    lora_r: usize,
    /// Responses per forward (`train.chunk_size`); below N the two-pass bounded-memory path.
    #[arg(long)]
    chunk_size: Option<usize>,
    /// Run the prompt once per forward with the responses packed after it
    /// (`train.prefix_sharing`); tokens/s still counts N·(P+C).
    #[arg(long)]
    prefix_sharing: bool,
    /// Keep only each decoder block's input in the policy forward and recompute the blocks
    /// one at a time in the backward (`train.gradient_checkpointing`).
    #[arg(long)]
    gradient_checkpointing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RefMode {
    DisabledAdapter,
    Cache,
    None,
}

impl RefMode {
    fn name(self) -> &'static str {
        match self {
            RefMode::DisabledAdapter => "disabled-adapter",
            RefMode::Cache => "cache",
            RefMode::None => "none",
        }
    }
}

/// Everything a benchmark reports (the JSON object; the table shows the same fields).
#[derive(Debug, Serialize)]
struct Report {
    tool: &'static str,
    version: &'static str,
    bench: &'static str,
    /// The preset's name or the model folder.
    model: String,
    architecture: &'static str,
    params: usize,
    /// N of the FLOP formulas (see [`ParamCount::matmul`]).
    matmul_params: usize,
    n: usize,
    prompt_len: usize,
    response_len: usize,
    steps: usize,
    warmup: usize,
    dtype: &'static str,
    threads: usize,
    reference: Option<&'static str>,
    lora_r: Option<usize>,
    lora_params: Option<usize>,
    chunk_size: Option<usize>,
    prefix_sharing: Option<bool>,
    gradient_checkpointing: Option<bool>,
    tokens_per_step: usize,
    /// tokens_per_step / median step time.
    tokens_per_s: f64,
    step_ms: Stats,
    /// train-step: policy + reference forward + loss; logprobs: the whole pass.
    forward_ms: Option<Stats>,
    /// train-step: step − forward (backward, clipping, AdamW).
    backward_ms: Option<Stats>,
    /// generate: prompt forward and the first token.
    prefill_ms: Option<Stats>,
    /// generate: the remaining C − 1 tokens.
    decode_ms: Option<Stats>,
    decode_tokens_per_s: Option<f64>,
    /// The whole process's peak RSS, model loading included (the larger of the two below).
    peak_rss_mib: Option<f64>,
    /// VmHWM before the steps: writing and loading the model, building the adapter.
    setup_peak_rss_mib: Option<f64>,
    /// VmHWM reset after setup (model loaded, adapter built): the peak of the steps alone.
    steps_peak_rss_mib: Option<f64>,
    /// RSS when the steps start (the baseline of `steps_peak_rss_mib`).
    rss_before_steps_mib: Option<f64>,
    matmul_peak_gflops: f64,
    /// FLOPs per step by the standard convention (train: 6·N·D; inference: 2·N·D).
    model_flops_per_step: f64,
    /// FLOPs per step this computation actually needs (see `flop_formula`).
    actual_flops_per_step: f64,
    mfu: f64,
    mfu_actual: f64,
    flop_formula: String,
    /// train-step: loss of the first and the last step (ln N at the first with a reference).
    loss_first: Option<f64>,
    loss_last: Option<f64>,
    /// logprobs: Σ of every scored log-prob (same weights ⇒ same value in any tool).
    sum_logprobs: Option<f64>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let (w, bench) = match &args.what {
        What::TrainStep(a) => (&a.w, "train-step"),
        What::Logprobs(w) => (w, "logprobs"),
        What::Generate(w) => (w, "generate"),
    };
    let threads = crate::runtime::set_threads(w.threads, || {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    });
    let dtype = parse_dtype(&w.dtype)?;
    validate(w, bench)?;
    let dev = device()?;

    // The model: a preset written to a temporary folder, or the user's folder.
    let (dir, _tmp, model_name): (PathBuf, Option<TempDir>, String) = match &w.model {
        Some(d) => (d.clone(), None, d.display().to_string()),
        None => {
            let p = w.preset.unwrap_or(Preset::Tiny);
            let tmp = TempDir::new(p.name())?;
            preset::write(p, &tmp.0, w.prompt_len + w.response_len, w.seed)
                .with_context(|| format!("writing the {} preset", p.name()))?;
            (tmp.0.clone(), Some(tmp), p.name().to_string())
        }
    };
    let model = Model::load(&dir, dtype, &dev)
        .with_context(|| format!("loading the model from {}", dir.display()))?;
    let params = param_count(&model.config);
    let (prompt, responses) = token_ids(
        w.seed,
        model.config.vocab_size,
        w.n,
        w.prompt_len,
        w.response_len,
    );

    let mut report = Report {
        tool: "lambda-dpo",
        version: env!("CARGO_PKG_VERSION"),
        bench,
        model: model_name,
        architecture: model.config.architecture.hf_name(),
        params: params.total,
        matmul_params: params.matmul,
        n: w.n,
        prompt_len: w.prompt_len,
        response_len: w.response_len,
        steps: w.steps,
        warmup: w.warmup,
        dtype: measure::dtype_name(dtype),
        threads,
        reference: None,
        lora_r: None,
        lora_params: None,
        chunk_size: None,
        prefix_sharing: None,
        gradient_checkpointing: None,
        tokens_per_step: 0,
        tokens_per_s: 0.0,
        step_ms: Stats {
            median: 0.0,
            min: 0.0,
            max: 0.0,
        },
        forward_ms: None,
        backward_ms: None,
        prefill_ms: None,
        decode_ms: None,
        decode_tokens_per_s: None,
        peak_rss_mib: None,
        setup_peak_rss_mib: None,
        steps_peak_rss_mib: None,
        rss_before_steps_mib: None,
        matmul_peak_gflops: 0.0,
        model_flops_per_step: 0.0,
        actual_flops_per_step: 0.0,
        mfu: 0.0,
        mfu_actual: 0.0,
        flop_formula: String::new(),
        loss_first: None,
        loss_last: None,
        sum_logprobs: None,
    };
    match &args.what {
        What::TrainStep(a) => train_step(a, &model, &prompt, &responses, params, &mut report)?,
        What::Logprobs(_) => logprobs(w, &model, &prompt, &responses, params, &mut report)?,
        What::Generate(_) => {
            let tokenizer = Tokenizer::from_dir(&dir)
                .with_context(|| format!("loading the tokenizer of {}", dir.display()))?;
            generate(w, &model, &tokenizer, &prompt, params, &mut report)?
        }
    }

    // The steps' mark was reset at their start: the process peak is the larger of the two
    // (read before the matmul below, which is not part of the workload).
    report.peak_rss_mib = match (report.setup_peak_rss_mib, report.steps_peak_rss_mib) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => measure::status_mib("VmHWM"),
    };
    // The machine's peak, measured after the steps so that it cannot disturb them.
    let peak = measure::matmul_peak_flops(1024, 30, &dev)?;

    report.matmul_peak_gflops = peak / 1e9;
    let step_s = report.step_ms.median / 1e3;
    report.mfu = report.model_flops_per_step / step_s / peak;
    report.mfu_actual = report.actual_flops_per_step / step_s / peak;
    report.tokens_per_s = report.tokens_per_step as f64 / step_s;

    if w.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

fn validate(w: &WorkloadArgs, bench: &str) -> Result<()> {
    let bad = |flag: &str, msg: &str| -> Result<()> {
        Err(InputError::new(flag, None, None, msg.to_string()).into())
    };
    let min_n = if bench == "train-step" { 2 } else { 1 };
    if w.n < min_n {
        return bad(
            "--n",
            &format!("must be ≥ {min_n} (a preference list needs two responses)"),
        );
    }
    if w.prompt_len == 0 {
        return bad(
            "--prompt-len",
            "must be ≥ 1 (the first scored token needs context)",
        );
    }
    if w.response_len == 0 {
        return bad("--response-len", "must be ≥ 1");
    }
    if w.steps == 0 {
        return bad("--steps", "must be ≥ 1 (the statistics are over them)");
    }
    if let Some(p) = &w.model {
        if !p.is_dir() {
            return Err(InputError::new(p, None, None, "not a folder")
                .hint("--model takes a Hugging Face model folder (config.json, model.safetensors); or use --preset tiny|qwen40m")
                .into());
        }
    }
    Ok(())
}

/// SplitMix64 (the same generator as benchmarks/torch_reference.py).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The prompt (P ids) and N responses (C ids each), ids in `3..V` (0–2 are the presets'
/// special tokens), drawn in that order.
fn token_ids(seed: u64, vocab: usize, n: usize, p: usize, c: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut s = seed;
    let span = (vocab.max(4) - 3) as u64;
    let mut draw = |k: usize| -> Vec<u32> {
        (0..k)
            .map(|_| (3 + splitmix64(&mut s) % span) as u32)
            .collect()
    };
    let prompt = draw(p);
    let responses = (0..n).map(|_| draw(c)).collect();
    (prompt, responses)
}

/// Milliseconds since `t`.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn train_step(
    a: &TrainStepArgs,
    model: &Model,
    prompt: &[u32],
    responses: &[Vec<u32>],
    params: ParamCount,
    report: &mut Report,
) -> Result<()> {
    let w = &a.w;
    if a.lora_r == 0 {
        return Err(InputError::new("--lora-r", None, None, "must be ≥ 1").into());
    }
    let chunk = a.chunk_size.unwrap_or(w.n).clamp(1, w.n);
    // The trainer's defaults: α 16, dropout 0.05, all seven projections.
    let lora = LoraConfig {
        r: a.lora_r,
        ..LoraConfig::default()
    };
    let adapter = Adapter::new(&model.config, lora, w.seed, &model.device)?;
    let mut optimizer = AdamW::new(adapter.named_vars(), AdamWConfig::default())?;
    let objective = Objective::new(Loss::lambda_dpo());
    // A fixed target: p_i ∝ N − i (best response first).
    let total = (w.n * (w.n + 1) / 2) as f64;
    let target = Target::from_probs((0..w.n).map(|i| (w.n - i) as f64 / total).collect())?;
    let list = ListInput {
        prompt,
        responses,
        target: &target,
    };
    // The cache mode's values are computed once, before the timed steps, as the trainer does.
    let cached: Vec<f64> = if a.reference == RefMode::Cache {
        crate::scoring::list_logps(model, None, prompt, responses, "the bench list")?
    } else {
        Vec::new()
    };
    let reference = match a.reference {
        RefMode::DisabledAdapter => Reference::DisabledAdapter,
        RefMode::Cache => Reference::Given(&cached),
        RefMode::None => Reference::None,
    };
    let lr = 5e-6; // the paper's learning rate (irrelevant to the timing)
    let (setup_peak, rss_before) = measure::start_steps_rss();
    report.setup_peak_rss_mib = setup_peak;

    let (mut step_ms, mut fwd_ms, mut bwd_ms, mut losses) = (vec![], vec![], vec![], vec![]);
    for i in 0..w.warmup + w.steps {
        let opts = StepOptions {
            chunk_size: chunk,
            prefix_sharing: a.prefix_sharing,
            gradient_checkpointing: a.gradient_checkpointing,
            dropout_seed: Some(w.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            grad_scale: 1.0,
            backward: true,
            score: ScoreOptions::default(),
        };
        // Forward only: the same list_step without graph or gradients.
        let t = Instant::now();
        list_step(
            model,
            &adapter,
            &objective,
            list,
            reference,
            StepOptions {
                backward: false,
                ..opts
            },
        )?;
        let fwd = ms(t);
        // The training step itself, as the trainer's loop does it for one list.
        let t = Instant::now();
        let s = list_step(model, &adapter, &objective, list, reference, opts)?;
        let mut grads = s.grads;
        clip_grad_norm(&mut grads, Some(1.0))?;
        optimizer.step(&grads, lr)?;
        let step = ms(t);
        if i >= w.warmup {
            step_ms.push(step);
            fwd_ms.push(fwd);
            bwd_ms.push(step - fwd);
            losses.push(s.output.loss);
        }
        if !w.json {
            eprintln!(
                "step {}/{}: {step:.1} ms (forward {fwd:.1} ms){}",
                i + 1,
                w.warmup + w.steps,
                if i < w.warmup { ", warm-up" } else { "" }
            );
        }
    }
    report.rss_before_steps_mib = rss_before;
    report.steps_peak_rss_mib = rss_before.and_then(|_| measure::status_mib("VmHWM"));

    let (n, p, c) = (w.n, w.prompt_len, w.response_len);
    let nd = params.matmul as f64 * (n * (p + c)) as f64;
    // Tokens one forward over the whole list actually runs: with prefix sharing the prompt
    // once per chunk and each response but its last token.
    let run_tokens = if a.prefix_sharing {
        n.div_ceil(chunk) * p + n * (c - 1)
    } else {
        n * (p + c)
    };
    let nd_run = params.matmul as f64 * run_tokens as f64;
    // Two-pass chunking runs the policy forward twice; checkpointing recomputes it once more
    // in the backward.
    let policy_forwards =
        if chunk < n { 2.0 } else { 1.0 } + if a.gradient_checkpointing { 1.0 } else { 0.0 };
    let ref_forward = if a.reference == RefMode::DisabledAdapter {
        2.0
    } else {
        0.0
    };
    report.reference = Some(a.reference.name());
    report.lora_r = Some(a.lora_r);
    report.lora_params = Some(adapter.num_parameters());
    report.chunk_size = Some(chunk);
    report.prefix_sharing = Some(a.prefix_sharing);
    report.gradient_checkpointing = Some(a.gradient_checkpointing);
    report.tokens_per_step = n * (p + c);
    report.step_ms = Stats::of(&step_ms).expect("steps ≥ 1");
    report.forward_ms = Stats::of(&fwd_ms);
    report.backward_ms = Stats::of(&bwd_ms);
    report.model_flops_per_step = 6.0 * nd;
    report.actual_flops_per_step = (2.0 * policy_forwards + 2.0 + ref_forward) * nd_run;
    report.flop_formula = format!(
        "model = 6·N·D (the standard training convention: forward 2ND + backward 4ND); actual = {}2ND' policy forward + 2ND' backward to the activations only (base weights are frozen: no weight gradients; LoRA terms ignored){}; N = matmul params (7 projections per layer + LM head), D = N_resp·(P+C) tokens, D' = {}; attention scores not counted",
        match policy_forwards as u32 {
            1 => "",
            2 => "2 × ",
            _ => "3 × ",
        },
        if ref_forward > 0.0 { " + 2ND' reference forward" } else { "" },
        if a.prefix_sharing {
            "chunks·P + N_resp·(C−1) tokens actually run with prefix sharing"
        } else {
            "D"
        }
    );
    report.loss_first = losses.first().copied();
    report.loss_last = losses.last().copied();
    Ok(())
}

fn requests_for<'a>(ids: &'a [Vec<u32>], start: usize) -> Vec<ScoreRequest<'a>> {
    ids.iter().map(|ids| ScoreRequest { ids, start }).collect()
}

fn logprobs(
    w: &WorkloadArgs,
    model: &Model,
    prompt: &[u32],
    responses: &[Vec<u32>],
    params: ParamCount,
    report: &mut Report,
) -> Result<()> {
    let ids: Vec<Vec<u32>> = responses
        .iter()
        .map(|r| prompt.iter().chain(r).copied().collect())
        .collect();
    let requests = requests_for(&ids, prompt.len());
    let (setup_peak, rss_before) = measure::start_steps_rss();
    report.setup_peak_rss_mib = setup_peak;
    let mut times = Vec::new();
    for i in 0..w.warmup + w.steps {
        let t = Instant::now();
        let scored = model.score(&requests, None, ScoreOptions::default())?;
        // Reading the values back is part of the work (and synchronises a GPU).
        let sums: Vec<f64> = scored.sums.to_dtype(DType::F64)?.to_vec1()?;
        let elapsed = ms(t);
        if i >= w.warmup {
            times.push(elapsed);
            report.sum_logprobs.get_or_insert(sums.iter().sum());
        }
    }
    report.rss_before_steps_mib = rss_before;
    report.steps_peak_rss_mib = rss_before.and_then(|_| measure::status_mib("VmHWM"));
    let d = (w.n * (w.prompt_len + w.response_len)) as f64;
    report.tokens_per_step = w.n * (w.prompt_len + w.response_len);
    report.step_ms = Stats::of(&times).expect("steps ≥ 1");
    report.forward_ms = Some(report.step_ms);
    report.model_flops_per_step = 2.0 * params.matmul as f64 * d;
    report.actual_flops_per_step = report.model_flops_per_step;
    report.flop_formula = "2·N·D (forward only); N = matmul params (7 projections per layer + LM head), D = N_seq·(P+C) tokens; attention scores not counted (lambda-dpo applies the LM head to the C scored positions only)".into();
    Ok(())
}

fn generate(
    w: &WorkloadArgs,
    model: &Model,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    params: ParamCount,
    report: &mut Report,
) -> Result<()> {
    // N distinct prompts: the shared prompt rotated, so rows differ.
    let prompts_ids: Vec<Vec<u32>> = (0..w.n)
        .map(|i| {
            let mut p = prompt.to_vec();
            p.rotate_left(i % prompt.len());
            p
        })
        .collect();
    let prompts: Vec<Prompt<'_>> = prompts_ids
        .iter()
        .map(|ids| Prompt { ids, seed: 0 })
        .collect();
    // No stop token: every row generates exactly C tokens.
    let opts = GenerateOptions {
        max_new_tokens: w.response_len,
        ..GenerateOptions::default()
    };
    let (setup_peak, rss_before) = measure::start_steps_rss();
    report.setup_peak_rss_mib = setup_peak;
    let (mut total, mut prefill, mut decode) = (vec![], vec![], vec![]);
    for i in 0..w.warmup + w.steps {
        let t = Instant::now();
        let mut first: Option<f64> = None;
        let out = generate_with_progress(model, tokenizer, None, &prompts, &opts, &mut |_| {
            first.get_or_insert_with(|| ms(t));
        })?;
        let all = ms(t);
        let generated: usize = out.iter().map(|g| g.ids.len()).sum();
        anyhow::ensure!(
            generated == w.n * w.response_len,
            "generated {generated} tokens, expected {}",
            w.n * w.response_len
        );
        if i >= w.warmup {
            let f = first.unwrap_or(all);
            total.push(all);
            prefill.push(f);
            decode.push(all - f);
        }
    }
    report.rss_before_steps_mib = rss_before;
    report.steps_peak_rss_mib = rss_before.and_then(|_| measure::status_mib("VmHWM"));
    let fed = w.n * (w.prompt_len + w.response_len - 1);
    report.tokens_per_step = w.n * w.response_len;
    report.step_ms = Stats::of(&total).expect("steps ≥ 1");
    report.prefill_ms = Stats::of(&prefill);
    report.decode_ms = Stats::of(&decode);
    let decode_med = report.decode_ms.map_or(0.0, |s| s.median);
    report.decode_tokens_per_s = (w.response_len > 1 && decode_med > 0.0)
        .then(|| (w.n * (w.response_len - 1)) as f64 / (decode_med / 1e3));
    report.model_flops_per_step = 2.0 * params.matmul as f64 * fed as f64;
    report.actual_flops_per_step = report.model_flops_per_step;
    report.flop_formula = "2·N·D with D = N_prompts·(P + C − 1) tokens fed (prefill + every generated token but the last); N = matmul params (7 projections per layer + LM head); attention over the cache not counted".into();
    Ok(())
}

/// The human-readable report.
fn table(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let m = |x: f64| format!("{:.1}M", x / 1e6);
    let _ = writeln!(
        s,
        "lambda-dpo bench {} — {} ({}, {} params, {} in matmuls)",
        r.bench,
        r.model,
        r.architecture,
        m(r.params as f64),
        m(r.matmul_params as f64)
    );
    let what = match r.bench {
        "train-step" => format!(
            "λ-DPO list of N={} responses, P={} prompt + C={} response tokens; LoRA r={} ({} trainable) on all 7 projections; reference: {}; chunk {}; prefix sharing {}; gradient checkpointing {}",
            r.n,
            r.prompt_len,
            r.response_len,
            r.lora_r.unwrap_or(0),
            r.lora_params.unwrap_or(0),
            r.reference.unwrap_or("-"),
            r.chunk_size.unwrap_or(r.n),
            if r.prefix_sharing == Some(true) {
                "on"
            } else {
                "off"
            },
            if r.gradient_checkpointing == Some(true) {
                "on"
            } else {
                "off"
            }
        ),
        "logprobs" => format!(
            "{} sequences of P={} + C={} tokens, the last C scored, one batch, no adapter",
            r.n, r.prompt_len, r.response_len
        ),
        _ => format!(
            "{} prompts of P={} tokens, C={} new tokens each, greedy, KV cache, one batch",
            r.n, r.prompt_len, r.response_len
        ),
    };
    let _ = writeln!(s, "workload   {what}");
    let _ = writeln!(
        s,
        "run        {} dtype, {} threads, {} measured steps after {} warm-up",
        r.dtype, r.threads, r.steps, r.warmup
    );
    let tokens_note = if r.bench == "generate" {
        "generated tokens"
    } else {
        "tokens through the policy forward, N·(P+C)"
    };
    let _ = writeln!(
        s,
        "tokens     {} per step ({tokens_note})\n",
        r.tokens_per_step
    );
    let _ = writeln!(s, "{:<22} {:>10} {:>10} {:>10}", "", "median", "min", "max");
    let row = |s: &mut String, name: &str, st: &Stats, note: &str| {
        let _ = writeln!(
            s,
            "{name:<22} {:>10.1} {:>10.1} {:>10.1}  {note}",
            st.median, st.min, st.max
        );
    };
    row(&mut s, "step (ms)", &r.step_ms, "");
    if r.bench == "train-step" {
        if let Some(f) = &r.forward_ms {
            row(
                &mut s,
                "  forward (ms)",
                f,
                "policy + reference forward + loss (a forward-only list_step)",
            );
        }
        if let Some(b) = &r.backward_ms {
            row(
                &mut s,
                "  backward+opt (ms)",
                b,
                "step − forward: backward, clipping, AdamW",
            );
        }
    }
    if let Some(p) = &r.prefill_ms {
        row(&mut s, "  prefill (ms)", p, "prompt forward + first token");
    }
    if let Some(d) = &r.decode_ms {
        row(&mut s, "  decode (ms)", d, "the other C − 1 tokens");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "tokens/s               {:>10.0}  (per median step)",
        r.tokens_per_s
    );
    if let Some(d) = r.decode_tokens_per_s {
        let _ = writeln!(s, "decode tokens/s        {d:>10.0}");
    }
    let mib = |x: Option<f64>| x.map_or("n/a".into(), |v| format!("{v:.1} MiB"));
    let _ = writeln!(
        s,
        "peak RSS               {} whole process: {} writing/loading the model and setup, {} during the steps (from {} at their start)",
        mib(r.peak_rss_mib),
        mib(r.setup_peak_rss_mib),
        mib(r.steps_peak_rss_mib),
        mib(r.rss_before_steps_mib)
    );
    let _ = writeln!(
        s,
        "matmul peak            {:.1} GFLOP/s (f32 candle matmul 1024³, best of 30, {} threads)",
        r.matmul_peak_gflops, r.threads
    );
    let _ = writeln!(
        s,
        "MFU                    {:.2} % model FLOPs ({:.2} GFLOP/step), {:.2} % actual ({:.2} GFLOP/step)",
        100.0 * r.mfu,
        r.model_flops_per_step / 1e9,
        100.0 * r.mfu_actual,
        r.actual_flops_per_step / 1e9
    );
    let _ = writeln!(s, "FLOPs                  {}", r.flop_formula);
    if let (Some(a), Some(b)) = (r.loss_first, r.loss_last) {
        let _ = writeln!(s, "loss                   {a:.6} → {b:.6}");
    }
    if let Some(x) = r.sum_logprobs {
        let _ = writeln!(s, "Σ log-probs            {x:.4}");
    }
    s
}
