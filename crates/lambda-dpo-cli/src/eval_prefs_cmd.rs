//! `lambda-dpo eval-prefs`: how well a policy's implicit rewards agree with each preference
//! dimension's ratings on held-out lists, at one λ or over a λ grid.
//!
//! ```text
//! for each λ (one, or every point of the simplex grid with step 1/K under --sweep K):
//!     policy at λ      plain adapter: the same at every λ; SVD-LoRA: λ in the adapter;
//!                      soup (one --adapter per dimension): Σ λ_k ΔW_k; prompt-conditioned:
//!                      λ rendered into each prompt's system message
//!     for each list:   z_i = β (ℓ_θ(y_i) − ℓ_ref(y_i))      (per-token means with --logp mean)
//!                      per dimension k: CE_k, top-1_k, pairwise accuracy_k, Kendall τ-b_k
//!                      (lambda_dpo_math::prefeval), and CE / top-1 against p^λ
//! ```
//!
//! Log-probs that do not depend on λ (the reference; a policy that cannot be steered) are
//! computed once. With `--sweep`, controllability = Spearman ρ between λ_k and the pairwise
//! accuracy on dimension k across the grid (n/a when the policy does not change with λ).
//! Output: a table on stdout, `--output` JSON (every λ point), `--plot` SVG (pairwise accuracy
//! on each dimension against its own weight).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lambda_dpo::data::{self, LambdaSpec, LoadOptions, MissingPolicy, RenderedList};
use lambda_dpo::report::svg::LineChart;
use lambda_dpo::train::conditioning::Conditioner;
use lambda_dpo_math::mixed_target;
use lambda_dpo_math::pareto::spearman;
use lambda_dpo_math::prefeval::{DimensionScores, PrefEval};
use lambda_dpo_math::simplex::simplex_grid;
use lambda_dpo_model::{Adapter, Model, Tokenizer};
use serde_json::json;

use crate::adapters::AdapterSet;
use crate::input_error::InputError;
use crate::progress::tokens_bar;
use crate::runtime::{device, parse_dtype};
use crate::scoring::{
    check_list, check_temperature, data_error, list_logps, parse_missing, RefArgs, RefSource,
};

#[derive(clap::Args, Debug)]
pub struct EvalPrefsArgs {
    /// Model folder (Hugging Face layout); its tokenizer renders text data.
    #[arg(long)]
    model: PathBuf,
    /// PEFT LoRA adapter of the policy. Repeat it, one per preference dimension in the data's
    /// order, to evaluate their soup Σ λ_k ΔW_k.
    #[arg(long)]
    adapter: Vec<PathBuf>,
    #[command(flatten)]
    reference: RefArgs,
    /// Held-out preference data (any supported format).
    #[arg(long)]
    data: PathBuf,
    /// λ over the data's dimensions: `uniform`, `helpfulness=0.7,honesty=0.3`, or weights in
    /// the data's order. Mixes the target p^λ and, for a steerable policy, conditions it.
    #[arg(long, default_value = "uniform", conflicts_with = "sweep")]
    lambda: String,
    /// Evaluate every λ of the simplex grid with step 1/K (e.g. 4 on 4 dimensions: 35 points).
    #[arg(long, value_name = "K")]
    sweep: Option<usize>,
    /// β of the implicit reward β(ℓ_θ − ℓ_ref).
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Summed (the paper) or per-token mean log-probs in the implicit reward.
    #[arg(long, value_enum, default_value = "sum")]
    logp: Logp,
    /// Temperature T of each dimension's target softmax(r/T); 0 = argmax.
    #[arg(long, default_value_t = 1.0)]
    target_temperature: f64,
    /// Missing ratings in p^λ: `drop` (renormalise λ over the rest), `error`, or a default
    /// rating. Per-dimension metrics always leave out lists with a missing rating (counted).
    #[arg(long, default_value = "drop", value_parser = parse_missing)]
    missing: MissingPolicy,
    /// Longest prompt + response in tokens (longer ones are truncated as in training).
    #[arg(long, default_value_t = 2048)]
    max_length: usize,
    /// JSON results (every λ point), written atomically.
    #[arg(long)]
    output: Option<PathBuf>,
    /// SVG plot of each dimension's pairwise accuracy against its λ weight (needs --sweep;
    /// default: --output with the extension .svg).
    #[arg(long, requires = "sweep")]
    plot: Option<PathBuf>,
    /// Compute dtype: f32 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Logp {
    Sum,
    Mean,
}

/// The scores at one λ.
struct Point {
    lambda: Vec<f64>,
    dims: Vec<DimensionScores>,
    mixed: DimensionScores,
    /// Lists whose p^λ could not be formed (every weighted dimension missing).
    no_target: usize,
}

pub fn run(args: &EvalPrefsArgs) -> Result<()> {
    // 1. Flags, before anything is loaded.
    let spec = LambdaSpec::parse(&args.lambda, Path::new("--lambda")).map_err(data_error)?;
    check_temperature(args.target_temperature)?;
    if !(args.beta > 0.0 && args.beta.is_finite()) {
        return Err(InputError::new(
            "--beta",
            None,
            None,
            format!("expected β > 0, found {}", args.beta),
        )
        .hint("the paper uses β = 0.1")
        .into());
    }
    if args.sweep == Some(0) {
        return Err(InputError::new(
            "--sweep",
            None,
            None,
            "expected K ≥ 1 grid divisions, found 0",
        )
        .hint("--sweep 4 evaluates λ on the 0.25 grid")
        .into());
    }
    let dtype = parse_dtype(&args.dtype)?;
    let device = device()?;

    // 2. Data.
    let tokenizer = Tokenizer::from_dir(&args.model)
        .with_context(|| format!("loading the tokenizer of {}", args.model.display()))?;
    let opts = LoadOptions {
        missing: args.missing,
        max_length: args.max_length,
        ..LoadOptions::default()
    };
    let data = data::load_preferences(&args.data, &tokenizer, &opts).map_err(data_error)?;
    if data.lists.is_empty() {
        return Err(InputError::new(&args.data, None, None, "no usable preference list").into());
    }
    let dims = data.dimensions.clone();
    let lambdas = match args.sweep {
        Some(k) => simplex_grid(dims.len(), 1.0 / k as f64)?,
        None => vec![spec
            .weights(&dims, Path::new("--lambda"))
            .map_err(data_error)?],
    };

    // 3. Models: the policy's adapters once, the reference.
    let model = Model::load(&args.model, dtype, &device)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let set = AdapterSet::load(&args.adapter, &model.config, &device)?;
    check_dimensions(args, &set, &dims)?;
    let reference =
        RefSource::resolve(&args.reference, true, "eval-prefs", dtype, &device, &model)?;
    let vocab = reference.vocab_limit(&model);
    for list in &data.lists {
        check_list(&args.data, list, vocab)?;
    }
    let prompt_conditioned = set.prompt_conditioned();
    let conditioner = prompt_conditioned.then(|| Conditioner {
        tokenizer: &tokenizer,
        dimensions: dims.clone(),
        kwargs: Default::default(),
        max_length: args.max_length,
    });
    let ref_steers = matches!(&reference, RefSource::Adapted(_, a) if a.is_lambda_conditioned());
    eprintln!(
        "eval-prefs: {} lists from {} ({} dimensions: {}), {} λ point{}; policy {}{}{}; reference: {}",
        data.lists.len(),
        args.data.display(),
        dims.len(),
        dims.join(", "),
        lambdas.len(),
        if lambdas.len() == 1 { "" } else { "s" },
        args.model.display(),
        args.adapter
            .iter()
            .map(|a| format!(" + {}", a.display()))
            .collect::<String>(),
        if set.steerable() {
            " (steered by λ)"
        } else {
            " (does not depend on λ)"
        },
        reference.describe(&args.reference, &args.model),
    );
    if args.adapter.is_empty() && matches!(reference, RefSource::DisabledAdapter) {
        eprintln!("note: no --adapter and no --ref-model: policy and reference are the same model, so every implicit reward is 0");
    }

    // 4. Log-probs: what depends on λ per point, the rest once.
    let per_point_policy = set.steerable();
    let per_point_ref = ref_steers || prompt_conditioned;
    let list_tokens: u64 = data
        .lists
        .iter()
        .map(|l| {
            l.responses
                .iter()
                .map(|r| (r.len() + l.prompt_ids.len()) as u64)
                .sum::<u64>()
        })
        .sum();
    let passes = |per_point: bool| if per_point { lambdas.len() as u64 } else { 1 };
    let has_ref = !matches!(reference, RefSource::Free);
    let bar = tokens_bar(
        list_tokens * (passes(per_point_policy) + if has_ref { passes(per_point_ref) } else { 0 }),
        "eval-prefs",
    );
    let logps = |adapter: Option<&Adapter>,
                 lambda: &[f64],
                 which: Which|
     -> Result<Vec<Vec<f64>>> {
        data.lists
            .iter()
            .map(|list| {
                let prompt = match &conditioner {
                    Some(c) => Cow::Owned(
                        c.prompt_ids(
                            &list.source,
                            list.prompt_messages.as_deref(),
                            lambda,
                            list.responses.iter().map(Vec::len).max().unwrap_or(0),
                        )
                        .with_context(|| format!("conditioning {}", list.source))?,
                    ),
                    None => Cow::Borrowed(&list.prompt_ids),
                };
                let out = match which {
                    Which::Policy => {
                        list_logps(&model, adapter, &prompt, &list.responses, &list.source)
                    }
                    Which::Reference => reference_logps(&reference, &model, lambda, &prompt, list),
                }?;
                bar.inc(
                    list.responses
                        .iter()
                        .map(|r| (r.len() + prompt.len()) as u64)
                        .sum(),
                );
                Ok(out)
            })
            .collect()
    };
    let fixed_policy = if per_point_policy {
        None
    } else {
        let (adapter, _) = set.bind(None)?;
        Some(logps(adapter.as_deref(), &lambdas[0], Which::Policy)?)
    };
    let fixed_ref = if per_point_ref || !has_ref {
        None
    } else {
        Some(logps(None, &lambdas[0], Which::Reference)?)
    };
    let mut points = Vec::with_capacity(lambdas.len());
    for lambda in &lambdas {
        let policy = match &fixed_policy {
            Some(p) => Cow::Borrowed(p),
            None => {
                let (adapter, _) = set.bind(Some(lambda))?;
                Cow::Owned(logps(adapter.as_deref(), lambda, Which::Policy)?)
            }
        };
        let refs = match (&fixed_ref, has_ref) {
            (Some(r), _) => Some(Cow::Borrowed(r)),
            (None, true) => Some(Cow::Owned(logps(None, lambda, Which::Reference)?)),
            (None, false) => None,
        };
        points.push(score_point(
            args,
            &data.lists,
            lambda,
            &policy,
            refs.as_deref().map(Vec::as_slice),
        )?);
    }
    bar.finish_and_clear();

    // 5. Report.
    let controllability = (lambdas.len() > 1).then(|| controllability(&dims, &points));
    print!("{}", table(&dims, &points, controllability.as_deref()));
    if let Some(path) = &args.output {
        let doc = json!({
            "model": args.model,
            "adapters": args.adapter,
            "data": args.data,
            "dimensions": dims,
            "reference": reference.describe(&args.reference, &args.model),
            "beta": args.beta,
            "logp": format!("{:?}", args.logp).to_lowercase(),
            "target_temperature": args.target_temperature,
            "steerable": per_point_policy,
            "sweep": args.sweep,
            "points": points.iter().map(|p| json!({
                "lambda": p.lambda,
                "dimensions": dims.iter().zip(&p.dims).map(|(d, s)| (d.clone(), json!(s))).collect::<serde_json::Map<_, _>>(),
                "mixed": p.mixed,
                "lists_without_target": p.no_target,
            })).collect::<Vec<_>>(),
            "controllability": controllability.as_ref().map(|c| dims.iter().zip(c).map(|(d, r)| (d.clone(), json!(r))).collect::<serde_json::Map<_, _>>()),
        });
        lambda_dpo_model::io::write_atomic(path, serde_json::to_string_pretty(&doc)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    let plot = args.plot.clone().or_else(|| {
        args.sweep
            .and(args.output.as_ref().map(|o| o.with_extension("svg")))
    });
    if let Some(path) = plot {
        let mut chart = LineChart::new("Pairwise accuracy on each dimension vs its weight λ_k")
            .x_label("λ_k")
            .y_label("pairwise accuracy (mean over the grid points with that λ_k)");
        for (k, d) in dims.iter().enumerate() {
            chart = chart.series(d.clone(), accuracy_by_weight(&points, k));
        }
        lambda_dpo_model::io::write_atomic(&path, chart.to_svg().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Which {
    Policy,
    Reference,
}

/// `ℓ_ref` of one list (at λ for an SVD-LoRA reference adapter).
fn reference_logps(
    reference: &RefSource,
    model: &Model,
    lambda: &[f64],
    prompt: &[u32],
    list: &RenderedList,
) -> Result<Vec<f64>> {
    match reference {
        RefSource::DisabledAdapter => {
            list_logps(model, None, prompt, &list.responses, &list.source)
        }
        RefSource::Model(m) => list_logps(m, None, prompt, &list.responses, &list.source),
        RefSource::Adapted(m, a) => {
            let a = a.at_lambda(lambda)?;
            list_logps(
                m.as_ref().unwrap_or(model),
                Some(&a),
                prompt,
                &list.responses,
                &list.source,
            )
        }
        RefSource::Free => Ok(vec![0.0; list.responses.len()]),
    }
}

/// Every list's metrics at one λ.
fn score_point(
    args: &EvalPrefsArgs,
    lists: &[RenderedList],
    lambda: &[f64],
    policy: &[Vec<f64>],
    reference: Option<&[Vec<f64>]>,
) -> Result<Point> {
    let mut eval = PrefEval::new(lambda.len(), args.target_temperature);
    let mut no_target = 0;
    for (i, list) in lists.iter().enumerate() {
        let rewards: Vec<f64> = (0..list.responses.len())
            .map(|j| {
                let diff = policy[i][j] - reference.map_or(0.0, |r| r[i][j]);
                let scale = match args.logp {
                    Logp::Sum => 1.0,
                    Logp::Mean => list.responses[j].len().max(1) as f64,
                };
                args.beta * diff / scale
            })
            .collect();
        let target =
            mixed_target(&list.ratings, lambda, args.target_temperature, args.missing).ok();
        if target.is_none() {
            no_target += 1;
        }
        eval.add(
            &rewards,
            &list.ratings,
            target.as_ref().map(|t| t.target.probs.as_slice()),
        )
        .with_context(|| format!("scoring {}", list.source))?;
    }
    Ok(Point {
        lambda: lambda.to_vec(),
        dims: eval.dimensions(),
        mixed: eval.mixed(),
        no_target,
    })
}

/// Soups map weights to adapters and conditioned adapters to their training dimensions: both
/// must line up with the data's dimensions.
fn check_dimensions(args: &EvalPrefsArgs, set: &AdapterSet, dims: &[String]) -> Result<()> {
    if args.adapter.len() > 1 && args.adapter.len() != dims.len() {
        return Err(InputError::new(
            "--adapter",
            None,
            None,
            format!(
                "{} adapters for {} preference dimensions ({}); a soup takes one adapter per dimension, in the data's order",
                args.adapter.len(),
                dims.len(),
                dims.join(", ")
            ),
        )
        .into());
    }
    if let Some(trained) = set.dimensions() {
        if trained != dims {
            return Err(InputError::new(
                "--data",
                None,
                None,
                format!(
                    "the data's dimensions ({}) are not the ones {} was conditioned on ({})",
                    dims.join(", "),
                    args.adapter[0].display(),
                    trained.join(", ")
                ),
            )
            .hint("evaluate on data rated on the same dimensions, in the same order")
            .into());
        }
    }
    Ok(())
}

/// Spearman ρ between λ_k and the pairwise accuracy on k across the grid, per dimension.
fn controllability(dims: &[String], points: &[Point]) -> Vec<Option<f64>> {
    (0..dims.len())
        .map(|k| {
            let (x, y): (Vec<f64>, Vec<f64>) = points
                .iter()
                .filter_map(|p| p.dims[k].pairwise_accuracy.map(|a| (p.lambda[k], a)))
                .unzip();
            spearman(&x, &y).ok().flatten()
        })
        .collect()
}

/// (λ_k, mean pairwise accuracy_k over the points with that weight), ascending in λ_k.
fn accuracy_by_weight(points: &[Point], k: usize) -> Vec<(f64, f64)> {
    let mut groups: Vec<(f64, f64, usize)> = Vec::new();
    for p in points {
        let Some(a) = p.dims[k].pairwise_accuracy else {
            continue;
        };
        match groups.iter_mut().find(|g| (g.0 - p.lambda[k]).abs() < 1e-9) {
            Some(g) => {
                g.1 += a;
                g.2 += 1;
            }
            None => groups.push((p.lambda[k], a, 1)),
        }
    }
    groups.sort_by(|a, b| a.0.total_cmp(&b.0));
    groups
        .into_iter()
        .map(|(x, s, n)| (x, s / n as f64))
        .collect()
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.3}"))
}

/// The stdout table: per dimension at one λ, or one row per λ for a sweep.
fn table(dims: &[String], points: &[Point], controllability: Option<&[Option<f64>]>) -> String {
    let mut s = String::new();
    if let [p] = points {
        s.push_str(&format!(
            "λ = [{}]\n",
            p.lambda
                .iter()
                .map(|w| format!("{w:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        s.push_str(&format!(
            "{:<24} {:>6} {:>8} {:>7} {:>9} {:>7} {:>8}\n",
            "target", "lists", "CE", "top-1", "pair-acc", "pairs", "τ-b"
        ));
        let rows = dims
            .iter()
            .map(String::as_str)
            .zip(&p.dims)
            .chain(std::iter::once(("p^λ (mixed)", &p.mixed)));
        for (name, d) in rows {
            s.push_str(&format!(
                "{:<24} {:>6} {:>8} {:>7} {:>9} {:>7} {:>8}\n",
                name,
                d.lists,
                fmt(d.cross_entropy),
                fmt(d.top1),
                fmt(d.pairwise_accuracy),
                d.pairs,
                fmt(d.kendall_tau)
            ));
        }
        let skipped: Vec<String> = dims
            .iter()
            .zip(&p.dims)
            .filter(|(_, d)| d.skipped > 0)
            .map(|(n, d)| format!("{n} {}", d.skipped))
            .collect();
        if !skipped.is_empty() {
            s.push_str(&format!(
                "lists left out for a missing rating: {}\n",
                skipped.join(", ")
            ));
        }
        if p.no_target > 0 {
            s.push_str(&format!(
                "lists without a p^λ (every weighted dimension missing): {}\n",
                p.no_target
            ));
        }
        return s;
    }
    s.push_str("pairwise accuracy per dimension at each λ (CE against p^λ last)\n");
    s.push_str(&format!("{:<32}", "λ"));
    for d in dims {
        s.push_str(&format!(" {:>12}", truncate(d, 12)));
    }
    s.push_str(&format!(" {:>9}\n", "CE(p^λ)"));
    for p in points {
        let l = p
            .lambda
            .iter()
            .map(|w| format!("{w:.2}"))
            .collect::<Vec<_>>()
            .join(",");
        s.push_str(&format!("{l:<32}"));
        for d in &p.dims {
            s.push_str(&format!(" {:>12}", fmt(d.pairwise_accuracy)));
        }
        s.push_str(&format!(" {:>9}\n", fmt(p.mixed.cross_entropy)));
    }
    if let Some(c) = controllability {
        s.push_str("controllability (Spearman ρ of λ_k vs pairwise accuracy_k):");
        for (d, r) in dims.iter().zip(c) {
            s.push_str(&format!(" {d} {}", fmt(*r)));
        }
        s.push('\n');
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
