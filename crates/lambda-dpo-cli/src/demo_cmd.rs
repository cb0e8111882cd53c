//! `lambda-dpo demo [--out DIR] [--quick] [--seed S]`: the built-in main job. Builds a
//! synthetic world with known rewards, SFT-trains a tiny model from scratch, trains DPO, λ-DPO
//! and λ-DPO with prompt conditioning from it, evaluates them over a λ grid with the true
//! rewards and writes `report.html`, `results.json` and SVG plots. Progress on stderr.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
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
    /// Compute threads per job (default: RAYON_NUM_THREADS, else 1). The demo's 0.8M-parameter
    /// model is too small for two threads to pay: 200 SFT steps take 12.7 s on one, 21.9 s on
    /// two; the cores are used by running jobs side by side instead (--jobs).
    #[arg(long)]
    threads: Option<usize>,
    /// Preference runs and evaluations run this many at a time (default: the cores, at most
    /// 4). Results are the same for any value.
    #[arg(long)]
    jobs: Option<usize>,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    // One compute thread per job; the jobs use the cores.
    crate::runtime::set_threads(args.threads, || 1);
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4)
    });
    let started = Instant::now();
    let bars = Bars::new(started);
    let summary = run_demo(
        &DemoOptions {
            out: args.out.clone(),
            quick: args.quick,
            seed: args.seed,
            pref_overrides: args.pref_overrides.clone(),
            sft_overrides: args.sft_overrides.clone(),
            reuse_runs: args.reuse_runs,
            jobs,
        },
        &|event| bars.show(event),
    )
    .context("the demo failed")?;
    bars.clear();
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

/// One progress bar per running job (jobs run in parallel), under the phase lines.
struct Bars {
    started: Instant,
    multi: MultiProgress,
    /// Job key → its bar and when it started (for tokens/s).
    running: Mutex<HashMap<String, (ProgressBar, Instant)>>,
}

impl Bars {
    fn new(started: Instant) -> Self {
        Self {
            started,
            multi: MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr()),
            running: Mutex::new(HashMap::new()),
        }
    }

    fn show(&self, event: DemoEvent<'_>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            DemoEvent::Phase(name) => {
                let line = format!("[{:>5.1}s] {name}", self.started.elapsed().as_secs_f64());
                // Bars are not drawn when stderr is not a terminal; the phase lines still are.
                if self.multi.is_hidden() || self.multi.println(&line).is_err() {
                    eprintln!("{line}");
                }
            }
            DemoEvent::Train { run, progress: p } => {
                let (bar, since) = running.entry(run.to_string()).or_insert_with(|| {
                    self.new_bar(
                        run,
                        p.total_steps,
                        "step {pos}/{len} [{bar:24}] {msg} ETA {eta}",
                    )
                });
                bar.set_position(p.step);
                let tps = p.tokens as f64 / since.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("loss {:.4}  {tps:.0} tok/s", p.loss));
            }
            DemoEvent::Sample { run, done, total } => {
                let (bar, _) = running.entry(run.to_string()).or_insert_with(|| {
                    self.new_bar(
                        run,
                        total as u64,
                        "responses {pos}/{len} [{bar:24}] {per_sec} ETA {eta}",
                    )
                });
                bar.set_position(done as u64);
            }
            DemoEvent::Done { run } => {
                if let Some((bar, _)) = running.remove(run) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
        }
    }

    /// A bar for job `run` (its name in front of `template`) and when it started.
    fn new_bar(&self, run: &str, len: u64, template: &str) -> (ProgressBar, Instant) {
        let bar = self.multi.add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template(&format!("  {{prefix:<18}} {template}"))
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_prefix(run.to_string());
        (bar, Instant::now())
    }

    fn clear(&self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for (_, (bar, _)) in running.drain() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
