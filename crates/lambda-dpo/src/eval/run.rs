//! One multiple-choice task end to end: score every item, lm-eval's per-item metrics, and the
//! task's `value ± stderr` per metric (what the `eval` command and the parity tests share).
//!
//! ```text
//! items ─► encode_pair per request ─► score_item per item (one forward)
//!       ─► per-item metrics (acc, acc_norm, acc_bytes | mc2 as "acc") ─► mean, mean_stderr
//! ```

use lambda_dpo_model::{Model, Tokenizer};

use super::error::Result;
use super::metrics::{acc, acc_bytes, acc_norm, mc2, mean, mean_stderr};
use super::requests::encode_pair;
use super::score::{score_item, RequestScore};
use super::tasks::McItem;

/// A per-item metric of a multiple-choice task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum McMetric {
    Acc,
    AccNorm,
    AccBytes,
    /// TruthfulQA mc2, reported by lm-eval under the name `acc`.
    Mc2,
}

impl McMetric {
    /// The name in lm-eval's results (`"<name>,none"`).
    pub fn name(self) -> &'static str {
        match self {
            McMetric::Acc | McMetric::Mc2 => "acc",
            McMetric::AccNorm => "acc_norm",
            McMetric::AccBytes => "acc_bytes",
        }
    }

    /// The value of this metric for one item.
    pub fn of(self, item: &McItem, lls: &[f64]) -> f64 {
        match self {
            McMetric::Acc => acc(lls, item.gold),
            McMetric::AccNorm => acc_norm(lls, &item.choices, item.gold),
            McMetric::AccBytes => acc_bytes(lls, &item.choices, item.gold),
            McMetric::Mc2 => item
                .mc2_labels
                .as_deref()
                .map_or(f64::NAN, |labels| mc2(lls, labels)),
        }
    }
}

/// The metrics lm-eval 0.4.13's YAML lists for each task (`metric_list`).
pub fn task_metrics(task: &str) -> &'static [McMetric] {
    match task {
        "arc_easy" | "arc_challenge" | "hellaswag" | "hellaswag_hflayout" => {
            &[McMetric::Acc, McMetric::AccNorm]
        }
        "truthfulqa_mc2" => &[McMetric::Mc2],
        _ => &[McMetric::Acc], // mmlu_*, truthfulqa_mc1, wsc273
    }
}

/// Scores of every request of every item, in item and choice order. `on_item` is called once
/// per scored item (progress).
pub fn score_items(
    model: &Model,
    tok: &Tokenizer,
    items: &[McItem],
    max_length: usize,
    on_item: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<RequestScore>>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let enc = item
                .requests
                .iter()
                .map(|r| encode_pair(tok, &r.context, &r.continuation))
                .collect::<Result<Vec<_>>>()?;
            let scores = score_item(model, &enc, max_length)?;
            on_item(i);
            Ok(scores)
        })
        .collect()
}

/// A task-level metric: lm-eval's `mean` and `mean_stderr` over the items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskMetric {
    pub metric: McMetric,
    pub value: f64,
    pub stderr: f64,
    pub size: usize,
}

/// Per-item values (`[metric][item]`) and their aggregates, from per-item log-likelihoods.
pub fn aggregate_task(
    items: &[McItem],
    lls: &[Vec<f64>],
    metrics: &[McMetric],
) -> (Vec<Vec<f64>>, Vec<TaskMetric>) {
    let per_item: Vec<Vec<f64>> = metrics
        .iter()
        .map(|m| items.iter().zip(lls).map(|(it, l)| m.of(it, l)).collect())
        .collect();
    let agg = metrics
        .iter()
        .zip(&per_item)
        .map(|(&metric, xs)| TaskMetric {
            metric,
            value: mean(xs),
            stderr: mean_stderr(xs),
            size: xs.len(),
        })
        .collect();
    (per_item, agg)
}
