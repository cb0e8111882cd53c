//! `lambda-dpo score`: evaluates a preference objective on a data file without training — for
//! checking a run, and for comparing models or adapters on the same lists.
//!
//! ```text
//! for each list (prompt x, responses y_1..y_N, ratings r_k):
//!     ℓ_θ(y_i)    policy log-prob   (--model + --adapter; the base alone without --adapter)
//!     ℓ_ref(y_i)  reference log-prob:
//!                   default          --model with the adapter disabled
//!                   --ref-model M    M (+ --ref-adapter A)
//!                   --ref-adapter A  --model + A
//!                   --reference-free zeros
//!     p^λ         = Σ_k λ_k softmax(r_k / T)                          (paper Eq. 9, 13)
//!     loss, P_θ   from the math crate, e.g. λ-DPO: P_θ = softmax(β(x − x_ref)),
//!                 L = − Σ_i p^λ_i log P_θ(i)                          (Eq. 7, 10)
//! ```
//!
//! One JSON line per list on stdout (or `--output`): `source`, `loss`, `policy_logps`,
//! `ref_logps` (null when reference-free), `target` (p^λ), `model_probs` (softmax of the
//! implicit rewards), plus `rewards`, `lengths` and the λ actually used. Log-probs are always the
//! *sums* over response tokens; `--logp mean` divides by `lengths` inside the loss. A summary
//! (mean loss, top-1 agreement with p^λ and with each dimension's ratings) goes to stderr.
//!
//! An SVD-LoRA adapter (policy or reference) runs at each list's λ — the one its target is
//! mixed with — as in training.
//!
//! The forward pass is the trainer's own (`train::list_step` with `backward: false`), so what
//! `score` reports is exactly what training optimises. Bad input (data, λ, flags that do not fit
//! the loss) is an [`InputError`] (exit code 2).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lambda_dpo::data::{self, LambdaSpec, LoadOptions, MissingPolicy};
use lambda_dpo::train::{list_step, ListInput, Reference, StepOptions, TrainError};
use lambda_dpo_math::rank::top1_agreement;
use lambda_dpo_math::{mixed_target, LogpMode, Loss, MathError, Objective};
use lambda_dpo_model::{Adapter, LoraConfig, Model, ScoreOptions, Tokenizer};

use crate::input_error::InputError;
use crate::progress::tokens_bar;
use crate::runtime::{device, parse_dtype};
use crate::scoring::{
    at_list, check_list, check_temperature, data_error, list_logps, parse_missing, RefArgs,
    RefSource,
};

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// Policy model folder (Hugging Face layout); its tokenizer renders text data.
    #[arg(long)]
    model: PathBuf,
    /// PEFT LoRA adapter applied on top of --model for the policy (default: the base alone).
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[command(flatten)]
    reference: RefArgs,
    /// Preference data file (any supported format: listwise, UltraFeedback, TRL pairs, …).
    #[arg(long)]
    data: PathBuf,
    /// The objective: λ-DPO (the paper), a pairwise baseline, or a listwise rival.
    #[arg(long, value_enum, default_value = "lambda-dpo")]
    loss: LossName,
    /// λ over the data's dimensions: `uniform`, `helpfulness=0.7,honesty=0.3`, or weights in
    /// the data's dimension order. Non-negative; normalised to sum 1.
    #[arg(long, default_value = "uniform")]
    lambda: String,
    /// β (ORPO: λ_or). Default: the loss's own (0.1; SimPO 2.0).
    #[arg(long)]
    beta: Option<f64>,
    /// SimPO's target margin γ (default 1.0).
    #[arg(long)]
    gamma: Option<f64>,
    /// How a response's log-prob enters the loss: sum (paper) or mean (authors' code).
    /// IPO, SimPO and ORPO always use per-token means. Default: sum.
    #[arg(long, value_enum)]
    logp: Option<LogpArg>,
    /// Temperature T of the per-dimension target softmax(r/T) (paper Eq. 13); 0 = argmax.
    #[arg(long, default_value_t = 1.0)]
    target_temperature: f64,
    /// Missing ratings: `drop` (leave the dimension out for that prompt, renormalise λ),
    /// `error`, or a default rating (the authors' code uses 1).
    #[arg(long, default_value = "drop", value_parser = parse_missing)]
    missing: MissingPolicy,
    /// Longest prompt + response in tokens (longer ones are truncated as in training).
    #[arg(long, default_value_t = 2048)]
    max_length: usize,
    /// JSONL output, one line per list (default: stdout). Written atomically.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Compute dtype: f32 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

/// `--loss` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LossName {
    #[value(alias = "lambda_dpo")]
    LambdaDpo,
    Dpo,
    #[value(alias = "robust_dpo")]
    RobustDpo,
    Ipo,
    Simpo,
    Orpo,
    #[value(alias = "list_mle")]
    ListMle,
    #[value(alias = "lipo_lambda", alias = "lipo")]
    LipoLambda,
}

/// `--logp` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogpArg {
    Sum,
    Mean,
}

pub fn run(args: &ScoreArgs) -> Result<()> {
    // 1. Flags → objective and λ spec, before anything is loaded.
    let loss = resolve_loss(args)?;
    let objective = Objective::new(loss);
    let lambda_spec = LambdaSpec::parse(&args.lambda, Path::new("--lambda")).map_err(data_error)?;
    check_temperature(args.target_temperature)?;
    let dtype = parse_dtype(&args.dtype)?;
    let device = device()?;

    // 2. Data first: a bad file should fail before the models load.
    let tokenizer = Tokenizer::from_dir(&args.model)
        .with_context(|| format!("loading the tokenizer of {}", args.model.display()))?;
    let opts = LoadOptions {
        missing: args.missing,
        max_length: args.max_length,
        ..LoadOptions::default()
    };
    let data = data::load_preferences(&args.data, &tokenizer, &opts).map_err(data_error)?;
    let dims = data.dimensions.clone();
    let lambda = lambda_spec
        .weights(&dims, Path::new("--lambda"))
        .map_err(data_error)?;
    if data.lists.is_empty() {
        return Err(InputError::new(&args.data, None, None, "no usable preference list").into());
    }

    // 3. Models. Without --adapter the policy is the base itself: an adapter on no projection.
    let model = Model::load(&args.model, dtype, &device)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let adapter = match &args.adapter {
        Some(dir) => Adapter::load(dir, &model.config, &device)
            .with_context(|| format!("loading adapter {}", dir.display()))?,
        None => {
            let empty = LoraConfig {
                targets: Vec::new(),
                ..LoraConfig::default()
            };
            Adapter::new(&model.config, empty, 0, &device)?
        }
    };
    let reference = RefSource::resolve(
        &args.reference,
        loss.uses_reference(),
        loss.name(),
        dtype,
        &device,
        &model,
    )?;
    let vocab = reference.vocab_limit(&model);
    for list in &data.lists {
        check_list(&args.data, list, vocab)?;
    }
    eprintln!(
        "scoring {} lists from {} with {}{} ({}; dimensions: {}; λ = [{}]); reference: {}",
        data.lists.len(),
        args.data.display(),
        args.model.display(),
        args.adapter
            .as_ref()
            .map_or(String::new(), |a| format!(" + {}", a.display())),
        describe_loss(&loss),
        dims.join(", "),
        lambda
            .iter()
            .map(|w| format!("{w:.4}"))
            .collect::<Vec<_>>()
            .join(", "),
        reference.describe(&args.reference, &args.model),
    );
    if args.adapter.is_none()
        && matches!(reference, RefSource::DisabledAdapter)
        && loss.uses_reference()
    {
        eprintln!("note: no --adapter and no --ref-model: policy and reference are the same model, so every implicit reward is 0");
    }

    // 4. One list at a time: target, reference, the trainer's forward and loss.
    let total: u64 = data
        .lists
        .iter()
        .map(|l| {
            l.responses
                .iter()
                .map(|r| (r.len() + l.prompt_ids.len()) as u64)
                .sum::<u64>()
        })
        .sum();
    let bar = tokens_bar(total, "score");
    let mut out = Vec::new();
    let mut summary = Summary::new(&dims);
    for list in &data.lists {
        let mixed = mixed_target(
            &list.ratings,
            &lambda,
            args.target_temperature,
            args.missing,
        )
        .map_err(|e| {
            at_list(&args.data, list, "scores", e.to_string()).hint(
                "`--missing 1` substitutes a rating for missing ones (the authors' code); \
                     `lambda-dpo data inspect FILE` shows them",
            )
        })?;
        let given;
        let reference_for_step = match &reference {
            RefSource::DisabledAdapter => Reference::DisabledAdapter,
            RefSource::Model(m) => Reference::Model(m),
            RefSource::Adapted(m, a) => {
                let a = a.at_lambda(&mixed.lambda)?;
                given = list_logps(
                    m.as_ref().unwrap_or(&model),
                    Some(&a),
                    &list.prompt_ids,
                    &list.responses,
                    &list.source,
                )?;
                Reference::Given(&given)
            }
            RefSource::Free => Reference::None,
        };
        let input = ListInput {
            prompt: &list.prompt_ids,
            responses: &list.responses,
            target: &mixed.target,
        };
        let step_opts = StepOptions {
            chunk_size: usize::MAX,
            dropout_seed: None,
            grad_scale: 1.0,
            backward: false,
            score: ScoreOptions::default(),
            // Separate forwards: the reported numbers are the reference ones.
            prefix_sharing: false,
            gradient_checkpointing: false,
        };
        bar.inc(
            list.responses
                .iter()
                .map(|r| (r.len() + list.prompt_ids.len()) as u64)
                .sum(),
        );
        // An SVD-LoRA policy runs at the λ its target is mixed with, as in training.
        let policy = adapter.at_lambda(&mixed.lambda)?;
        let step = match list_step(
            &model,
            &policy,
            &objective,
            input,
            reference_for_step,
            step_opts,
        ) {
            Ok(s) => s,
            // Pairwise losses need a best and a worst response; a constant target has none.
            Err(TrainError::Math(MathError::NoPreference { .. })) => {
                summary.skipped.push(list.source.clone());
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("scoring {}", list.source)),
        };
        let stats = &step.output.stats;
        summary.add(
            step.output.loss,
            stats.top1_agreement,
            &stats.rewards,
            &list.ratings,
        );
        let line = serde_json::json!({
            "source": list.source,
            "loss": step.output.loss,
            "policy_logps": step.policy_logps,
            "ref_logps": step.reference_logps,
            "target": mixed.target.probs,
            "model_probs": stats.model_probs,
            "rewards": stats.rewards,
            "lengths": step.lengths,
            "lambda": mixed.lambda,
        });
        serde_json::to_writer(&mut out, &line)?;
        out.push(b'\n');
    }
    bar.finish_and_clear();

    match &args.output {
        Some(path) => lambda_dpo_model::io::write_atomic(path, &out)
            .with_context(|| format!("writing {}", path.display()))?,
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), &out)?,
    }
    eprint!("{}", summary.report());
    if let Some(path) = &args.output {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `--loss`, `--beta`, `--gamma`, `--logp` → a validated [`Loss`].
fn resolve_loss(args: &ScoreArgs) -> Result<Loss> {
    let mode = match args.logp.unwrap_or(LogpArg::Sum) {
        LogpArg::Sum => LogpMode::Sum,
        LogpArg::Mean => LogpMode::Mean,
    };
    let defaults = match args.loss {
        LossName::LambdaDpo => Loss::lambda_dpo(),
        LossName::Dpo => Loss::dpo(),
        LossName::RobustDpo => Loss::robust_dpo(),
        LossName::Ipo => Loss::ipo(),
        LossName::Simpo => Loss::simpo(),
        LossName::Orpo => Loss::orpo(),
        LossName::ListMle => Loss::list_mle(),
        LossName::LipoLambda => Loss::lipo_lambda(),
    };
    let fixed_mean = matches!(args.loss, LossName::Ipo | LossName::Simpo | LossName::Orpo);
    if fixed_mean && args.logp.is_some() {
        return Err(InputError::new(
            "--logp",
            None,
            None,
            format!(
                "{} is defined on per-token mean log-probs; --logp does not apply",
                defaults.name()
            ),
        )
        .hint("leave --logp out for ipo, simpo and orpo")
        .into());
    }
    if args.gamma.is_some() && args.loss != LossName::Simpo {
        return Err(InputError::new(
            "--gamma",
            None,
            None,
            "γ is SimPO's margin; it does not apply to this loss",
        )
        .hint("use --gamma with --loss simpo")
        .into());
    }
    let loss = match defaults {
        Loss::LambdaDpo { beta, .. } => Loss::LambdaDpo {
            beta: args.beta.unwrap_or(beta),
            mode,
        },
        Loss::Dpo {
            beta,
            label_smoothing,
            ..
        } => Loss::Dpo {
            beta: args.beta.unwrap_or(beta),
            label_smoothing,
            mode,
        },
        Loss::RobustDpo {
            beta,
            label_smoothing,
            ..
        } => Loss::RobustDpo {
            beta: args.beta.unwrap_or(beta),
            label_smoothing,
            mode,
        },
        Loss::Ipo { beta } => Loss::Ipo {
            beta: args.beta.unwrap_or(beta),
        },
        Loss::Simpo { beta, gamma } => Loss::Simpo {
            beta: args.beta.unwrap_or(beta),
            gamma: args.gamma.unwrap_or(gamma),
        },
        Loss::Orpo { lambda_or } => Loss::Orpo {
            lambda_or: args.beta.unwrap_or(lambda_or),
        },
        Loss::ListMle { beta, .. } => Loss::ListMle {
            beta: args.beta.unwrap_or(beta),
            mode,
        },
        Loss::LipoLambda { beta, .. } => Loss::LipoLambda {
            beta: args.beta.unwrap_or(beta),
            mode,
        },
    };
    loss.validate().map_err(|e| {
        anyhow::Error::new(
            InputError::new("--beta", None, None, e.to_string())
                .hint("β is a positive number, e.g. --beta 0.1"),
        )
    })?;
    Ok(loss)
}

fn describe_loss(loss: &Loss) -> String {
    let mode = |m: &LogpMode| match m {
        LogpMode::Sum => "sum",
        LogpMode::Mean => "mean",
    };
    match loss {
        Loss::LambdaDpo { beta, mode: m }
        | Loss::Dpo { beta, mode: m, .. }
        | Loss::RobustDpo { beta, mode: m, .. }
        | Loss::ListMle { beta, mode: m }
        | Loss::LipoLambda { beta, mode: m } => {
            format!("{} β {beta}, {} log-probs", loss.name(), mode(m))
        }
        Loss::Ipo { beta } => format!("ipo β {beta}"),
        Loss::Simpo { beta, gamma } => format!("simpo β {beta}, γ {gamma}"),
        Loss::Orpo { lambda_or } => format!("orpo λ_or {lambda_or}"),
    }
}

/// Running totals for the stderr summary.
struct Summary {
    dims: Vec<String>,
    losses: Vec<f64>,
    /// Highest-reward response is one of p^λ's best.
    top1_target: f64,
    /// Per dimension: (agreements, lists rated on every response).
    top1_dims: Vec<(f64, usize)>,
    skipped: Vec<String>,
}

impl Summary {
    fn new(dims: &[String]) -> Self {
        Self {
            dims: dims.to_vec(),
            losses: Vec::new(),
            top1_target: 0.0,
            top1_dims: vec![(0.0, 0); dims.len()],
            skipped: Vec::new(),
        }
    }

    fn add(&mut self, loss: f64, top1_target: f64, rewards: &[f64], ratings: &[Vec<Option<f64>>]) {
        self.losses.push(loss);
        self.top1_target += top1_target;
        for (k, slot) in self.top1_dims.iter_mut().enumerate() {
            // Only lists where every response is rated on this dimension count.
            let Some(r) = ratings
                .get(k)
                .and_then(|r| r.iter().copied().collect::<Option<Vec<f64>>>())
            else {
                continue;
            };
            slot.1 += 1;
            slot.0 += top1_agreement(rewards, &r);
        }
    }

    fn report(&self) -> String {
        let n = self.losses.len();
        let mut s = String::new();
        // Ties at the top of the rewards count fractionally, so the numerator may be a fraction.
        let frac = |a: f64, b: usize| {
            if b == 0 {
                "n/a".to_string()
            } else {
                format!("{:.3} ({a}/{b})", a / b as f64)
            }
        };
        if n > 0 {
            let mean = self.losses.iter().sum::<f64>() / n as f64;
            s.push_str(&format!("scored {n} lists: mean loss {mean:.6}\n"));
        } else {
            s.push_str("scored 0 lists\n");
        }
        s.push_str(&format!(
            "top-1 agreement (highest-reward response is a best one): p^λ {}",
            frac(self.top1_target, n)
        ));
        for (dim, &(a, b)) in self.dims.iter().zip(&self.top1_dims) {
            s.push_str(&format!("; {dim} {}", frac(a, b)));
        }
        s.push('\n');
        if !self.skipped.is_empty() {
            s.push_str(&format!(
                "note: {} lists have no best/worst response under this λ and were skipped (pairwise loss), first: {}\n",
                self.skipped.len(),
                self.skipped[0]
            ));
        }
        s
    }
}
