//! The paper's performance-driven λ scheduler (App. D) as a closed loop: observed `(λ, score)`
//! points — from the run folders of earlier trainings and their `lambda-dpo eval` results, or
//! from a JSONL file — are fitted (`lambda_dpo_math::scheduler`) and become the λ table a new
//! run samples from (`[lambda] kind = "scheduled"`).
//!
//! ```text
//! round 1:  runs/e1 … runs/e4 (λ = one-hot), runs/uniform (λ = 1/m)      lambda-dpo train
//!           runs/*/eval.json                                            lambda-dpo eval --output
//! round 2:  [lambda] kind = "scheduled", runs = [...], score = ["arc_challenge:acc_norm", …]
//!           → points (λ of each run's config.resolved.toml, mean of the named metrics)
//!           → f(λ) = φ_p(λ)·c by least squares → P(λ_j) = softmax(τ f(λ_j)) over candidates
//!           → the run samples λ from that table; the fit is written to <run>/schedule.json
//! ```
//!
//! A run's λ must be known: `kind = "fixed"` (or a one-row table). A metric is named
//! `task:metric[,filter]` and read from lm-eval's shape `results → task → "metric,filter"`
//! (filter `none` when omitted), e.g. `arc_easy:acc_norm`, `mmlu:acc`,
//! `gsm8k:exact_match,strict-match`. The score of a run is the plain mean of its metrics.
//!
//! What does not live here: the fit itself (math crate) and reading the rest of a training
//! config (`train::config`, which calls [`resolve`] while loading).

use std::fmt;
use std::path::{Path, PathBuf};

use lambda_dpo_math::{scheduler::CandidateSource, LambdaSource, Schedule};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The results file of a run folder when the spec does not name one.
pub const DEFAULT_RESULTS: &str = "eval.json";
/// Where a scheduled run writes its fit.
pub const SCHEDULE_FILE: &str = "schedule.json";

/// A located problem with the scheduler's inputs (`file[:line]: field: message` + hint).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleError {
    pub file: String,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl ScheduleError {
    fn new(file: impl AsRef<Path>, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            file: file.as_ref().display().to_string(),
            line: None,
            field: field.map(str::to_string),
            message: message.into(),
            hint: None,
        }
    }

    fn at(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScheduleError {}

pub type Result<T> = std::result::Result<T, ScheduleError>;

/// One observed point of the fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedPoint {
    pub lambda: Vec<f64>,
    pub score: f64,
    /// Where it came from (`run folder` or `file:line`).
    pub source: String,
}

/// `[lambda] kind = "scheduled"`: where the points come from and how to fit and sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledSpec {
    /// Run folders of earlier trainings with a known λ and an eval results file.
    #[serde(default)]
    pub runs: Vec<PathBuf>,
    /// The results file inside each run folder (`lambda-dpo eval --output`).
    #[serde(default = "default_results")]
    pub results: String,
    /// Metrics averaged into a run's score, `task:metric[,filter]`.
    #[serde(default)]
    pub score: Vec<String>,
    /// Extra observed points: JSONL of `{"lambda": [..], "score": y}`.
    #[serde(default)]
    pub points: Option<PathBuf>,
    /// Polynomial degree p of the fit.
    #[serde(default = "two")]
    pub degree: usize,
    /// Ridge strength (0 = exact minimum-norm least squares).
    #[serde(default)]
    pub ridge: f64,
    /// Softmax temperature τ of the candidates' probabilities (the paper: 100).
    pub tau: f64,
    /// Candidates: every point of the simplex grid with this step …
    #[serde(default)]
    pub grid: Option<f64>,
    /// … or this many Dirichlet(alpha) draws (seeded by `seed`).
    #[serde(default)]
    pub dirichlet: Option<usize>,
    #[serde(default = "one")]
    pub alpha: f64,
    #[serde(default)]
    pub seed: u64,
}

fn default_results() -> String {
    DEFAULT_RESULTS.into()
}
fn two() -> usize {
    2
}
fn one() -> f64 {
    1.0
}

impl ScheduledSpec {
    /// Relative paths are taken against the config file's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        for r in &mut self.runs {
            if r.is_relative() {
                *r = base.join(&*r);
            }
        }
        if let Some(p) = &mut self.points {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// A fitted schedule: the λ table to sample from and a JSON record of how it was obtained.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub source: LambdaSource,
    pub record: Value,
}

/// Points → fit → the table (see the module docs). `origin` names the config for errors.
pub fn resolve(spec: &ScheduledSpec, origin: &Path) -> Result<Resolved> {
    let mut points = Vec::new();
    if !spec.runs.is_empty() && spec.score.is_empty() {
        return Err(ScheduleError::new(
            origin,
            Some("lambda.score"),
            "missing: which eval metrics make a run's score",
        )
        .hint("e.g. score = [\"arc_challenge:acc_norm\", \"hellaswag:acc_norm\"] (averaged)"));
    }
    for run in &spec.runs {
        points.push(run_point(run, &spec.results, &spec.score)?);
    }
    if let Some(file) = &spec.points {
        points.extend(read_points(file)?);
    }
    if points.is_empty() {
        return Err(ScheduleError::new(origin, Some("lambda"), "a scheduled λ needs observed points: no `runs` and no `points` file")
            .hint("runs = [\"runs/helpfulness\", …] with score = [\"task:metric\"], or points = \"points.jsonl\""));
    }
    let dim = points[0].lambda.len();
    if let Some(p) = points.iter().find(|p| p.lambda.len() != dim) {
        return Err(ScheduleError::new(
            &p.source,
            Some("lambda"),
            format!(
                "has {} weights, but {} has {dim}",
                p.lambda.len(),
                points[0].source
            ),
        )
        .hint(
            "every run and point needs one weight per preference dimension, in the data's order",
        ));
    }
    let candidates = match (spec.grid, spec.dirichlet) {
        (Some(step), None) => CandidateSource::Grid { step },
        (None, Some(count)) => CandidateSource::Dirichlet {
            count,
            alpha: spec.alpha,
            seed: spec.seed,
        },
        _ => {
            return Err(ScheduleError::new(
                origin,
                Some("lambda"),
                "name exactly one candidate set: `grid` (a step) or `dirichlet` (a count)",
            )
            .hint("grid = 0.1 scores every λ on the 0.1 grid"))
        }
    };
    let lambdas: Vec<Vec<f64>> = points.iter().map(|p| p.lambda.clone()).collect();
    let scores: Vec<f64> = points.iter().map(|p| p.score).collect();
    let schedule = Schedule::build(
        &lambdas,
        &scores,
        spec.degree,
        spec.ridge,
        &candidates,
        spec.tau,
    )
    .map_err(|e| {
        ScheduleError::new(origin, Some("lambda"), format!("fitting the schedule: {e}"))
    })?;
    let fit: Vec<Value> = points
        .iter()
        .map(|p| {
            json!({
                "source": p.source,
                "lambda": p.lambda,
                "observed": p.score,
                "predicted": schedule.fit.predict(&p.lambda).ok(),
            })
        })
        .collect();
    let best = schedule
        .probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let record = json!({
        "spec": spec,
        "points": fit,
        "degree": spec.degree,
        "rank": schedule.fit.rank,
        "coefficients": schedule.fit.coefficients,
        "tau": spec.tau,
        "candidates": schedule.candidates.len(),
        "most_likely": {
            "lambda": schedule.candidates[best],
            "score": schedule.scores[best],
            "prob": schedule.probs[best],
        },
    });
    Ok(Resolved {
        source: schedule.to_source(),
        record,
    })
}

/// The `(λ, score)` of one run folder: λ from `config.resolved.toml`, the mean of `score`'s
/// metrics from `<run>/<results>`.
pub fn run_point(run: &Path, results: &str, score: &[String]) -> Result<ObservedPoint> {
    let config = run.join("config.resolved.toml");
    let text = std::fs::read_to_string(&config).map_err(|e| {
        ScheduleError::new(&config, None, format!("cannot read: {e}"))
            .hint("a run folder is the output_dir of `lambda-dpo train`")
    })?;
    let tree: toml::Table = toml::from_str(&text)
        .map_err(|e| ScheduleError::new(&config, None, format!("invalid TOML: {e}")))?;
    let lambda = run_lambda(&tree).ok_or_else(|| {
        let kind = tree
            .get("lambda")
            .and_then(|l| l.get("kind"))
            .and_then(toml::Value::as_str)
            .unwrap_or("dirichlet (the default)");
        ScheduleError::new(
            &config,
            Some("lambda.kind"),
            format!("the run sampled λ with `{kind}`, so it has no single λ to fit"),
        )
        .hint("round-1 runs train at one λ each: [lambda] kind = \"fixed\", lambda = [1, 0, 0, 0]")
    })?;
    let file = run.join(results);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        ScheduleError::new(&file, None, format!("cannot read: {e}")).hint(format!(
            "evaluate the run first: lambda-dpo eval --model … --adapter {}/adapter --tasks … --output {}",
            run.display(),
            file.display()
        ))
    })?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| ScheduleError::new(&file, None, format!("invalid JSON: {e}")))?;
    let mut sum = 0.0;
    for key in score {
        sum += metric(&doc, key).map_err(|m| {
            ScheduleError::new(&file, Some(key), m)
                .hint(format!("available: {}", available(&doc).join(", ")))
        })?;
    }
    Ok(ObservedPoint {
        lambda,
        score: sum / score.len() as f64,
        source: run.display().to_string(),
    })
}

/// λ of a resolved config: `kind = "fixed"` or a one-row table.
fn run_lambda(tree: &toml::Table) -> Option<Vec<f64>> {
    let section = tree.get("lambda")?.as_table()?;
    let numbers = |v: &toml::Value| -> Option<Vec<f64>> {
        v.as_array()?
            .iter()
            .map(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
            .collect()
    };
    match section.get("kind")?.as_str()? {
        "fixed" => numbers(section.get("lambda")?),
        "table" => match section.get("rows")?.as_array()?.as_slice() {
            [row] => numbers(row.get("lambda")?),
            _ => None,
        },
        _ => None,
    }
}

/// `task:metric[,filter]` in lm-eval's results shape.
fn metric(doc: &Value, key: &str) -> std::result::Result<f64, String> {
    let (task, name) = key
        .split_once(':')
        .ok_or_else(|| format!("expected task:metric, found {key:?}"))?;
    let name = if name.contains(',') {
        name.to_string()
    } else {
        format!("{name},none")
    };
    let entry = doc
        .get("results")
        .and_then(|r| r.get(task))
        .ok_or_else(|| format!("no results for task {task:?}"))?;
    entry
        .get(&name)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("task {task:?} has no finite {name:?}"))
}

/// Every `task:metric,filter` of a results file (for hints).
fn available(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(results) = doc.get("results").and_then(Value::as_object) {
        for (task, entry) in results {
            if let Some(entry) = entry.as_object() {
                for (k, v) in entry {
                    if v.is_number() && !k.contains("_stderr") {
                        out.push(format!("{task}:{k}"));
                    }
                }
            }
        }
    }
    out
}

/// One line of a points or candidates file.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaLine {
    /// 1-based line number.
    pub line: usize,
    pub lambda: Vec<f64>,
    /// The observed score (points files only).
    pub score: Option<f64>,
}

/// Reads a JSONL file of `{"lambda": [..]}` lines (with a finite `"score"` when `with_score`):
/// every λ must have the dimension of the first line, or of `expect = (d, other file)`. λ off
/// the simplex is allowed — the fit does not need it, and published tables are rounded — and
/// returned as a warning (`file:line: …`) beside the lines, for the caller to show.
pub fn read_lambda_lines(
    path: &Path,
    with_score: bool,
    expect: Option<(usize, &Path)>,
) -> Result<(Vec<LambdaLine>, Vec<String>)> {
    let example = if with_score {
        r#"{"lambda": [0.25, 0.25, 0.25, 0.25], "score": 0.47}"#
    } else {
        r#"{"lambda": [0.25, 0.25, 0.25, 0.25]}"#
    };
    let each = format!("each line is one object, e.g. {example}");
    let text = std::fs::read_to_string(path)
        .map_err(|e| ScheduleError::new(path, None, format!("cannot read: {e}")))?;
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    let mut dim = expect.map(|(d, _)| d);
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err = |field: Option<&str>, m: String| ScheduleError::new(path, field, m).at(line);
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| err(None, format!("invalid JSON: {e}")).hint(each.clone()))?;
        let obj = v.as_object().ok_or_else(|| {
            err(None, format!("expected a JSON object, found {}", kind(&v))).hint(each.clone())
        })?;
        let lambda_v = obj
            .get("lambda")
            .ok_or_else(|| err(Some("lambda"), "missing".into()).hint(each.clone()))?;
        let arr = lambda_v.as_array().ok_or_else(|| {
            err(
                Some("lambda"),
                format!("expected an array of numbers, found {}", kind(lambda_v)),
            )
        })?;
        if arr.is_empty() {
            return Err(err(
                Some("lambda"),
                "is empty; expected one weight per preference dimension".into(),
            ));
        }
        let lambda: Vec<f64> = arr
            .iter()
            .enumerate()
            .map(|(j, x)| {
                x.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
                    err(
                        Some(&format!("lambda[{j}]")),
                        format!("expected a finite number, found {x}"),
                    )
                })
            })
            .collect::<Result<_>>()?;
        match dim {
            Some(d) if d != lambda.len() => {
                let origin = match expect {
                    Some((_, other)) => format!("the points in {}", other.display()),
                    None => "the first line".to_string(),
                };
                return Err(err(
                    Some("lambda"),
                    format!("has {} weights, expected {d} like {origin}", lambda.len()),
                )
                .hint("every λ needs one weight per preference dimension, in the same order"));
            }
            Some(_) => {}
            None => dim = Some(lambda.len()),
        }
        let sum: f64 = lambda.iter().sum();
        if (sum - 1.0).abs() > 1e-6 || lambda.iter().any(|&l| l < 0.0) {
            warnings.push(format!(
                "{}:{line}: λ {lambda:?} is not on the simplex (sum {sum}); used as given",
                path.display()
            ));
        }
        let score = if with_score {
            let s = obj
                .get("score")
                .ok_or_else(|| err(Some("score"), "missing".into()).hint(each.clone()))?;
            Some(s.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
                err(
                    Some("score"),
                    format!("expected a finite number, found {}", kind(s)),
                )
            })?)
        } else {
            None
        };
        lines.push(LambdaLine {
            line,
            lambda,
            score,
        });
    }
    if lines.is_empty() {
        let what = if with_score {
            "observed points"
        } else {
            "candidates"
        };
        return Err(ScheduleError::new(
            path,
            None,
            format!("no {what}: the file has no non-empty lines"),
        )
        .hint(each));
    }
    Ok((lines, warnings))
}

/// A points file as observed points (see [`read_lambda_lines`]; its warnings are dropped: the
/// fit uses the numbers as written).
pub fn read_points(path: &Path) -> Result<Vec<ObservedPoint>> {
    let (lines, _) = read_lambda_lines(path, true, None)?;
    Ok(lines
        .into_iter()
        .map(|l| ObservedPoint {
            lambda: l.lambda,
            score: l.score.expect("read with scores"),
            source: format!("{}:{}", path.display(), l.line),
        })
        .collect())
}

/// What a JSON value is, for error messages ("a string", "an array", …).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_keys_follow_lm_eval() {
        let doc = json!({"results": {"arc_easy": {"acc,none": 0.5, "acc_norm,none": 0.625, "acc_stderr,none": 0.1},
                                     "gsm8k": {"exact_match,strict-match": 0.25}}});
        assert_eq!(metric(&doc, "arc_easy:acc_norm"), Ok(0.625));
        assert_eq!(metric(&doc, "gsm8k:exact_match,strict-match"), Ok(0.25));
        assert!(metric(&doc, "arc_easy")
            .unwrap_err()
            .contains("task:metric"));
        assert!(metric(&doc, "hellaswag:acc")
            .unwrap_err()
            .contains("hellaswag"));
        let a = available(&doc);
        assert!(a.contains(&"arc_easy:acc_norm,none".to_string()));
        assert!(!a.iter().any(|k| k.contains("stderr")));
    }

    #[test]
    fn run_lambda_needs_one_known_lambda() {
        let t: toml::Table =
            toml::from_str("[lambda]\nkind = \"fixed\"\nlambda = [1, 0.0]\n").unwrap();
        assert_eq!(run_lambda(&t), Some(vec![1.0, 0.0]));
        let t: toml::Table = toml::from_str(
            "[lambda]\nkind = \"table\"\nrows = [{lambda = [0.5, 0.5], prob = 1.0}]\n",
        )
        .unwrap();
        assert_eq!(run_lambda(&t), Some(vec![0.5, 0.5]));
        let t: toml::Table =
            toml::from_str("[lambda]\nkind = \"dirichlet\"\nalpha = [1.0, 1.0]\n").unwrap();
        assert_eq!(run_lambda(&t), None);
        assert_eq!(run_lambda(&toml::Table::new()), None);
    }
}
