//! `lambda-dpo data inspect|convert`: look at a data file before training on it, and turn any
//! supported format into the canonical listwise, TRL pairwise or SFT `messages` JSONL.
//!
//! Both stream the file (bounded memory whatever its size). Human-readable reports go to
//! stderr; `inspect --json` prints the report as JSON on stdout; `convert` writes its output
//! atomically (or to stdout with `-`). Data errors become [`InputError`]s (exit code 2).

use std::path::PathBuf;

use anyhow::{Context, Result};
use lambda_dpo::data::{
    self, ConvertOptions, ConvertTo, Format, LambdaSpec, LoadOptions, MissingPolicy, Pairs,
    ReadOptions, Truncation,
};
use lambda_dpo_model::Tokenizer;

use crate::scoring::{data_error, parse_missing};

#[derive(clap::Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(clap::Subcommand, Debug)]
enum DataCommand {
    /// What a data file holds: format, records, N per prompt, dimensions and their ratings,
    /// ties, missing ratings, duplicates; with --model, token lengths and truncation counts.
    Inspect(InspectArgs),
    /// Convert a data file to canonical listwise JSONL, TRL pairwise JSONL (best vs worst
    /// under λ, or all pairs), or SFT `messages` JSONL.
    Convert(ConvertArgs),
}

/// Options that decide which records a file yields.
#[derive(clap::Args, Debug)]
struct ReadArgs {
    /// Input format (default: detected from the first record). One of: listwise,
    /// ultrafeedback, trl, argilla, sharegpt-pairwise, hh, helpsteer, messages, alpaca,
    /// sharegpt, kto.
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Skip invalid records (counted and summarised) instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
    /// UltraFeedback: leave out rows whose source is truthful_qa (they overlap the TruthfulQA
    /// benchmark).
    #[arg(long)]
    drop_truthful_qa: bool,
    /// UltraFeedback: use the completions' shared custom_system_prompt as the system message.
    #[arg(long)]
    use_custom_system_prompt: bool,
}

impl ReadArgs {
    fn read_options(&self) -> ReadOptions {
        ReadOptions {
            format: self.format,
            drop_truthful_qa: self.drop_truthful_qa,
            use_custom_system_prompt: self.use_custom_system_prompt,
        }
    }
}

#[derive(clap::Args, Debug)]
struct InspectArgs {
    /// Data file: .json, .jsonl, or either gzip-compressed.
    file: PathBuf,
    /// Model folder whose tokenizer and chat template measure token lengths.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Longest prompt + response in tokens, for the truncation count.
    #[arg(long, default_value_t = 2048)]
    max_length: usize,
    /// Longest prompt in tokens, for the truncation count.
    #[arg(long)]
    max_prompt_length: Option<usize>,
    /// Render text prompts as plain text even if the model has a chat template.
    #[arg(long)]
    no_chat_template: bool,
    /// Print the report as JSON on stdout (the human-readable one still goes to stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(clap::Args, Debug)]
struct ConvertArgs {
    /// Input data file (any supported format).
    input: PathBuf,
    /// Output JSONL file (`-` for stdout).
    output: PathBuf,
    /// Output layout: listwise, pairwise or sft.
    #[arg(long, value_parser = parse_to)]
    to: ConvertTo,
    /// Pairwise: `best-worst` (chosen = best, rejected = worst under λ) or `all` (every
    /// strictly ordered pair).
    #[arg(long, default_value = "best-worst", value_parser = parse_pairs)]
    pairs: Pairs,
    /// λ ranking the responses: `uniform`, `helpfulness=0.5,honesty=0.5`, or weights in the
    /// data's dimension order. Non-negative; normalised to sum 1.
    #[arg(long, default_value = "uniform")]
    lambda: String,
    /// Temperature T of the per-dimension softmax target (paper Eq. 13).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Missing ratings when ranking: `drop` (leave the dimension out for that prompt),
    /// `error`, or a default rating (the authors' code uses 1).
    #[arg(long, default_value = "drop", value_parser = parse_missing)]
    missing: MissingPolicy,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::Inspect(a) => inspect(a),
        DataCommand::Convert(a) => convert(a),
    }
}

fn inspect(a: &InspectArgs) -> Result<()> {
    let tokenizer = match &a.model {
        Some(dir) => Some(
            Tokenizer::from_dir(dir)
                .with_context(|| format!("loading the tokenizer of {}", dir.display()))?,
        ),
        None => None,
    };
    let opts = LoadOptions {
        format: a.read.format,
        drop_truthful_qa: a.read.drop_truthful_qa,
        use_custom_system_prompt: a.read.use_custom_system_prompt,
        skip_invalid: a.read.skip_invalid,
        max_length: a.max_length,
        max_prompt_length: a.max_prompt_length,
        truncation: Truncation::default(),
        chat_template: !a.no_chat_template,
        ..LoadOptions::default()
    };
    let report = data::inspect(&a.file, tokenizer.as_ref(), &opts).map_err(data_error)?;
    eprint!("{}", report.human());
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

fn convert(a: &ConvertArgs) -> Result<()> {
    let lambda =
        LambdaSpec::parse(&a.lambda, std::path::Path::new("--lambda")).map_err(data_error)?;
    let opts = ConvertOptions {
        to: a.to,
        pairs: a.pairs,
        lambda,
        temperature: a.temperature,
        missing: a.missing,
        read: a.read.read_options(),
        skip_invalid: a.read.skip_invalid,
    };
    let report = data::convert_to_file(&a.input, &a.output, &opts).map_err(data_error)?;
    eprintln!("{report}");
    if a.output.as_os_str() != "-" {
        eprintln!("wrote {}", a.output.display());
    }
    Ok(())
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

fn parse_to(s: &str) -> Result<ConvertTo, String> {
    s.parse()
}

fn parse_pairs(s: &str) -> Result<Pairs, String> {
    match s {
        "best-worst" => Ok(Pairs::BestWorst),
        "all" => Ok(Pairs::All),
        _ => Err(format!("expected best-worst or all, found {s:?}")),
    }
}
