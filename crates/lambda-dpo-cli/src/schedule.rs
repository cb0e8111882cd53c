//! `lambda-dpo schedule`: the performance-driven λ scheduler of the paper's App. D as a command.
//!
//! Reads observed downstream scores at a few λ (`--points`, JSONL lines `{"lambda": [..],
//! "score": y}`), fits a degree-p polynomial by exact (minimum-norm) least squares, scores the
//! candidate λ (`--candidates` file of `{"lambda": [..]}` lines, `--dirichlet K` draws, or every
//! `--grid STEP` point of the simplex) and prints one JSON object on stdout:
//!
//! ```text
//! {"degree", "num_features", "feature_names", "rank", "ridge", "tau", "coefficients": [..],
//!  "fit": [{"lambda", "observed", "predicted"}], "candidates": [{"lambda", "score", "prob"}]}
//! ```
//! with `prob = softmax(τ · score)` over the candidates. The math lives in
//! `lambda_dpo_math::scheduler`; this file only parses, validates (file:line errors) and prints.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lambda_dpo_math::scheduler::{feature_names, num_features, CandidateSource, Schedule};
use serde_json::{json, Value};

use crate::input_error::InputError;

/// Fit observed scores over λ and turn candidate λ into sampling probabilities (paper App. D).
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("candidate_source").required(true).args(["candidates", "dirichlet", "grid"])))]
pub struct ScheduleArgs {
    /// JSONL of observed points, one `{"lambda": [λ_1, …, λ_d], "score": y}` per line.
    #[arg(long, value_name = "POINTS.jsonl", required_unless_present = "runs")]
    pub points: Option<PathBuf>,
    /// Run folders of `lambda-dpo train` with a fixed λ; each contributes (its λ, the mean of
    /// --score's metrics in <run>/<--results>). Combines with --points.
    #[arg(long, num_args = 1.., value_name = "RUN_DIR", requires = "score")]
    pub runs: Vec<PathBuf>,
    /// Metrics averaged into a run's score, `task:metric[,filter]` (lm-eval names), e.g.
    /// `arc_challenge:acc_norm hellaswag:acc_norm gsm8k:exact_match,strict-match`.
    #[arg(long, num_args = 1.., value_name = "TASK:METRIC")]
    pub score: Vec<String>,
    /// The eval results file inside each run folder (`lambda-dpo eval --output`).
    #[arg(long, default_value = lambda_dpo::schedule::DEFAULT_RESULTS)]
    pub results: String,
    /// Polynomial degree p (features: all C(d+p, p) monomials of degree ≤ p).
    #[arg(long, default_value_t = 2)]
    pub degree: usize,
    /// Ridge strength added to the least squares (0 = exact minimum-norm fit).
    #[arg(long, default_value_t = 0.0)]
    pub ridge: f64,
    /// Softmax temperature τ of the sampling probabilities softmax(τ·f) (the paper uses 100).
    #[arg(long)]
    pub tau: f64,
    /// JSONL of candidate λ, one `{"lambda": [..]}` per line.
    #[arg(long, value_name = "CANDIDATES.jsonl")]
    pub candidates: Option<PathBuf>,
    /// Draw this many candidates from a symmetric Dirichlet(α).
    #[arg(long, value_name = "K")]
    pub dirichlet: Option<usize>,
    /// Dirichlet concentration α (1 = uniform on the simplex).
    #[arg(long, default_value_t = 1.0, requires = "dirichlet")]
    pub alpha: f64,
    /// Use every simplex point whose coordinates are multiples of STEP (1/STEP an integer).
    #[arg(long, value_name = "STEP")]
    pub grid: Option<f64>,
    /// Seed of the Dirichlet draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// A scheduler input error as the CLI's input error (exit code 2).
fn schedule_error(e: lambda_dpo::schedule::ScheduleError) -> anyhow::Error {
    let mut ie = InputError::new(
        e.file.clone(),
        e.line,
        e.field.as_deref(),
        e.message.clone(),
    );
    if let Some(h) = &e.hint {
        ie = ie.hint(h.clone());
    }
    ie.into()
}

/// One parsed line of a points or candidates file.
struct Line {
    lambda: Vec<f64>,
    score: Option<f64>,
}

pub fn run(args: &ScheduleArgs) -> Result<()> {
    // Read and validate both files completely before any math, so a bad line fails with its
    // location and nothing is printed on stdout.
    let mut points = Vec::new();
    for run in &args.runs {
        let p = lambda_dpo::schedule::run_point(run, &args.results, &args.score)
            .map_err(schedule_error)?;
        eprintln!("{}: λ = {:?}, score {:.6}", p.source, p.lambda, p.score);
        points.push(Line {
            lambda: p.lambda,
            score: Some(p.score),
        });
    }
    let points_file = args
        .points
        .as_deref()
        .or(args.runs.first().map(|r| r.as_path()))
        .expect("clap requires --points or --runs");
    if let Some(file) = &args.points {
        let expect = points
            .first()
            .map(|p| (p.lambda.len(), args.runs[0].as_path()));
        points.extend(read_lambda_file(file, true, expect)?);
    }
    let dim = points[0].lambda.len();
    if let Some(p) = points.iter().find(|p| p.lambda.len() != dim) {
        return Err(InputError::new(
            points_file,
            None,
            Some("lambda"),
            format!("a run has {} weights, another {dim}", p.lambda.len()),
        )
        .hint("every run needs one weight per preference dimension, in the same order")
        .into());
    }
    let source = match (&args.candidates, args.dirichlet, args.grid) {
        // Candidates from a file must have the points' dimension; the error names both files.
        (Some(path), _, _) => {
            let lines = read_lambda_file(path, false, Some((dim, points_file)))?;
            CandidateSource::Given {
                candidates: lines.into_iter().map(|l| l.lambda).collect(),
            }
        }
        (None, Some(count), _) => CandidateSource::Dirichlet {
            count,
            alpha: args.alpha,
            seed: args.seed,
        },
        (None, None, Some(step)) => CandidateSource::Grid { step },
        (None, None, None) => unreachable!("clap requires one candidate source"),
    };

    // Hyper-parameter errors (τ < 0, a grid step that does not divide 1, …) come back from the
    // math crate as typed errors whose messages already say what is expected.
    let lambdas: Vec<Vec<f64>> = points.iter().map(|p| p.lambda.clone()).collect();
    let scores: Vec<f64> = points.iter().map(|p| p.score.unwrap_or_default()).collect();
    let schedule = Schedule::build(
        &lambdas,
        &scores,
        args.degree,
        args.ridge,
        &source,
        args.tau,
    )
    .context("fitting the schedule")?;

    // Report the fit at the training points next to the observations: with exact least squares
    // they agree to rounding whenever the points are independent (the paper's fit did not).
    let fit: Vec<Value> = points
        .iter()
        .map(|p| -> Result<Value> {
            Ok(json!({
                "lambda": p.lambda,
                "observed": p.score,
                "predicted": schedule.fit.predict(&p.lambda)?,
            }))
        })
        .collect::<Result<_>>()?;
    let candidates: Vec<Value> = schedule
        .candidates
        .iter()
        .zip(&schedule.scores)
        .zip(&schedule.probs)
        .map(|((l, s), p)| json!({"lambda": l, "score": s, "prob": p}))
        .collect();
    // One JSON object on stdout (logs and warnings go to stderr), so the output can be piped.
    let out = json!({
        "degree": args.degree,
        "num_features": num_features(dim, args.degree),
        "feature_names": feature_names(dim, args.degree),
        "rank": schedule.fit.rank,
        "ridge": args.ridge,
        "tau": args.tau,
        "coefficients": schedule.fit.coefficients,
        "fit": fit,
        "candidates": candidates,
    });
    println!("{out}");
    Ok(())
}

/// A points (`with_score`) or candidates file through the library's reader: its off-simplex
/// warnings on stderr, its errors as input errors (exit code 2).
fn read_lambda_file(
    path: &Path,
    with_score: bool,
    expect: Option<(usize, &Path)>,
) -> Result<Vec<Line>> {
    let (lines, warnings) = lambda_dpo::schedule::read_lambda_lines(path, with_score, expect)
        .map_err(schedule_error)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(lines
        .into_iter()
        .map(|l| Line {
            lambda: l.lambda,
            score: l.score,
        })
        .collect())
}
