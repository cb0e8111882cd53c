//! `lambda-dpo demo`: the whole method, end to end, on a laptop CPU in minutes.
//!
//! 1. Build the synthetic world (known reward functions, [`crate::world`]); write its data in
//!    the real formats (UltraFeedback raw, `messages` SFT), a BPE tokenizer trained on its
//!    text and a randomly initialised tiny Llama as a Hugging Face folder.
//! 2. SFT the tiny model from scratch (every weight trained) so it speaks the world's language.
//! 3. From that SFT model, with the same budget and seeds, train each preference method
//!    ([`methods::Method`]): DPO, λ-DPO as in the paper, λ-DPO with prompt conditioning and
//!    with SVD-LoRA conditioning.
//! 4. Sample responses from every model over a λ grid and score them with the true rewards
//!    ([`evaluate`]); write `results.json`, `report.html` and the SVG plots ([`report`]).
//!
//! Steps 3 and 4 run [`DemoOptions::jobs`] jobs at a time ([`parallel`]), each on one thread.
//!
//! Every run goes through the real trainer from a TOML file written into the demo folder, so
//! each step can be repeated by hand with `lambda-dpo train --config`.

pub mod evaluate;
pub mod methods;
pub mod parallel;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use lambda_dpo_model::{Adapter, Model, Tokenizer};
use serde::Serialize;

use crate::train::conditioning::Conditioning;
use crate::train::error::TrainError;
use crate::train::{train, Progress, RunOptions, TrainConfig};
use crate::world::{Split, TinyLlama, World, WorldConfig, WorldError};
use evaluate::{evaluate_method, EvalSettings, MethodResult};
use methods::{preference_config, sft_config, Budget, Method, RunPaths};

/// What the user chooses.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub out: PathBuf,
    pub quick: bool,
    pub seed: u64,
    /// `section.key=value` overrides applied to every preference run's config.
    pub pref_overrides: Vec<String>,
    /// Overrides applied to the SFT run's config.
    pub sft_overrides: Vec<String>,
    /// Reuse finished runs whose resolved config is unchanged.
    pub reuse_runs: bool,
    /// Preference runs and evaluations run this many at a time, each on one thread
    /// ([`parallel`]); results do not depend on it.
    pub jobs: usize,
}

/// What the demo reports as it goes (the CLI draws progress bars from these). Jobs run in
/// parallel, so progress names its job (`run`: a method key or `sft`).
#[derive(Debug, Clone)]
pub enum DemoEvent<'a> {
    /// A new phase or job starts.
    Phase(String),
    /// A training step of a run.
    Train {
        run: &'a str,
        progress: &'a Progress,
    },
    /// Evaluation progress of a model: responses done of total.
    Sample {
        run: &'a str,
        done: usize,
        total: usize,
    },
    /// A job's training or evaluation finished (its progress bar can go).
    Done { run: &'a str },
}

/// The observer of a demo: called from every job's thread.
pub type Observer<'o> = &'o (dyn Fn(DemoEvent<'_>) + Sync);

/// Everything `results.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct DemoResults {
    pub seed: u64,
    pub quick: bool,
    pub dimensions: Vec<String>,
    pub budget: BudgetRecord,
    pub methods: Vec<MethodResult>,
    /// Per run: (step, loss) of every optimizer step.
    pub training_curves: Vec<(String, Vec<(u64, f64)>)>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BudgetRecord {
    pub sft_steps: u64,
    pub preference_steps: u64,
    pub grad_accum: usize,
    pub lora_r: usize,
    pub eval_prompts: usize,
    pub samples_per_prompt: usize,
    pub grid_step: f64,
    pub train_prompts: usize,
}

/// What the demo wrote.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub report: PathBuf,
    pub results: PathBuf,
    pub results_data: DemoResults,
}

/// Everything that can stop the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Train(Box<TrainError>),
    #[error(transparent)]
    World(Box<WorldError>),
    #[error(transparent)]
    Model(Box<lambda_dpo_model::ModelError>),
    #[error(transparent)]
    Math(#[from] lambda_dpo_math::MathError),
    #[error("{path}: {source}\nhint: check that the output folder is writable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} stopped before its last step")]
    Incomplete(String),
}

impl From<TrainError> for DemoError {
    fn from(e: TrainError) -> Self {
        DemoError::Train(Box::new(e))
    }
}

impl From<WorldError> for DemoError {
    fn from(e: WorldError) -> Self {
        DemoError::World(Box::new(e))
    }
}

impl From<lambda_dpo_model::ModelError> for DemoError {
    fn from(e: lambda_dpo_model::ModelError) -> Self {
        DemoError::Model(Box::new(e))
    }
}

fn io_err(path: &Path, source: std::io::Error) -> DemoError {
    DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_text(path: &Path, text: &str) -> Result<(), DemoError> {
    crate::report::html::write_atomic(path, text.as_bytes()).map_err(|e| io_err(path, e))
}

/// Runs one training job from a TOML text written to `config_path` (with `overrides` applied,
/// as `train --set` does). With `reuse`, a finished run whose resolved config is unchanged is
/// not trained again.
/// `describe` names the run from its resolved config (so `--set` overrides show in the
/// progress line).
fn run_config(
    (key, config_path): (&str, &Path),
    text: &str,
    overrides: &[String],
    reuse: bool,
    describe: &dyn Fn(&TrainConfig) -> String,
    observer: Observer<'_>,
) -> Result<(PathBuf, Vec<(u64, f64)>), DemoError> {
    write_text(config_path, text)?;
    let cfg = TrainConfig::load(config_path, overrides)?;
    observer(DemoEvent::Phase(describe(&cfg)));
    let out = &cfg.train.output_dir;
    let metrics = out.join("metrics.jsonl");
    if reuse {
        if let Some(product) = finished_product(&cfg) {
            observer(DemoEvent::Phase(format!(
                "  reusing the finished run in {}",
                out.display()
            )));
            return Ok((product, read_curve(&metrics)?));
        }
    }
    let summary = train(&cfg, &RunOptions::default(), &mut |p| {
        observer(DemoEvent::Train {
            run: key,
            progress: p,
        })
    })?;
    observer(DemoEvent::Done { run: key });
    let product = summary
        .adapter_dir
        .ok_or_else(|| DemoError::Incomplete(out.display().to_string()))?;
    Ok((product, read_curve(&metrics)?))
}

/// The product of a finished run of exactly `cfg`: its resolved config on disk is identical
/// and the product folder exists.
fn finished_product(cfg: &TrainConfig) -> Option<PathBuf> {
    let out = &cfg.train.output_dir;
    let saved = std::fs::read_to_string(out.join("config.resolved.toml")).ok()?;
    let resolved = toml::to_string_pretty(cfg).ok()?;
    let product = out.join(if cfg.train.full_finetune {
        "model"
    } else {
        "adapter"
    });
    (saved == resolved && product.is_dir()).then_some(product)
}

/// (step, loss) of every training record in a metrics file: the preference loss where the
/// run logs one (the preference runs add an SFT term), else the loss (the SFT run).
fn read_curve(path: &Path) -> Result<Vec<(u64, f64)>, DemoError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let loss = v.get("loss/preference").or_else(|| v.get("loss"))?;
            Some((v.get("step")?.as_u64()?, loss.as_f64()?))
        })
        .collect())
}

/// Runs the demo into `opts.out`.
pub fn run_demo(opts: &DemoOptions, observer: Observer<'_>) -> Result<DemoSummary, DemoError> {
    let started = Instant::now();
    let budget = if opts.quick {
        Budget::quick()
    } else {
        Budget::full()
    };
    let out = &opts.out;
    for sub in ["data", "configs", "runs"] {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
    }

    // 1. The world, its data, tokenizer and the random model.
    observer(DemoEvent::Phase("building the synthetic world".into()));
    let world = World::new(WorldConfig {
        seed: opts.seed,
        ..WorldConfig::default()
    });
    let dims: Vec<String> = world.dimensions().iter().map(|d| d.to_string()).collect();
    let data = out.join("data");
    let (sft_file, uf_train, uf_eval) = (
        data.join("sft.jsonl"),
        data.join("ultrafeedback-train.jsonl"),
        data.join("ultrafeedback-eval.jsonl"),
    );
    world.write_sft(&sft_file, Split::Train, 2)?;
    world.write_ultrafeedback(&uf_train, Split::Train)?;
    world.write_ultrafeedback(&uf_eval, Split::Eval)?;
    let init = out.join("models/init");
    world.write_tiny_llama(&init, &TinyLlama::default(), opts.seed)?;

    // 2. SFT from scratch.
    let sft_run = out.join("runs/sft");
    let (sft_model, sft_curve) = run_config(
        ("sft", &out.join("configs/sft.toml")),
        &sft_config(&init, &sft_file, &sft_run, &budget, opts.seed),
        &opts.sft_overrides,
        opts.reuse_runs,
        &|c| {
            format!(
                "SFT from scratch ({} steps, every weight, lr {:e})",
                c.train.max_steps.unwrap_or(0),
                c.train.learning_rate
            )
        },
        observer,
    )?;
    let mut curves = vec![("sft".to_string(), sft_curve)];

    // 3. The preference methods, same budget and seeds, `opts.jobs` at a time.
    let runs = parallel::map_parallel(opts.jobs, Method::ALL.to_vec(), |method| {
        let run = out.join("runs").join(method.key());
        let text = preference_config(
            method,
            RunPaths {
                model: &sft_model,
                train: &uf_train,
                eval: &uf_eval,
                out: &run,
            },
            dims.len(),
            &budget,
            opts.seed,
        );
        let (adapter, curve) = run_config(
            (
                method.key(),
                &out.join("configs").join(format!("{}.toml", method.key())),
            ),
            &text,
            &opts.pref_overrides,
            opts.reuse_runs,
            &|c| {
                format!(
                    "{} ({} steps, LoRA r {}, lr {:e})",
                    method.label(),
                    c.train.max_steps.unwrap_or(0),
                    c.lora.r,
                    c.train.learning_rate
                )
            },
            observer,
        )?;
        Ok::<_, DemoError>((method, adapter, curve))
    })?;
    let mut products = Vec::new();
    for (method, adapter, curve) in runs {
        curves.push((method.key().to_string(), curve));
        products.push((method, adapter));
    }

    // 4. Sample over the λ grid, score with the true rewards.
    let model = Model::load(&sft_model, DType::F32, &Device::Cpu)?;
    let tokenizer = Tokenizer::from_dir(&sft_model)?;
    let settings = EvalSettings {
        grid_step: budget.grid_step,
        prompts: budget.eval_prompts,
        samples_per_prompt: budget.samples_per_prompt,
        temperature: 0.7,
        max_new_tokens: 64,
        seed: opts.seed,
        batch_size: 64,
        stop_token_ids: lambda_dpo_model::generate::stop_token_ids(
            &sft_model,
            &model.config,
            &tokenizer,
        )?,
    };
    // The SFT model twice: as is, and with λ in the prompt (it saw λ-conditioned
    // demonstrations, so this is what preference training starts from); then every method.
    let mut evaluations: Vec<(Conditioning, &str, &str, Option<&Path>)> = vec![
        (
            Conditioning::None,
            "sft",
            "SFT model (no preference training)",
            None,
        ),
        (
            Conditioning::Prompt,
            "sft-prompt",
            "SFT model + λ in the prompt",
            None,
        ),
    ];
    for (method, dir) in &products {
        evaluations.push((
            method.conditioning(),
            method.key(),
            method.label(),
            Some(dir.as_path()),
        ));
    }
    let results = parallel::map_parallel(
        opts.jobs,
        evaluations,
        |(conditioning, key, label, adapter_dir)| {
            observer(DemoEvent::Phase(format!(
                "sampling {label} over the λ grid"
            )));
            let adapter = adapter_dir
                .map(|dir| Adapter::load(dir, &model.config, &Device::Cpu).map_err(DemoError::from))
                .transpose()?;
            let result = evaluate_method(
                &world,
                &model,
                adapter.as_ref(),
                &tokenizer,
                conditioning,
                (key, label),
                &settings,
                &mut |done, total| {
                    observer(DemoEvent::Sample {
                        run: key,
                        done,
                        total,
                    })
                },
            )?;
            observer(DemoEvent::Done { run: key });
            Ok::<_, DemoError>(result)
        },
    )?;

    // 5. results.json and the report.
    observer(DemoEvent::Phase("writing the report".into()));
    let results_data = DemoResults {
        seed: opts.seed,
        quick: opts.quick,
        dimensions: dims,
        budget: BudgetRecord {
            sft_steps: budget.sft_steps,
            preference_steps: budget.pref_steps,
            grad_accum: budget.grad_accum,
            lora_r: budget.lora_r,
            eval_prompts: budget.eval_prompts,
            samples_per_prompt: budget.samples_per_prompt,
            grid_step: budget.grid_step,
            train_prompts: world.train_prompts().len(),
        },
        methods: results,
        training_curves: curves,
        seconds: started.elapsed().as_secs_f64(),
    };
    let results_path = out.join("results.json");
    write_text(
        &results_path,
        &(serde_json::to_string_pretty(&results_data).expect("plain data") + "\n"),
    )?;
    let report_path = report::write_report(out, &results_data)?;
    Ok(DemoSummary {
        report: report_path,
        results: results_path,
        results_data,
    })
}
