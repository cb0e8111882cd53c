//! `lambda-dpo export`: merge an adapter into its base model and save a Hugging Face folder.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use lambda_dpo_model::{export::merge_and_save, Adapter, ModelConfig};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Base model folder (Hugging Face layout).
    #[arg(long)]
    model: PathBuf,
    /// PEFT LoRA adapter folder to merge.
    #[arg(long)]
    adapter: PathBuf,
    /// Output folder for the merged model.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &ExportArgs) -> Result<()> {
    let config = ModelConfig::from_dir(&args.model)
        .with_context(|| format!("reading model {}", args.model.display()))?;
    let adapter = Adapter::load(&args.adapter, &config, &Device::Cpu)
        .with_context(|| format!("loading adapter {}", args.adapter.display()))?;
    let summary = merge_and_save(&args.model, &adapter, &args.out)
        .with_context(|| format!("exporting to {}", args.out.display()))?;
    eprintln!(
        "merged {} projections; wrote {} tensors and {} other files to {}",
        summary.merged,
        summary.tensors,
        summary.copied_files.len(),
        args.out.display()
    );
    Ok(())
}
