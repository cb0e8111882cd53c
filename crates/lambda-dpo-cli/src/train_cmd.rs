//! `lambda-dpo train --config run.toml [--set section.key=value]... [--resume]`: runs one
//! training job (SFT or a preference loss) and writes the adapter, checkpoints, metrics and the
//! resolved config into the run folder. Progress (step, loss, tokens/s, ETA) on stderr.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use lambda_dpo::train::{train, RunOptions, TrainConfig};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Run configuration (TOML); see configs/ for commented presets.
    #[arg(long)]
    config: PathBuf,
    /// Override a config field, e.g. `--set train.learning_rate=1e-5` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
    /// Continue from the newest checkpoint in the run folder.
    #[arg(long)]
    resume: bool,
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let cfg = TrainConfig::load(&args.config, &args.overrides)
        .with_context(|| format!("reading config {}", args.config.display()))?;
    eprintln!(
        "training {:?} on {} with {} → {}",
        cfg.train.stage,
        cfg.data.train.display(),
        cfg.model.path.display(),
        cfg.train.output_dir.display()
    );
    let bar = ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("step {pos}/{len} [{bar:30}] {msg} ETA {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let summary = train(
        &cfg,
        &RunOptions {
            resume: args.resume,
            stop_after: None,
        },
        &mut |p| {
            bar.set_length(p.total_steps);
            bar.set_position(p.step);
            let tps = p.tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("loss {:.4}  {:.0} tok/s", p.loss, tps));
        },
    )
    .context("training failed")?;
    bar.finish_and_clear();
    eprintln!(
        "done: {} of {} steps; last metrics {}",
        summary.steps, summary.total_steps, summary.last_metrics
    );
    if let Some(e) = &summary.eval_metrics {
        eprintln!("held-out: {e}");
    }
    if summary.skipped_lists > 0 {
        eprintln!("note: {} lists had no best/worst response under their λ and were skipped (pairwise loss)", summary.skipped_lists);
    }
    if let Some(dir) = &summary.adapter_dir {
        println!("{}", dir.display());
    }
    Ok(())
}
