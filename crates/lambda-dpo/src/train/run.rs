//! The training loop: one visible loop in a fixed order, the reasons in comments.
//!
//! ```text
//! load config → data → model (+ adapter, optimizer, sampler) → write resolved config
//! [resume: restore adapter, moments, sampler, cursor]
//! for step in start..total:
//!     for each of batch_size × grad_accum lists (cursor order, reshuffled per epoch):
//!         λ ← sampler (per list, or once per step)
//!         target ← p^λ from the list's ratings           (math crate)
//!         loss, ∂L/∂ℓ ← objective(policy ℓ, reference ℓ)  (math crate)
//!         grads += ∇(Σ g_i ℓ_i) / (batch_size × grad_accum)
//!     (SFT: each micro-batch of batch_size examples is one packed forward and one
//!      backward of Σ_b NLL_b / (batch_size × grad_accum), per-example dropout seeds)
//!     clip global norm → lr(step) → AdamW update → metrics line
//!     [eval every K] [checkpoint every K]
//! save adapter + final checkpoint
//! ```
//! Every random choice (data order, λ, dropout, LoRA init) is a pure function of the seed and
//! the cursor, so a resumed run is bit-identical to an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use lambda_dpo_math::{
    lr::warmup_steps_from_ratio, mixed_target, LambdaSampler, LambdaSource, LrSchedule, MathError,
    MissingPolicy, Objective, Rng, SftTerm,
};
use lambda_dpo_model::grads::{backward_grads, dense_grads};
use lambda_dpo_model::{
    Adapter, LoraConfig, LoraRun, Model, ScoreOptions, ScoreRequest, Target, Tokenizer,
};

use crate::data::{self, LoadOptions, LoadReport, RenderedList, RenderedSft};
use crate::train::checkpoint::{self, TrainState};
use crate::train::conditioning::{quantize_lambda, Conditioner, Conditioning, ConditioningInfo};
use crate::train::config::{LambdaPer, ReferenceMode, Stage, TrainConfig};
use crate::train::error::{TrainError, TrainResult};
use crate::train::metrics::{peak_rss_mb, Accumulator, MetricsLog};
use crate::train::optim::{clip_grad_norm, AdamW};
use crate::train::refcache::{self, model_identity, Fnv};
use crate::train::step::{list_step_for, ListInput, ListStep, Reference, StepOptions};

/// Options of a run that are not part of the experiment (and so not in the config).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from the newest checkpoint in the output folder.
    pub resume: bool,
    /// Stop (with a checkpoint) after this many optimizer steps, as if interrupted.
    pub stop_after: Option<u64>,
}

/// What the observer sees after each optimizer step.
#[derive(Debug, Clone)]
pub struct Progress {
    pub step: u64,
    pub total_steps: u64,
    pub loss: f64,
    pub tokens: u64,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub steps: u64,
    pub total_steps: u64,
    pub output_dir: PathBuf,
    /// The product: the PEFT adapter folder, or the model folder when fully fine-tuned
    /// (`None` when the run stopped early).
    pub adapter_dir: Option<PathBuf>,
    pub last_metrics: serde_json::Value,
    pub eval_metrics: Option<serde_json::Value>,
    pub skipped_lists: u64,
    /// What loading did to each data file (skips, merged duplicates, truncations, …), also
    /// written to `<output_dir>/data_report.json`; a pipeline's SFT stage comes first.
    pub data_reports: Vec<DataReport>,
}

/// One data file's [`LoadReport`], with the file and its role (`sft`, `train` or `eval`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DataReport {
    pub role: String,
    pub file: PathBuf,
    pub report: LoadReport,
}

/// `data_report.json` in the run folder: nothing the loader dropped, merged or cut is silent.
pub const DATA_REPORT_FILE: &str = "data_report.json";

/// The examples a stage trains on.
enum Examples {
    Lists {
        dims: Vec<String>,
        train: Vec<RenderedList>,
        eval: Vec<RenderedList>,
    },
    Sft {
        train: Vec<RenderedSft>,
        eval: Vec<RenderedSft>,
    },
}

impl Examples {
    fn len(&self) -> usize {
        match self {
            Examples::Lists { train, .. } => train.len(),
            Examples::Sft { train, .. } => train.len(),
        }
    }
}

/// Runs a whole training job described by `cfg`: the `[sft]` stage first when there is one
/// (reused when already finished), then the main stage with the SFT adapter merged.
pub fn train(
    cfg: &TrainConfig,
    opts: &RunOptions,
    observer: &mut dyn FnMut(&Progress),
) -> TrainResult<TrainSummary> {
    let Some(sft) = cfg.sft_stage() else {
        return train_stage(cfg, opts, observer);
    };
    let sft_adapter = sft.train.output_dir.join("adapter");
    let mut sft_reports = Vec::new();
    if !sft_adapter.join("adapter_model.safetensors").is_file() {
        sft_reports = train_stage(&sft, opts, observer)?.data_reports;
        for r in &mut sft_reports {
            r.role = format!("sft/{}", r.role);
        }
    }
    let mut main = cfg.clone();
    main.sft = None;
    main.model.sft_adapter = Some(sft_adapter);
    let mut summary = train_stage(&main, opts, observer)?;
    sft_reports.append(&mut summary.data_reports);
    summary.data_reports = sft_reports;
    Ok(summary)
}

/// One stage (SFT or preference).
fn train_stage(
    cfg: &TrainConfig,
    opts: &RunOptions,
    observer: &mut dyn FnMut(&Progress),
) -> TrainResult<TrainSummary> {
    let device = Device::Cpu;
    let dtype = if cfg.model.dtype == "bf16" {
        DType::BF16
    } else {
        DType::F32
    };
    let out = &cfg.train.output_dir;
    std::fs::create_dir_all(out).map_err(|source| TrainError::Io {
        path: out.display().to_string(),
        source,
    })?;

    // 1. Data first: a bad file should fail before minutes of model loading.
    let tokenizer = Tokenizer::from_dir(&cfg.model.path)?;
    let (examples, data_reports) = load_examples(cfg, &tokenizer)?;
    if examples.len() == 0 {
        return Err(TrainError::Config {
            path: cfg.data.train.to_string(),
            field: "data.train".into(),
            message: "no usable examples".into(),
        });
    }
    // Skips (`data.skip_invalid`), merged duplicates and truncations are never silent: they
    // are returned to the caller and kept beside the metrics.
    let json = serde_json::to_vec_pretty(&data_reports).expect("report serialises");
    lambda_dpo_model::io::write_atomic(&out.join(DATA_REPORT_FILE), &json)?;

    let conditioner = match (&examples, cfg.lambda.conditioning) {
        (Examples::Lists { dims, .. }, Conditioning::Prompt) => Some(Conditioner {
            tokenizer: &tokenizer,
            dimensions: dims.clone(),
            kwargs: Default::default(),
            max_length: cfg.data.max_length,
        }),
        _ => None,
    };
    // What a conditioned product records, so `generate --lambda` needs no config.
    let conditioning_info = match (&examples, cfg.lambda.conditioning) {
        (Examples::Lists { dims, .. }, Conditioning::Prompt) => Some(ConditioningInfo::new(dims)),
        (Examples::Lists { dims, .. }, Conditioning::SvdLora) => {
            Some(ConditioningInfo::svd_lora(dims))
        }
        _ => None,
    };

    // 2. Model, adapter, optimizer, λ sampler.
    let mut model = Model::load(&cfg.model.path, dtype, &device)?;
    // SFT → preference handoff: fold the SFT adapter into the weights first, so that "adapter
    // disabled" is the SFT model (never the pre-SFT base, LLaMA-Factory #8459).
    if let Some(dir) = &cfg.model.sft_adapter {
        let sft = Adapter::load(dir, &model.config, &device)?;
        model.merge_adapter(&sft)?;
    }
    let reference_model = match (cfg.reference.mode, &cfg.reference.path) {
        (ReferenceMode::Cache, Some(p)) => Some(Model::load(p, dtype, &device)?),
        (ReferenceMode::Model, _) => Some(Model::load(
            cfg.reference.path.as_ref().expect("validated"),
            dtype,
            &device,
        )?),
        _ => None,
    };
    let lora_cfg = LoraConfig {
        r: cfg.lora.r,
        alpha: cfg.lora.alpha,
        dropout: cfg.lora.dropout,
        targets: cfg
            .lora
            .targets
            .iter()
            .filter_map(|t| Target::from_name(t))
            .collect(),
        use_rslora: false,
        // SVD-LoRA: one extra singular value per preference dimension.
        lambda_dims: match (&examples, cfg.lambda.conditioning) {
            (Examples::Lists { dims, .. }, Conditioning::SvdLora) => dims.len(),
            _ => 0,
        },
    };
    // What trains: a LoRA adapter (default), or every weight with an empty adapter.
    let (adapter, trainable) = if cfg.train.full_finetune {
        let named = model.make_trainable()?;
        (Adapter::empty(&model.config, lora_cfg), named)
    } else {
        let a = match &cfg.model.adapter {
            Some(dir) => {
                let mut a = Adapter::load(dir, &model.config, &device)?;
                a.config.dropout = cfg.lora.dropout; // a training setting, not the file's
                if a.config.lambda_dims != lora_cfg.lambda_dims {
                    return Err(TrainError::Config {
                        path: dir.display().to_string(),
                        field: "model.adapter".into(),
                        message: format!("the adapter has {} SVD-LoRA λ dimensions but this run needs {} (lambda.conditioning = {:?})\nhint: continue an adapter with the conditioning it was trained with", a.config.lambda_dims, lora_cfg.lambda_dims, cfg.lambda.conditioning),
                    });
                }
                a
            }
            None => Adapter::new(&model.config, lora_cfg, cfg.train.seed, &device)?,
        };
        let named = a.named_vars();
        (a, named)
    };
    let trainable_vars: Vec<candle_core::Var> = trainable.iter().map(|(_, v)| v.clone()).collect();
    let mut sampler = match &examples {
        Examples::Lists { dims, .. } => {
            let source = cfg
                .lambda
                .source
                .clone()
                .unwrap_or_else(|| LambdaSource::dirichlet_symmetric(dims.len(), 1.0));
            if source.dim() != dims.len() {
                return Err(TrainError::Config {
                    path: "config".into(),
                    field: "lambda".into(),
                    message: format!(
                        "the sampler draws {} weights but the data has {} dimensions ({})",
                        source.dim(),
                        dims.len(),
                        dims.join(", ")
                    ),
                });
            }
            Some(LambdaSampler::new(
                source,
                cfg.train.seed ^ 0x5EED_1A3B_DA00_0001,
            )?)
        }
        Examples::Sft { .. } => None,
    };
    let resolved = toml::to_string_pretty(cfg).expect("config serialises");
    let fingerprint = format!("{:016x}", fnv1a(resolved.as_bytes()));
    let mut state = TrainState {
        step: 0,
        lists_seen: 0,
        sampler: None,
        config_fingerprint: fingerprint.clone(),
    };
    let mut optimizer = AdamW::new(trainable, cfg.train.adam)?;

    // The reference cache comes first: fully fine-tuned, `model` is the reference only until
    // its weights are restored or trained.
    let (train_ref, eval_ref) = reference_cache(
        cfg,
        &examples,
        reference_model.as_ref().unwrap_or(&model),
        dtype,
    )?;

    // 3. Resume: trained values, optimizer moments, sampler and cursor.
    if opts.resume {
        if let Some(dir) = checkpoint::latest(out)? {
            let saved = checkpoint::load_state(&dir)?;
            if saved.config_fingerprint != fingerprint {
                return Err(TrainError::Checkpoint(format!("{} was written with a different configuration\nhint: resume with the same config (see config.resolved.toml), or use a new output_dir", dir.display())));
            }
            checkpoint::load_params(&dir, &optimizer, &device)?;
            checkpoint::load_optimizer(&dir, &mut optimizer, saved.step, &device)?;
            sampler = saved.sampler.clone();
            state = saved;
        }
    }
    // The resolved config, before step 0 (and again on resume: it must be the same).
    lambda_dpo_model::io::write_atomic(&out.join("config.resolved.toml"), resolved.as_bytes())?;
    // A scheduled λ table: which runs and scores it was fitted to, and the fit.
    if let Some(record) = &cfg.lambda.schedule {
        let json = serde_json::to_vec_pretty(record).expect("plain JSON");
        lambda_dpo_model::io::write_atomic(&out.join(crate::schedule::SCHEDULE_FILE), &json)?;
    }
    // Resumed: the log continues from the checkpoint's step (lines a crash left after it are
    // cut, or they would appear twice); a fresh run starts an empty log.
    let metrics_path = out.join("metrics.jsonl");
    let mut log = if state.step == 0 {
        MetricsLog::open(&metrics_path, true)?
    } else {
        MetricsLog::open_resumed(&metrics_path, state.step)?
    };

    let per_step = (cfg.train.batch_size * cfg.train.grad_accum) as u64;
    let n = examples.len() as u64;
    let total_steps = cfg
        .train
        .max_steps
        .unwrap_or_else(|| cfg.train.epochs * n.div_ceil(per_step))
        .max(1);
    let schedule = LrSchedule {
        base_lr: cfg.train.learning_rate,
        decay: cfg.train.lr_schedule,
        warmup_steps: warmup_steps_from_ratio(cfg.train.warmup_ratio, total_steps),
        total_steps,
        min_ratio: cfg.train.min_lr_ratio,
    };
    schedule.validate()?;
    let objective = Objective {
        loss: cfg.loss.loss,
        sft: SftTerm {
            weight: cfg.loss.sft_weight,
            mode: cfg.loss.sft_mode,
        },
    };
    let started = Instant::now();
    let mut tokens_total = 0u64;
    let mut skipped = 0u64;
    let mut last = serde_json::Value::Null;
    let mut eval_metrics = None;
    let stop_at = opts.stop_after.map_or(total_steps, |s| s.min(total_steps));
    // Held-out evaluation: the mean λ, no dropout, no gradient and no random draw, so it never
    // changes the run (a resumed run that skips one is still bit-identical).
    let eval_at = |log: &mut MetricsLog, step: u64| {
        evaluate(
            cfg,
            &examples,
            &model,
            &adapter,
            &objective,
            &|i| {
                pick_reference(
                    cfg.reference.mode,
                    reference_model.as_ref(),
                    eval_ref.as_deref(),
                    i,
                )
            },
            conditioner.as_ref(),
            log,
            step,
        )
    };
    // With `eval_every`, a baseline before any update (an `eval/…` line at step 0): what the
    // later evaluations are measured against.
    if cfg.train.eval_every.is_some() && state.step == 0 {
        eval_at(&mut log, 0)?;
    }

    // 4. The loop.
    while state.step < stop_at {
        let grad_scale = 1.0 / per_step as f64;
        let mut grads: Option<Vec<Tensor>> = None;
        let mut acc = Accumulator::default();
        let step_lambda = match (&mut sampler, cfg.lambda.per) {
            (Some(s), LambdaPer::Step) => Some(s.sample()),
            _ => None,
        };
        // SFT runs each micro-batch of `batch_size` examples as one packed forward and
        // one backward (`sft_micro_batch`); preference lists go one at a time.
        let micro = match &examples {
            Examples::Sft { .. } => cfg.train.batch_size as u64,
            Examples::Lists { .. } => 1,
        };
        for _ in 0..per_step / micro {
            // The micro-batch's cursor positions, each with its own dropout seed: the same
            // examples and seeds, in the same order, as one at a time.
            let items: Vec<(usize, u64)> = (0..micro)
                .map(|k| {
                    let seen = state.lists_seen + k;
                    (
                        cursor_index(seen, n, cfg.train.seed),
                        mix(cfg.train.seed, seen),
                    )
                })
                .collect();
            state.lists_seen += micro;
            let (idx, dropout_seed) = (items[0].0, Some(items[0].1));
            let result = match &examples {
                Examples::Lists { dims, train, .. } => {
                    let list = &train[idx];
                    let lambda = match &step_lambda {
                        Some(l) => l.clone(),
                        None => sampler.as_mut().expect("preference stage").sample(),
                    };
                    let reference = pick_reference(
                        cfg.reference.mode,
                        reference_model.as_ref(),
                        train_ref.as_deref(),
                        idx,
                    );
                    let pass = ListPass {
                        dropout_seed,
                        grad_scale,
                        backward: true,
                        conditioner: conditioner.as_ref(),
                    };
                    let step_now = state.step;
                    let result = preference_list(
                        cfg,
                        &model,
                        &adapter,
                        &trainable_vars,
                        &objective,
                        list,
                        &lambda,
                        reference,
                        pass,
                    )
                    .map_err(|e| match e {
                        TrainError::NonFinite {
                            value, source_id, ..
                        } => TrainError::NonFinite {
                            step: step_now,
                            value,
                            source_id,
                        },
                        other => other,
                    })?;
                    match result {
                        Some((s, lambda)) => {
                            check_finite(s.output.loss, state.step, &list.source)?;
                            acc.add_list(
                                &s.output,
                                &s.policy_logps,
                                dims,
                                &list.ratings,
                                &lambda,
                                cfg.loss.target_temperature,
                            );
                            tokens_total += list
                                .responses
                                .iter()
                                .map(|r| (r.len() + list.prompt_ids.len()) as u64)
                                .sum::<u64>();
                            Some(s.grads)
                        }
                        None => None,
                    }
                }
                Examples::Sft { train, .. } => {
                    let batch: Vec<(&RenderedSft, u64)> =
                        items.iter().map(|&(i, seed)| (&train[i], seed)).collect();
                    let (losses, g) = sft_micro_batch(
                        &model,
                        &adapter,
                        &trainable_vars,
                        &batch,
                        grad_scale,
                        cfg.train.gradient_checkpointing,
                    )?;
                    for ((ex, _), loss) in batch.iter().zip(losses) {
                        check_finite(loss, state.step, &ex.source)?;
                        acc.add("loss", loss);
                        tokens_total += ex.ids.len() as u64;
                    }
                    Some(g)
                }
            };
            match result {
                Some(g) => {
                    grads = Some(match grads.take() {
                        None => g,
                        Some(a) => a
                            .iter()
                            .zip(&g)
                            .map(|(x, y)| x + y)
                            .collect::<candle_core::Result<Vec<_>>>()?,
                    });
                }
                None => skipped += 1,
            }
        }
        // One optimizer update: clip, schedule, AdamW (skipped lists simply contribute nothing).
        let lr = schedule.lr(state.step);
        let mut grad_norm = 0.0;
        if let Some(mut g) = grads {
            grad_norm = clip_grad_norm(&mut g, cfg.train.max_grad_norm)?;
            optimizer.step(&g, lr)?;
            // A diverged update must never reach a checkpoint: stop here, keeping the last one.
            if !grad_norm.is_finite() || !optimizer.params_finite()? {
                return Err(TrainError::NonFinite {
                    step: state.step + 1,
                    value: grad_norm,
                    source_id: "the optimizer update (parameters or gradient norm)".into(),
                });
            }
        }
        state.step += 1;
        state.sampler = sampler.clone();

        let mut record = serde_json::Map::new();
        record.insert("step".into(), state.step.into());
        record.insert("epoch".into(), (state.lists_seen as f64 / n as f64).into());
        for (k, v) in acc.means() {
            record.insert(k, v.into());
        }
        record.insert("grad_norm".into(), grad_norm.into());
        record.insert("learning_rate".into(), lr.into());
        record.insert(
            "tokens_per_second".into(),
            (tokens_total as f64 / started.elapsed().as_secs_f64().max(1e-9)).into(),
        );
        record.insert("peak_rss_mb".into(), peak_rss_mb().into());
        record.insert("skipped_lists".into(), skipped.into());
        let loss = record
            .get("loss")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN);
        last = serde_json::Value::Object(record.clone());
        log.write(&last)?;
        observer(&Progress {
            step: state.step,
            total_steps,
            loss,
            tokens: tokens_total,
        });

        let at_end = state.step == total_steps;
        if cfg.train.eval_every.is_some_and(|k| state.step % k == 0) || at_end {
            if let Some(m) = eval_at(&mut log, state.step)? {
                eval_metrics = Some(m);
            }
        }
        if cfg.train.save_every.is_some_and(|k| state.step % k == 0)
            || at_end
            || state.step == stop_at
        {
            checkpoint::save(
                out,
                &state,
                &optimizer,
                &|dir| {
                    write_product(cfg, &model, &adapter, conditioning_info.as_ref(), dir)?;
                    Ok(cfg.train.full_finetune)
                },
                cfg.train.keep_last,
            )?;
        }
    }

    // 5. The product: a PEFT adapter (or, fully fine-tuned, a model folder) in the run folder.
    let adapter_dir = if state.step == total_steps {
        Some(write_product(
            cfg,
            &model,
            &adapter,
            conditioning_info.as_ref(),
            out,
        )?)
    } else {
        None
    };
    Ok(TrainSummary {
        steps: state.step,
        total_steps,
        output_dir: out.clone(),
        adapter_dir,
        last_metrics: last,
        eval_metrics,
        skipped_lists: skipped,
        data_reports,
    })
}

/// Writes what a run produces into `dir`: `adapter/` (PEFT) for LoRA runs, `model/` (a Hugging
/// Face folder) for full fine-tuning. Returns that folder.
fn write_product(
    cfg: &TrainConfig,
    model: &Model,
    adapter: &Adapter,
    conditioning: Option<&ConditioningInfo>,
    dir: &std::path::Path,
) -> TrainResult<PathBuf> {
    let d = if cfg.train.full_finetune {
        let d = dir.join("model");
        model.save_pretrained(&cfg.model.path, &d)?;
        d
    } else {
        let d = dir.join("adapter");
        adapter.save(&d, &cfg.model.path.display().to_string())?;
        d
    };
    // A conditioned product says how to render λ, so `generate --lambda` needs no config.
    if let Some(info) = conditioning {
        info.save(&d)?;
    }
    Ok(d)
}

/// How one list is run: dropout, gradient scale, whether to back-propagate, and whether λ is
/// rendered into its prompt.
#[derive(Debug, Clone, Copy)]
struct ListPass<'c> {
    dropout_seed: Option<u64>,
    grad_scale: f64,
    backward: bool,
    conditioner: Option<&'c Conditioner<'c>>,
}

/// One preference list under `lambda`: target, loss, statistics (and gradients when training).
/// Returns the λ actually used (renormalised when a dimension was dropped) with the step.
/// `None` when a pairwise loss finds no best/worst response under this λ (the caller counts it).
#[allow(clippy::too_many_arguments)]
fn preference_list(
    cfg: &TrainConfig,
    model: &Model,
    adapter: &Adapter,
    trainable: &[candle_core::Var],
    objective: &Objective,
    list: &RenderedList,
    lambda: &[f64],
    reference: Reference<'_>,
    pass: ListPass<'_>,
) -> TrainResult<Option<(ListStep, Vec<f64>)>> {
    // Conditioned, the policy sees λ on the 0.01 grid, so the target is mixed with exactly that.
    let (lambda, prompt) = match pass.conditioner {
        Some(c) => {
            let q = quantize_lambda(lambda);
            let longest = list.responses.iter().map(Vec::len).max().unwrap_or(0);
            let ids = c.prompt_ids(&list.source, list.prompt_messages.as_deref(), &q, longest)?;
            (q, std::borrow::Cow::Owned(ids))
        }
        None => (
            lambda.to_vec(),
            std::borrow::Cow::Borrowed(&list.prompt_ids),
        ),
    };
    let mixed = mixed_target(
        &list.ratings,
        &lambda,
        cfg.loss.target_temperature,
        cfg.data.missing_rating,
    )?;
    let input = ListInput {
        prompt: &prompt,
        responses: &list.responses,
        target: &mixed.target,
    };
    // SVD-LoRA: the policy runs at this list's λ (the same variables, so gradients reach them).
    let adapter = adapter.at_lambda(&mixed.lambda)?;
    let opts = StepOptions {
        chunk_size: cfg.train.chunk_size.unwrap_or(usize::MAX),
        dropout_seed: pass.dropout_seed,
        grad_scale: pass.grad_scale,
        backward: pass.backward,
        score: ScoreOptions::default(),
        prefix_sharing: cfg.train.prefix_sharing,
        gradient_checkpointing: cfg.train.gradient_checkpointing,
    };
    match list_step_for(
        model, &adapter, trainable, objective, input, reference, opts,
    ) {
        Ok(s) => Ok(Some((s, mixed.lambda))),
        // Pairwise losses need a best and a worst response; a constant target has none.
        Err(TrainError::Math(MathError::NoPreference { .. })) => Ok(None),
        // A diverged model shows up as a non-finite log-prob before any loss is formed.
        Err(TrainError::Math(MathError::NonFinite { value, .. })) => Err(TrainError::NonFinite {
            step: 0,
            value,
            source_id: format!("list {}", list.source),
        }),
        Err(e) => Err(e),
    }
}

/// The reference of list `idx` under `mode`.
fn pick_reference<'a>(
    mode: ReferenceMode,
    model: Option<&'a Model>,
    cache: Option<&'a [Vec<f64>]>,
    idx: usize,
) -> Reference<'a> {
    match (mode, model, cache) {
        (ReferenceMode::Cache, _, Some(c)) => Reference::Given(&c[idx]),
        (ReferenceMode::Model, Some(m), _) => Reference::Model(m),
        (ReferenceMode::None, _, _) => Reference::None,
        _ => Reference::DisabledAdapter,
    }
}

/// Cached reference log-probs for the training and held-out lists (`reference.mode = "cache"`).
type RefValues = Option<Vec<Vec<f64>>>;

fn reference_cache(
    cfg: &TrainConfig,
    examples: &Examples,
    reference: &Model,
    dtype: DType,
) -> TrainResult<(RefValues, RefValues)> {
    let Examples::Lists { train, eval, .. } = examples else {
        return Ok((None, None));
    };
    if cfg.reference.mode != ReferenceMode::Cache {
        return Ok((None, None));
    }
    let mut h = Fnv::default();
    model_identity(
        cfg.reference.path.as_ref().unwrap_or(&cfg.model.path),
        &mut h,
    )?;
    if cfg.reference.path.is_none() {
        if let Some(dir) = &cfg.model.sft_adapter {
            let f = dir.join("adapter_model.safetensors");
            h.bytes(&std::fs::read(&f).map_err(|source| TrainError::Io {
                path: f.display().to_string(),
                source,
            })?);
        }
    }
    h.bytes(format!("{dtype:?}").as_bytes());
    let out = &cfg.train.output_dir;
    // Beside a single training file; several files have no one "beside", so their cache lives
    // in the run folder (`data.train.refcache.json`).
    let train_key = match cfg.data.train.paths() {
        [one] => one.clone(),
        _ => out.join("data.train"),
    };
    let (train_vals, eval_vals) = match &cfg.data.eval {
        Some(eval_path) => {
            let (t, how) = refcache::load_or_build(
                &train_key,
                out,
                &train.iter().collect::<Vec<_>>(),
                reference,
                h.0,
                cfg.train.prefix_sharing,
            )?;
            eprintln!("reference cache: {how}");
            let (e, how) = refcache::load_or_build(
                eval_path,
                out,
                &eval.iter().collect::<Vec<_>>(),
                reference,
                h.0,
                cfg.train.prefix_sharing,
            )?;
            eprintln!("reference cache: {how}");
            (t, e)
        }
        None => {
            let all: Vec<&RenderedList> = train.iter().chain(eval).collect();
            let (mut t, how) = refcache::load_or_build(
                &train_key,
                out,
                &all,
                reference,
                h.0,
                cfg.train.prefix_sharing,
            )?;
            eprintln!("reference cache: {how}");
            let e = t.split_off(train.len());
            (t, e)
        }
    };
    Ok((Some(train_vals), Some(eval_vals)))
}

/// The stage's examples and, per file read, what loading did to it.
fn load_examples(cfg: &TrainConfig, tok: &Tokenizer) -> TrainResult<(Examples, Vec<DataReport>)> {
    let files = cfg.data.train.paths();
    let opts = LoadOptions {
        missing: cfg.data.missing_rating,
        drop_truthful_qa: cfg.data.drop_truthful_qa,
        max_length: cfg.data.max_length,
        max_prompt_length: cfg.data.max_prompt_length,
        truncation: cfg.data.truncation,
        use_custom_system_prompt: cfg.data.use_custom_system_prompt,
        skip_invalid: cfg.data.skip_invalid,
        // Several files: each is read over all its own dimensions and the selection is made
        // over their union below (a file need not have every selected dimension).
        dimensions: if files.len() == 1 {
            cfg.data.dimensions.clone()
        } else {
            None
        },
        ..LoadOptions::default()
    };
    // Held-out split: the eval file, else the last `eval_fraction` of the training lists.
    let split = |len: usize| len - ((len as f64) * cfg.data.eval_fraction).floor() as usize;
    let mut reports = Vec::new();
    let mut note = |role: &str, file: &Path, report: LoadReport| {
        reports.push(DataReport {
            role: role.into(),
            file: file.to_path_buf(),
            report,
        })
    };
    let examples = match cfg.train.stage {
        Stage::Preference => {
            // Each file with its own dimensions; the lists are concatenated in file order.
            let mut parts = Vec::with_capacity(files.len());
            for f in files {
                let d = data::load_preferences(f, tok, &opts)?;
                note("train", f, d.report.clone());
                parts.push((f, d));
            }
            let dims = union_dimensions(cfg, &parts)?;
            let mut train = Vec::new();
            for (f, d) in parts {
                let filled = onto_dimensions(cfg, f, &d.dimensions, &dims, d.lists, &mut train)?;
                if let Some(r) = reports
                    .iter_mut()
                    .find(|r| r.file == *f && r.role == "train")
                {
                    r.report.missing_filled += filled;
                }
            }
            let eval = match &cfg.data.eval {
                Some(p) => {
                    let e = data::load_preferences(
                        p,
                        tok,
                        &LoadOptions {
                            dimensions: (files.len() == 1).then(|| dims.clone()),
                            ..opts.clone()
                        },
                    )?;
                    let mut eval = Vec::new();
                    let mut report = e.report;
                    report.missing_filled +=
                        onto_dimensions(cfg, p, &e.dimensions, &dims, e.lists, &mut eval)?;
                    reports.push(DataReport {
                        role: "eval".into(),
                        file: p.clone(),
                        report,
                    });
                    eval
                }
                None => train.split_off(split(train.len())),
            };
            Examples::Lists { dims, train, eval }
        }
        Stage::Sft => {
            let mut train = Vec::new();
            for f in files {
                let d = data::load_sft(f, tok, &opts)?;
                note("train", f, d.report);
                train.extend(d.records);
            }
            let eval = match &cfg.data.eval {
                Some(p) => {
                    let e = data::load_sft(p, tok, &opts)?;
                    note("eval", p, e.report);
                    e.records
                }
                None => train.split_off(split(train.len())),
            };
            Examples::Sft { train, eval }
        }
    };
    Ok((examples, reports))
}

/// The dimensions of a run over several files: `data.dimensions` when given (each must be in
/// some file), else the union of the files' dimensions in order of first appearance.
fn union_dimensions(
    cfg: &TrainConfig,
    parts: &[(&PathBuf, data::PreferenceData)],
) -> TrainResult<Vec<String>> {
    let mut union: Vec<String> = Vec::new();
    for (_, d) in parts {
        for name in &d.dimensions {
            if !union.contains(name) {
                union.push(name.clone());
            }
        }
    }
    let Some(wanted) = &cfg.data.dimensions else {
        return Ok(union);
    };
    if let Some(w) = wanted.iter().find(|w| !union.contains(w)) {
        return Err(TrainError::Config {
            path: cfg.data.train.to_string(),
            field: "data.dimensions".into(),
            message: format!(
                "no training file has the dimension `{w}` (they have: {})",
                union.join(", ")
            ),
        });
    }
    Ok(wanted.clone())
}

/// Moves `lists` (rated on `have`) onto the run's dimensions `dims`, appending them to `out`. A
/// dimension the file does not have is missing for every response and follows
/// `data.missing_rating`: dropped per list (λ renormalised over the rest, the default), filled
/// with the default rating, or an error. Returns how many ratings were filled.
fn onto_dimensions(
    cfg: &TrainConfig,
    file: &Path,
    have: &[String],
    dims: &[String],
    lists: Vec<RenderedList>,
    out: &mut Vec<RenderedList>,
) -> TrainResult<usize> {
    if have == dims {
        out.extend(lists);
        return Ok(0);
    }
    let absent: Vec<&String> = dims.iter().filter(|d| !have.contains(d)).collect();
    let config_err = |message: String| TrainError::Config {
        path: file.display().to_string(),
        field: "data.missing_rating".into(),
        message,
    };
    if !absent.is_empty() && cfg.data.missing_rating == MissingPolicy::Error {
        return Err(config_err(format!(
            "this file has no ratings on {} (missing policy: error)\nhint: combining files with different dimensions needs missing_rating = {{ policy = \"drop-dimension\" }} or a default rating",
            absent.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut filled = 0;
    for mut list in lists {
        let n = list.responses.len();
        let mut ratings = Vec::with_capacity(dims.len());
        for d in dims {
            ratings.push(match have.iter().position(|h| h == d) {
                Some(k) => std::mem::take(&mut list.ratings[k]),
                None => match cfg.data.missing_rating {
                    MissingPolicy::Default(v) => {
                        filled += n;
                        vec![Some(v); n]
                    }
                    _ => vec![None; n],
                },
            });
        }
        // Drop-dimension needs one fully rated dimension left in every list.
        if !ratings.iter().any(|r| r.iter().all(Option::is_some)) {
            return Err(config_err(format!(
                "list {} has no fully rated dimension among {}",
                list.source,
                dims.join(", ")
            )));
        }
        list.ratings = ratings;
        out.push(list);
    }
    Ok(filled)
}

/// Mean NLL over the trained (assistant) positions of one SFT example, with the graph when the
/// adapter is being trained; `None` when the example has no trained position.
fn sft_nll(
    model: &Model,
    adapter: &Adapter,
    ex: &RenderedSft,
    dropout_seed: Option<u64>,
) -> TrainResult<Option<Tensor>> {
    let Some(weights) = SftWeights::of(ex, &model.device)? else {
        return Ok(None);
    };
    let scored = model.score(
        &[sft_request(ex)],
        Some(LoraRun {
            adapter,
            dropout_seed,
        }),
        ScoreOptions::default(),
    )?;
    Ok(Some(weights.nll(&scored)?))
}

/// The one request of an SFT example: every token after the first is scored (the mask picks).
fn sft_request(ex: &RenderedSft) -> ScoreRequest<'_> {
    ScoreRequest {
        ids: &ex.ids,
        start: 1,
    }
}

/// Which scored positions of an SFT example are trained, and how many.
struct SftWeights {
    mask: Tensor, // [T−1] f32, 1 where trained
    count: f32,
}

impl SftWeights {
    /// `None` when the example has no trained position.
    fn of(ex: &RenderedSft, device: &candle_core::Device) -> TrainResult<Option<Self>> {
        // Token t is trained when the mask says so; log-probs exist for positions 1.. only.
        let weights: Vec<f32> = ex.train_mask[1..]
            .iter()
            .map(|&m| f32::from(u8::from(m)))
            .collect();
        let count: f32 = weights.iter().sum();
        if count == 0.0 {
            return Ok(None);
        }
        let mask = Tensor::from_vec(weights, ex.ids.len() - 1, device)?; // [T−1]
        Ok(Some(Self { mask, count }))
    }

    /// `−Σ_t mask_t · log π(ids_t | ids_<t) / count` (a scalar, with the graph of `scored`).
    fn nll(&self, scored: &lambda_dpo_model::Scored) -> candle_core::Result<Tensor> {
        self.nll_of(&scored.token_logprobs)
    }

    /// [`SftWeights::nll`] from this example's token log-probs `[T−1]`.
    fn nll_of(&self, token_logprobs: &Tensor) -> candle_core::Result<Tensor> {
        (token_logprobs * &self.mask)?.sum_all()? * (-1.0 / self.count as f64)
    }
}

/// One SFT micro-batch `(example, dropout seed)…` in one packed forward and one backward: each
/// example's loss (the mean NLL of [`SftWeights::nll`], 0 for an example with no trained
/// position, which is not run) and `grad_scale · Σ_b ∂NLL_b/∂v` for every trainable var
/// (recomputed block by block when `checkpointing`).
///
/// ```text
/// row      ids_0 ++ ids_1 ++ …      (Model::score_packed: positions restarted at 0 for each,
///                                   attention causal within an example only, so example b
///                                   computes what ids_b alone computes; no padding)
/// dropout  example b draws from seed_b  (the masks of ids_b run alone)
/// loss     S = grad_scale · Σ_b NLL_b   ⇒ one backward = the sum of the per-example backwards
/// ```
///
/// Packed rather than right-padded rows ([`Model::score_rows`], the same values): the demo's
/// conversations (21–85 tokens) would spend ~24 % of a padded micro-batch of 4 on padding.
///
/// So the losses, gradients and update equal running the examples one at a time up to float
/// rounding; a batch of one is that path exactly.
fn sft_micro_batch(
    model: &Model,
    adapter: &Adapter,
    vars: &[candle_core::Var],
    batch: &[(&RenderedSft, u64)],
    grad_scale: f64,
    checkpointing: bool,
) -> TrainResult<(Vec<f64>, Vec<Tensor>)> {
    // The examples with a trained position: (position in the batch, weights).
    let mut run = Vec::with_capacity(batch.len());
    for (b, (ex, _)) in batch.iter().enumerate() {
        if let Some(w) = SftWeights::of(ex, &model.device)? {
            run.push((b, w));
        }
    }
    let mut losses = vec![0.0; batch.len()];
    if run.is_empty() {
        return Ok((losses, dense_grads(vec![None; vars.len()], vars)?));
    }
    let requests: Vec<ScoreRequest<'_>> =
        run.iter().map(|(b, _)| sft_request(batch[*b].0)).collect();
    let seeds: Vec<u64> = run.iter().map(|(b, _)| batch[*b].1).collect();
    // `grad_scale · Σ_b NLL_b` of a scored batch (request s ↔ run[s]), the one scalar
    // back-propagated; each example's NLL goes into `losses`.
    let objective =
        |scored: &lambda_dpo_model::Scored, losses: &mut [f64]| -> candle_core::Result<Tensor> {
            let mut nll = Vec::with_capacity(run.len());
            for (s, (b, w)) in run.iter().enumerate() {
                let (from, to) = (scored.offsets[s], scored.offsets[s + 1]);
                let n = w.nll_of(&scored.token_logprobs.narrow(0, from, to - from)?)?;
                losses[*b] = f64::from(n.to_scalar::<f32>()?);
                nll.push(n);
            }
            let sum = match nll.as_slice() {
                [one] => one.clone(),
                _ => Tensor::stack(&nll, 0)?.sum_all()?,
            };
            sum * grad_scale
        };
    let lora = LoraRun {
        adapter,
        dropout_seed: None, // the per-row seeds replace it
    };
    let opts = ScoreOptions::default();
    let grads = if checkpointing {
        // The losses come from the recomputed head: the same values as the stored forward's.
        model
            .score_packed_checkpointed(&requests, Some(lora), Some(&seeds), opts)?
            .backward(|s| objective(s, &mut losses), vars)?
    } else {
        let scored = model.score_packed(&requests, Some(lora), Some(&seeds), opts)?;
        backward_grads(&objective(&scored, &mut losses)?, vars)?
    };
    let grads = dense_grads(grads, vars)?;
    Ok((losses, grads))
}

/// Loss and listwise metrics on the held-out examples, with the mean λ (uniform) and no dropout.
#[allow(clippy::too_many_arguments)]
fn evaluate<'r>(
    cfg: &TrainConfig,
    examples: &Examples,
    model: &Model,
    adapter: &Adapter,
    objective: &Objective,
    reference: &dyn Fn(usize) -> Reference<'r>,
    conditioner: Option<&Conditioner<'_>>,
    log: &mut MetricsLog,
    step: u64,
) -> TrainResult<Option<serde_json::Value>> {
    let mut acc = Accumulator::default();
    match examples {
        Examples::Lists { dims, eval, .. } => {
            if eval.is_empty() {
                return Ok(None);
            }
            let lambda = vec![1.0 / dims.len() as f64; dims.len()];
            for (i, list) in eval.iter().enumerate() {
                let pass = ListPass {
                    dropout_seed: None,
                    grad_scale: 1.0,
                    backward: false,
                    conditioner,
                };
                if let Some((s, lambda)) = preference_list(
                    cfg,
                    model,
                    adapter,
                    &[], // evaluation never back-propagates
                    objective,
                    list,
                    &lambda,
                    reference(i),
                    pass,
                )? {
                    acc.add_list(
                        &s.output,
                        &s.policy_logps,
                        dims,
                        &list.ratings,
                        &lambda,
                        cfg.loss.target_temperature,
                    );
                }
            }
        }
        Examples::Sft { eval, .. } => {
            if eval.is_empty() {
                return Ok(None);
            }
            for ex in eval {
                if let Some(nll) = sft_nll(model, adapter, ex, None)? {
                    acc.add("loss", f64::from(nll.to_scalar::<f32>()?));
                }
            }
        }
    }
    let mut record = serde_json::Map::new();
    record.insert("step".into(), step.into());
    for (k, v) in acc.means() {
        record.insert(format!("eval/{k}"), v.into());
    }
    let value = serde_json::Value::Object(record);
    log.write(&value)?;
    Ok(Some(value))
}

fn check_finite(loss: f64, step: u64, source: &str) -> TrainResult<()> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(TrainError::NonFinite {
            step,
            value: loss,
            source_id: source.to_string(),
        })
    }
}

/// The list at cursor position `seen`: epochs are seeded permutations of 0..n.
fn cursor_index(seen: u64, n: u64, seed: u64) -> usize {
    let epoch = seen / n;
    let mut order: Vec<usize> = (0..n as usize).collect();
    let mut rng = Rng::seed_from_u64(mix(seed, 0xE90C_0000 ^ epoch));
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order[(seen % n) as usize]
}

/// A 64-bit mix of two values (SplitMix64 finaliser), for derived seeds.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
