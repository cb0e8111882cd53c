//! The demo's report: SVG plots into `<out>/plots/` and one self-contained `report.html` with
//! the summary table, the plots and example responses. What is plotted:
//!
//! - training curves (SFT, then the preference runs);
//! - achieved reward of each dimension against its own weight λ_k (mean over the grid points
//!   with that λ_k): a rising line is a model that follows λ;
//! - the fronts: every method's reward vectors over the λ grid in each pair of dimensions,
//!   connected as a staircase through its non-dominated points;
//! - the rewards at uniform λ, per dimension and their mean (the uniform-mix reward).

use std::path::{Path, PathBuf};

use lambda_dpo_math::pareto::pareto_front;

use super::evaluate::MethodResult;
use super::{DemoError, DemoResults};
use crate::report::{BarChart, Connect, LineChart, Report, ScatterChart};

fn io_err(path: &Path, source: std::io::Error) -> DemoError {
    DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Mean reward of dimension `k` at each distinct value of λ_k over the grid.
fn marginal(m: &MethodResult, k: usize) -> Vec<(f64, f64)> {
    let grid = m.lambdas.len() - 1; // the last entry is the extra uniform point
    let mut by: Vec<(f64, f64, usize)> = Vec::new();
    for g in 0..grid {
        let x = m.lambdas[g][k];
        match by.iter_mut().find(|(v, _, _)| (v - x).abs() < 1e-9) {
            Some(e) => {
                e.1 += m.rewards[g][k];
                e.2 += 1;
            }
            None => by.push((x, m.rewards[g][k], 1)),
        }
    }
    by.sort_by(|a, b| a.0.total_cmp(&b.0));
    by.into_iter().map(|(x, s, c)| (x, s / c as f64)).collect()
}

/// Writes the plots and `report.html`; returns the report's path.
pub fn write_report(out: &Path, r: &DemoResults) -> Result<PathBuf, DemoError> {
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| io_err(&plots, e))?;
    let mut figures: Vec<(String, String, String)> = Vec::new(); // (file, svg, caption)

    // Training curves.
    let mut sft = LineChart::new("SFT from scratch: training loss")
        .x_label("optimizer step")
        .y_label("NLL per token");
    let mut pref = LineChart::new("Preference training: loss")
        .x_label("optimizer step")
        .y_label("loss");
    for (name, curve) in &r.training_curves {
        let pts = curve.iter().map(|&(s, l)| (s as f64, l));
        if name == "sft" {
            sft = sft.series("SFT", pts);
        } else {
            pref = pref.series(name.as_str(), pts);
        }
    }
    figures.push((
        "training-sft.svg".into(),
        sft.to_svg(),
        "SFT loss (mean NLL of assistant tokens) of the randomly initialised model.".into(),
    ));
    figures.push(("training-preference.svg".into(), pref.to_svg(), "Preference losses from the SFT model (DPO: −log σ(βΔ) on best vs worst; λ-DPO: listwise cross-entropy, ln 4 at step 0).".into()));

    // Reward of each dimension against its own weight.
    for (k, dim) in r.dimensions.iter().enumerate() {
        let mut c = LineChart::new(format!("{dim}: achieved reward vs λ_{dim}"))
            .x_label(format!("λ_{dim}"))
            .y_label(format!("mean true {dim} reward"))
            .x_range(0.0, 1.0)
            .y_range(0.0, 1.0);
        for m in &r.methods {
            c = c.series(m.label.as_str(), marginal(m, k));
        }
        figures.push((
            format!("reward-vs-lambda-{dim}.svg"),
            c.to_svg(),
            format!("Mean true {dim} reward of sampled responses, averaged over the grid λs with the given λ_{dim}. A model that follows λ rises from left to right; an unconditioned one is flat by construction."),
        ));
    }

    // Fronts in each pair of dimensions.
    let m_dims = r.dimensions.len();
    for a in 0..m_dims {
        for b in a + 1..m_dims {
            let (da, db) = (&r.dimensions[a], &r.dimensions[b]);
            let mut c = ScatterChart::new(format!("Front: {da} vs {db}"))
                .x_label(format!("{da} reward"))
                .y_label(format!("{db} reward"))
                .x_range(0.0, 1.0)
                .y_range(0.0, 1.0);
            for m in &r.methods {
                let grid = m.lambdas.len() - 1;
                let pts: Vec<Vec<f64>> =
                    m.rewards[..grid].iter().map(|v| vec![v[a], v[b]]).collect();
                // The front keeps duplicates (an unconditioned model repeats one point at every
                // λ); draw each distinct point once.
                let mut front: Vec<(f64, f64)> = pareto_front(&pts)?
                    .iter()
                    .map(|&i| (pts[i][0], pts[i][1]))
                    .collect();
                front.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.total_cmp(&q.1)));
                front.dedup();
                c = c.series_with(m.label.as_str(), front, Connect::Step);
            }
            figures.push((
                format!("front-{da}-{db}.svg"),
                c.to_svg(),
                format!("Non-dominated (λ-grid) reward pairs of each method in ({da}, {db}), as a staircase. Unconditioned models give one point: their responses do not depend on λ."),
            ));
        }
    }

    // Uniform λ.
    let mut cats: Vec<String> = r.dimensions.clone();
    cats.push("uniform mix".into());
    let mut bars = BarChart::new("Rewards at uniform λ")
        .y_label("mean true reward")
        .categories(cats);
    for m in &r.methods {
        let mut v = m.uniform_rewards.clone();
        v.push(m.uniform_mix_reward);
        bars = bars.series(m.label.as_str(), v);
    }
    figures.push((
        "uniform-mix.svg".into(),
        bars.to_svg(),
        "Mean true reward per dimension at uniform λ, and their mean (the uniform-mix reward)."
            .into(),
    ));

    for (file, svg, _) in &figures {
        let p = plots.join(file);
        crate::report::html::write_atomic(&p, svg.as_bytes()).map_err(|e| io_err(&p, e))?;
    }

    // The page.
    let mut header = vec![
        "method".to_string(),
        "uniform-mix reward".into(),
        "hypervolume".into(),
        "accuracy".into(),
    ];
    header.extend(r.dimensions.iter().map(|d| format!("controllability {d}")));
    let rows: Vec<Vec<String>> = r
        .methods
        .iter()
        .map(|m| {
            let mut row = vec![
                m.label.clone(),
                format!("{:.3}", m.uniform_mix_reward),
                format!("{:.4}", m.hypervolume),
                format!("{:.2}", m.accuracy),
            ];
            row.extend(m.controllability.iter().map(|c| match c {
                Some(v) => format!("{v:+.2}"),
                None => "0 (constant)".into(),
            }));
            row
        })
        .collect();
    let b = &r.budget;
    let mut page = Report::new("lambda-dpo demo: λ you can turn at inference")
        .paragraph(format!(
            "Seed {}{}. A synthetic world with {} dimensions ({}) and exact reward functions; a tiny Llama SFT-trained from scratch ({} steps), then each preference method trained from that SFT model with the same budget ({} steps × grad-accum {}, LoRA r {}) and seeds. Evaluation: {} eval prompts × {} samples at each λ of the simplex grid (step {}) and at uniform λ, scored with the true rewards. Total time {:.0} s.",
            r.seed,
            if r.quick { " (--quick)" } else { "" },
            r.dimensions.len(),
            r.dimensions.join(", "),
            b.sft_steps,
            b.preference_steps,
            b.grad_accum,
            b.lora_r,
            b.eval_prompts,
            b.samples_per_prompt,
            b.grid_step,
            r.seconds
        ))
        .paragraph("Every reward is worth something only when the answer is right (accuracy: the mean correctness of the answers sampled). The dimensions share four sentences after the answer, and the rewards are shaped so that the best response at λ spends 4·λ_k of them on dimension k: a perfect policy's controllability is 1. Controllability is the Spearman correlation between λ_k and the achieved reward_k across the grid. The paper's λ-DPO never shows λ to the model, so its responses (and rewards) cannot change with λ: its controllability is 0 by construction. With λ rendered into the system message, the same loss gives a model that follows λ.")
        .table("Summary", header, rows);
    for (_, svg, caption) in &figures {
        page = page.figure(svg.clone(), caption.clone());
    }
    let mut ex_rows = Vec::new();
    for m in &r.methods {
        for (l, p, text) in m.examples.iter().take(4) {
            let lam: Vec<String> = l.iter().map(|v| format!("{v:.2}")).collect();
            ex_rows.push(vec![
                m.label.clone(),
                format!("({})", lam.join(", ")),
                p.clone(),
                text.clone(),
            ]);
        }
    }
    page = page.table(
        "Example responses (sampled)",
        ["method", "λ", "prompt", "response"],
        ex_rows,
    );
    let path = out.join("report.html");
    page.write(&path).map_err(|e| io_err(&path, e))?;
    Ok(path)
}
