//! `lambda-dpo train --config run.toml [--set section.key=value]... [--resume]`: runs one
//! training job (SFT or a preference loss) and writes the adapter, checkpoints, metrics and the
//! resolved config into the run folder. Progress (step, loss, tokens/s, ETA) on stderr.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use lambda_dpo::train::{train, DataReport, RunOptions, TrainConfig, TrainError};

use crate::input_error::InputError;

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
        .map_err(|e| match e {
            // An unreadable config file is bad input too.
            TrainError::Io { path, source } => {
                anyhow::Error::new(InputError::new(path, None, None, source.to_string()))
            }
            other => user_error(other),
        })
        .with_context(|| format!("reading config {}", args.config.display()))?;
    eprintln!(
        "training {:?} on {} with {} → {}",
        cfg.train.stage,
        cfg.data.train,
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
    .map_err(user_error)
    .context("training failed")?;
    bar.finish_and_clear();
    for r in &summary.data_reports {
        eprintln!("{}", data_line(r));
    }
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

/// Bad configs and bad data are the user's input (exit code 2, like every other command);
/// a diverged run, a model or checkpoint failure stays a plain failure (exit code 1).
fn user_error(e: TrainError) -> anyhow::Error {
    match e {
        TrainError::Config {
            path,
            field,
            message,
        } => {
            // Messages carry their own `hint:` line; keep it as the input error's hint.
            let (message, hint) = match message.split_once("\nhint: ") {
                Some((m, h)) => (m.to_string(), Some(h.to_string())),
                None => (message, None),
            };
            let field = (!field.is_empty()).then_some(field.as_str());
            let ie = InputError::new(path, None, field, message);
            anyhow::Error::new(match hint {
                Some(h) => ie.hint(h),
                None => ie,
            })
        }
        TrainError::Data(d) => crate::scoring::data_error(*d),
        other => anyhow::Error::new(other),
    }
}

/// One line per data file: what was read, kept, and everything dropped, merged or cut (the
/// full report is `data_report.json` in the run folder). Skipped records make it a warning:
/// `data.skip_invalid` must never skip silently.
fn data_line(d: &DataReport) -> String {
    let r = &d.report;
    let mut parts = vec![format!(
        "{} {}: {} records, {} kept",
        d.role,
        d.file.display(),
        r.records,
        r.kept
    )];
    if r.skipped.count > 0 {
        let kinds: Vec<String> = r
            .skipped
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        parts.push(format!(
            "{} invalid skipped ({})",
            r.skipped.count,
            kinds.join(", ")
        ));
    }
    for (n, what) in [
        (r.filtered_truthful_qa, "truthful_qa filtered"),
        (r.duplicates_removed, "duplicate responses merged"),
        (r.dropped_too_few, "lists with N < 2 dropped"),
        (
            r.dropped_no_target,
            "conversations with nothing to train dropped",
        ),
        (r.truncated, "truncated"),
        (r.missing_filled, "missing ratings filled"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let prefix = if r.skipped.count > 0 {
        "warning: data"
    } else {
        "data"
    };
    format!("{prefix} {}", parts.join("; "))
}
