//! lm-eval's `results` block: one entry per task and per group, keys and key order as
//! lm-eval 0.4.13 writes them (`name`, `alias`, `sample_len`, then `"<metric>,<filter>"` and
//! `"<metric>_stderr,<filter>"` pairs; groups put `alias` first and add `sample_count`).
//!
//! ```text
//! "arc_easy": {"name": "arc_easy", "alias": "arc_easy", "sample_len": 20,
//!              "acc,none": 0.25, "acc_stderr,none": 0.0993, "acc_norm,none": …, …}
//! "mmlu":     {"alias": "mmlu", "name": "mmlu", "sample_len": 45, "acc,none": …,
//!              "acc_stderr,none": …, "sample_count": {"acc,none": 45}}
//! ```
//!
//! A standard error lm-eval cannot compute (fewer than two items, or a group with such a
//! leaf) is the string `"N/A"`.

use serde_json::{json, Map, Value};

use super::metrics::{mean, mean_stderr, GroupScore};
use super::run::TaskMetric;

/// One metric of a task entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricEntry {
    /// `acc`, `acc_norm`, `exact_match`, …
    pub metric: String,
    /// `none`, `strict-match`, `flexible-extract`, …
    pub filter: String,
    pub value: f64,
    /// `None` or non-finite: written as `"N/A"`.
    pub stderr: Option<f64>,
}

impl MetricEntry {
    /// `metric,filter` over per-item values: their mean and lm-eval's `mean_stderr`.
    pub fn over(metric: &str, filter: &str, xs: &[f64]) -> Self {
        Self {
            metric: metric.into(),
            filter: filter.into(),
            value: mean(xs),
            stderr: Some(mean_stderr(xs)),
        }
    }
}

impl From<&TaskMetric> for MetricEntry {
    /// A multiple-choice task's aggregate (filter `none`).
    fn from(t: &TaskMetric) -> Self {
        Self {
            metric: t.metric.name().into(),
            filter: "none".into(),
            value: t.value,
            stderr: Some(t.stderr),
        }
    }
}

/// lm-eval's alias of a task: the subject alone for MMLU's `mmlu_<subject>` leaves.
pub fn task_alias(task: &str) -> &str {
    task.strip_prefix("mmlu_").unwrap_or(task)
}

fn number_or_na(x: Option<f64>) -> Value {
    match x {
        Some(v) if v.is_finite() => json!(v),
        _ => json!("N/A"),
    }
}

fn number(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// A task's entry.
pub fn task_entry(name: &str, alias: &str, sample_len: usize, metrics: &[MetricEntry]) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("alias".into(), json!(alias));
    m.insert("sample_len".into(), json!(sample_len));
    for e in metrics {
        m.insert(format!("{},{}", e.metric, e.filter), number(e.value));
        m.insert(
            format!("{}_stderr,{}", e.metric, e.filter),
            number_or_na(e.stderr),
        );
    }
    Value::Object(m)
}

/// A group's entry for one metric (lm-eval aggregates `acc` for MMLU).
pub fn group_entry(name: &str, alias: &str, metric: &str, score: &GroupScore) -> Value {
    let key = format!("{metric},none");
    let mut m = Map::new();
    m.insert("alias".into(), json!(alias));
    m.insert("name".into(), json!(name));
    m.insert("sample_len".into(), json!(score.size));
    m.insert(key.clone(), number(score.value));
    m.insert(format!("{metric}_stderr,none"), number_or_na(score.stderr));
    m.insert("sample_count".into(), json!({ key: score.size }));
    Value::Object(m)
}
