//! `lambda-dpo export`: merge an adapter into its base model and save a Hugging Face folder.
//!
//! With `--lambda`, the merged weights are those of one point of the preference trade-off: an
//! SVD-LoRA adapter at that λ, or a soup of several adapters (`--adapter` repeated) weighted by
//! it. A prompt-conditioned adapter merges as it is (λ stays a prompt matter); its
//! `lambda_conditioning.json` is copied into the output so the rendering travels with it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use lambda_dpo::train::conditioning::CONDITIONING_FILE;
use lambda_dpo_model::{export::merge_and_save, ModelConfig};

use crate::input_error::InputError;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Base model folder (Hugging Face layout).
    #[arg(long)]
    model: PathBuf,
    /// PEFT LoRA adapter folder to merge. Repeat it, with --lambda, to merge a soup.
    #[arg(long, required = true)]
    adapter: Vec<PathBuf>,
    /// Preference weights, comma-separated: the λ an SVD-LoRA adapter is merged at (one weight
    /// per preference dimension, on the simplex), or one soup weight per --adapter.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    lambda: Option<Vec<f64>>,
    /// Output folder for the merged model.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &ExportArgs) -> Result<()> {
    let config = ModelConfig::from_dir(&args.model)
        .with_context(|| format!("reading model {}", args.model.display()))?;
    let (adapter, prompt) = crate::adapters::load_adapter(
        &args.adapter,
        args.lambda.as_deref(),
        &config,
        &Device::Cpu,
    )?;
    if prompt.is_some() {
        return Err(InputError::new(
            "--lambda",
            None,
            None,
            format!(
                "{} is prompt-conditioned: λ is read from the system message at inference, not stored in the weights",
                args.adapter[0].display()
            ),
        )
        .hint("export without --lambda (the rendering is copied into the output as lambda_conditioning.json), then put λ into the system message when you prompt the merged model")
        .into());
    }
    let adapter = adapter.expect("at least one --adapter");
    let summary = merge_and_save(&args.model, &adapter, &args.out)
        .with_context(|| format!("exporting to {}", args.out.display()))?;
    let record = args.adapter[0].join(CONDITIONING_FILE);
    if args.adapter.len() == 1 && args.lambda.is_none() && record.is_file() {
        let to = args.out.join(CONDITIONING_FILE);
        std::fs::copy(&record, &to)
            .with_context(|| format!("copying {} to {}", record.display(), to.display()))?;
    }
    eprintln!(
        "merged {} projections{}; wrote {} tensors and {} other files to {}",
        summary.merged,
        match &args.lambda {
            Some(l) if args.adapter.len() > 1 =>
                format!(" (soup of {} adapters, λ = {l:?})", args.adapter.len()),
            Some(l) => format!(" at λ = {l:?}"),
            None => String::new(),
        },
        summary.tensors,
        summary.copied_files.len(),
        args.out.display()
    );
    Ok(())
}
