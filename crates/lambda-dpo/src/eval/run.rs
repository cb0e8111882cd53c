//! One multiple-choice task end to end: score every item, lm-eval's per-item metrics, and the
//! task's `value ± stderr` per metric (what the `eval` command and the parity tests share).
//!
//! ```text
//! items ─► encode_pair per request
//!       ─► score_encoded: an item whose requests share their (truncated) context → one packed
//!          prefix-sharing forward; the others → batch_size items per padded forward
//!       ─► per-item metrics (acc, acc_norm, acc_bytes | mc2 as "acc") ─► mean, mean_stderr
//! ```

use lambda_dpo_model::{Model, Tokenizer};

use super::error::Result;
use super::metrics::{acc, acc_bytes, acc_norm, mc2, mean, mean_stderr};
use super::requests::{encode_pair, EncodedRequest};
use super::score::{score_batch, score_item_shared, shared_context, RequestScore};
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

/// How [`score_encoded`] groups requests into forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Run an item whose requests share their context tokens (after left truncation) as one
    /// packed prefix-sharing forward ([`score_item_shared`]).
    pub share_prefix: bool,
    /// The other items are scored this many per padded forward (all their requests as rows);
    /// ≥ 1.
    pub batch_size: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            share_prefix: true,
            // On CPU a batch of several items is not faster (the work per token is the same,
            // padding adds some, and the larger tensors cost page faults): BENCHMARKS.md.
            batch_size: 1,
        }
    }
}

/// lm-eval's `_encode_pair` for every request of every item.
pub fn encode_items(tok: &Tokenizer, items: &[McItem]) -> Result<Vec<Vec<EncodedRequest>>> {
    items
        .iter()
        .map(|item| {
            item.requests
                .iter()
                .map(|r| encode_pair(tok, &r.context, &r.continuation))
                .collect()
        })
        .collect()
}

/// The tokens separate forwards would run for an item (Σ over its requests of the model's
/// input length after truncation): the unit of the progress bar's tokens/s, the same whether
/// or not the context is shared.
pub fn request_tokens(requests: &[EncodedRequest], max_length: usize) -> Result<usize> {
    requests.iter().try_fold(0, |acc, r| {
        Ok(acc + r.model_input(max_length)?.0.len().saturating_sub(1))
    })
}

/// Scores of every request of every item, in item and choice order. `on_item` is called once
/// per scored item, with its index (progress; items of a padded batch are reported when the
/// batch is done).
pub fn score_encoded(
    model: &Model,
    encoded: &[Vec<EncodedRequest>],
    max_length: usize,
    batching: Batching,
    on_item: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<RequestScore>>> {
    let batch_size = batching.batch_size.max(1);
    let mut out: Vec<Option<Vec<RequestScore>>> = vec![None; encoded.len()];
    let mut pending: Vec<usize> = Vec::new();
    let flush = |pending: &mut Vec<usize>,
                 out: &mut [Option<Vec<RequestScore>>],
                 on_item: &mut dyn FnMut(usize)|
     -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let reqs: Vec<&[EncodedRequest]> = pending.iter().map(|&i| &encoded[i][..]).collect();
        for (&i, scores) in pending.iter().zip(score_batch(model, &reqs, max_length)?) {
            out[i] = Some(scores);
            on_item(i);
        }
        pending.clear();
        Ok(())
    };
    for (i, reqs) in encoded.iter().enumerate() {
        if batching.share_prefix && shared_context(reqs, max_length)?.is_some() {
            out[i] = Some(score_item_shared(model, reqs, max_length)?);
            on_item(i);
        } else {
            pending.push(i);
            if pending.len() == batch_size {
                flush(&mut pending, &mut out, on_item)?;
            }
        }
    }
    flush(&mut pending, &mut out, on_item)?;
    Ok(out
        .into_iter()
        .map(|s| s.expect("every item scored"))
        .collect())
}

/// [`encode_items`] then [`score_encoded`].
pub fn score_items(
    model: &Model,
    tok: &Tokenizer,
    items: &[McItem],
    max_length: usize,
    batching: Batching,
    on_item: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<RequestScore>>> {
    score_encoded(
        model,
        &encode_items(tok, items)?,
        max_length,
        batching,
        on_item,
    )
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
