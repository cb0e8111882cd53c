//! `lambda-dpo demo [--out DIR] [--quick] [--seed S]`: the built-in main job. Builds a
//! synthetic world with known rewards, SFT-trains a tiny model from scratch, trains DPO, λ-DPO
//! and λ-DPO with prompt conditioning from it, evaluates them over a λ grid with the true
//! rewards and writes `report.html`, `results.json` and SVG plots. Progress on stderr.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use lambda_dpo::demo::{run_demo, DemoEvent, DemoOptions};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Folder for everything the demo writes (data, models, runs, configs, report).
    #[arg(long, default_value = "lambda-dpo-demo")]
    out: PathBuf,
    /// A smaller budget (about a minute on 2 cores): fewer steps, prompts and λs.
    #[arg(long)]
    quick: bool,
    /// Seed of the world, the initial weights, data order, λ draws and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Override a field of every preference run's config (as `train --set`), e.g.
    /// `--set loss.beta=0.5`; repeatable. The configs written into OUT/configs show the result.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pref_overrides: Vec<String>,
    /// Override a field of the SFT run's config, e.g. `--sft-set train.max_steps=800`.
    #[arg(long = "sft-set", value_name = "KEY=VALUE")]
    sft_overrides: Vec<String>,
    /// Reuse a finished run in OUT/runs whose resolved config is unchanged instead of training
    /// it again (e.g. keep the SFT model while trying preference settings).
    #[arg(long)]
    reuse_runs: bool,
    /// Compute threads (default: RAYON_NUM_THREADS, else 1). The demo's 0.8M-parameter model is
    /// too small for two threads to pay: 200 SFT steps take 12.7 s on one, 21.9 s on two.
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    crate::runtime::set_threads(args.threads, || 1);
    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let mut last_phase_start = Instant::now();
    let mut phase_tokens = 0u64;
    let summary = run_demo(
        &DemoOptions {
            out: args.out.clone(),
            quick: args.quick,
            seed: args.seed,
            pref_overrides: args.pref_overrides.clone(),
            sft_overrides: args.sft_overrides.clone(),
            reuse_runs: args.reuse_runs,
        },
        &mut |event| match event {
            DemoEvent::Phase(name) => {
                bar.finish_and_clear();
                bar.reset();
                last_phase_start = Instant::now();
                phase_tokens = 0;
                eprintln!("[{:>5.1}s] {name}", started.elapsed().as_secs_f64());
            }
            DemoEvent::Train(p) => {
                if bar.length() != Some(p.total_steps) {
                    bar.set_style(
                        ProgressStyle::with_template(
                            "  step {pos}/{len} [{bar:30}] {msg} ETA {eta}",
                        )
                        .expect("template")
                        .progress_chars("=> "),
                    );
                    bar.set_length(p.total_steps);
                }
                bar.set_position(p.step);
                phase_tokens = p.tokens;
                let tps = phase_tokens as f64 / last_phase_start.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("loss {:.4}  {tps:.0} tok/s", p.loss));
            }
            DemoEvent::Sample { done, total } => {
                if bar.length() != Some(total as u64) {
                    bar.set_style(
                        ProgressStyle::with_template(
                            "  responses {pos}/{len} [{bar:30}] {per_sec} ETA {eta}",
                        )
                        .expect("template")
                        .progress_chars("=> "),
                    );
                    bar.set_length(total as u64);
                }
                bar.set_position(done as u64);
            }
        },
    )
    .context("the demo failed")?;
    bar.finish_and_clear();
    let r = &summary.results_data;
    eprintln!();
    eprintln!(
        "{:<34} {:>11} {:>11} {:>8}  controllability per dimension ({})",
        "method",
        "uniform-mix",
        "hypervolume",
        "accuracy",
        r.dimensions.join(", ")
    );
    for m in &r.methods {
        let c: Vec<String> = m
            .controllability
            .iter()
            .map(|c| c.map_or("n/a".to_string(), |v| format!("{v:+.2}")))
            .collect();
        eprintln!(
            "{:<34} {:>11.3} {:>11.4} {:>8.2}  {}",
            m.label,
            m.uniform_mix_reward,
            m.hypervolume,
            m.accuracy,
            c.join("  ")
        );
    }
    eprintln!();
    eprintln!(
        "done in {:.0} s. Report: {}",
        started.elapsed().as_secs_f64(),
        summary.report.display()
    );
    eprintln!("results: {}", summary.results.display());
    println!("{}", summary.report.display());
    Ok(())
}
