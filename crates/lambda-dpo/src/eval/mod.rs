//! Benchmark evaluation computed exactly as lm-eval-harness 0.4.13 computes it (DESIGN.md §3
//! item 10): the same prompts, the same context/continuation token split, the same
//! log-likelihoods, the same metrics and standard errors.
//!
//! ```text
//! local benchmark file ─► tasks    (one reader per layout; lm-eval's doc_to_text/choice/target)
//!   ─► McItem: (context, continuation) requests + gold
//!   ─► requests (lm-eval HF `_encode_pair`; left truncation to max_length)
//!   ─► score    (Σ log p(continuation), is_greedy: one packed prefix-sharing forward per item
//!                whose requests share their context, else several items per padded forward)
//!   ─► metrics  (acc, acc_norm, acc_bytes, mc2, mean ± stderr, group aggregation over leaves)
//! mmlu: the 57 subjects' categories and the group scores
//! results: lm-eval's `results` entries (key names and order)
//! run: one task end to end (score_items, task_metrics, aggregate_task)
//! GSM8K: gsm8k (prompts with sampler's seeded shots; greedy generate_until with left
//!   truncation and stop strings; strict/flexible filters; exact_match)
//! ```
//!
//! What does not live here: the model and tokenizer (`lambda-dpo-model`); the command line
//! (`lambda-dpo eval`). The reference numbers are the fixtures in
//! `tests/fixtures/eval/` (see their README for every lm-eval behaviour reproduced here).

pub mod error;
pub mod gsm8k;
pub mod metrics;
pub mod mmlu;
pub mod requests;
pub mod results;
pub mod run;
pub mod sampler;
pub mod score;
pub mod tasks;

pub use error::EvalError;
pub use metrics::{
    acc, acc_bytes, acc_norm, aggregate_group, mc2, mean, mean_stderr, GroupScore, LeafScore,
};
pub use mmlu::{group_alias, mmlu_category, mmlu_groups, MmluCategory, MMLU_SUBJECTS};
pub use requests::{encode_pair, EncodedRequest};
pub use results::{group_entry, task_alias, task_entry, MetricEntry};
pub use run::{
    aggregate_task, encode_items, request_tokens, score_encoded, score_items, task_metrics,
    Batching, McMetric, TaskMetric,
};
pub use score::{score_batch, score_item, score_item_shared, shared_context, RequestScore};
pub use tasks::{McItem, McRequest};
