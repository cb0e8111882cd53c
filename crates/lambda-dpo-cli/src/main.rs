//! `lambda-dpo`: the command-line tool. Parses arguments (clap), resolves them into each
//! command's settings and runs it. Errors are printed as a chain on stderr; bad input exits
//! with code 2, other failures with 1. Data goes to stdout, logs and progress to stderr.

mod adapters;
mod allocator;
mod bench_cmd;
mod data_cmd;
mod demo_cmd;
mod eval_cmd;
mod eval_prefs_cmd;
mod export;
mod generate_cmd;
mod input_error;
mod jsonl;
mod logprobs;
mod progress;
mod runtime;
mod schedule;
mod score_cmd;
mod scoring;
mod train_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use input_error::InputError;

/// Multi-preference λ-weighted listwise DPO for small language models.
#[derive(Debug, Parser)]
#[command(name = "lambda-dpo", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The built-in main job: DPO, λ-DPO and λ-conditioned λ-DPO on a synthetic world with known rewards, evaluated over a λ grid, with a report (minutes on a laptop CPU).
    Demo(demo_cmd::DemoArgs),
    /// Per-token log-probabilities of completions under a model (and optional adapter).
    Logprobs(logprobs::LogprobsArgs),
    /// Merge a LoRA adapter into its base model and write a plain Hugging Face folder.
    Export(export::ExportArgs),
    /// Train an adapter (SFT or a preference loss) from a TOML run configuration.
    Train(train_cmd::TrainArgs),
    /// Fit the performance-driven λ scheduler (paper App. D) and score candidate λs.
    Schedule(schedule::ScheduleArgs),
    /// Inspect and convert data files (preference lists, pairs, SFT conversations).
    Data(data_cmd::DataArgs),
    /// Evaluate a preference objective without training (policy vs reference log-probs, target, loss).
    Score(score_cmd::ScoreArgs),
    /// The paper's benchmarks (ARC, HellaSwag, MMLU, TruthfulQA, WSC273, GSM8K) computed exactly as lm-eval-harness does, on local files.
    Eval(eval_cmd::EvalArgs),
    /// Per-dimension agreement of a policy's implicit rewards with held-out ratings (CE, top-1, pairwise accuracy, Kendall τ), at one λ or over a λ grid.
    EvalPrefs(eval_prefs_cmd::EvalPrefsArgs),
    /// Generate completions (greedy or sampled, batched) with a model, an adapter or an adapter soup.
    Generate(generate_cmd::GenerateArgs),
    /// Measure training-step, scoring and generation throughput, peak memory and MFU on a stated workload (built-in random models or a model folder).
    Bench(bench_cmd::BenchArgs),
}

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Demo(args) => demo_cmd::run(args),
        Command::Logprobs(args) => logprobs::run(args),
        Command::Export(args) => export::run(args),
        Command::Data(args) => data_cmd::run(args),
        Command::Schedule(args) => schedule::run(args),
        Command::Train(args) => train_cmd::run(args),
        Command::Score(args) => score_cmd::run(args),
        Command::Generate(args) => generate_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::EvalPrefs(args) => eval_prefs_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if err
                .chain()
                .any(|c| c.downcast_ref::<InputError>().is_some())
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
