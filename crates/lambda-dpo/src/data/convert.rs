//! `data convert`: any supported file → canonical listwise JSONL, TRL pairwise JSONL, or SFT
//! `messages` JSONL, streaming record by record.
//!
//! - `listwise`: lossless (text stays text, ids stay ids, ratings keep their dimensions;
//!   missing ones are written as `null`). Lists with N < 2 (HelpSteer singletons) are left
//!   out and counted, since the canonical format refuses them.
//! - `pairwise`: the paper's baseline construction — chosen = the best and rejected = the
//!   worst response under the λ-mixed target `p^λ` (`mixed_target`, Eq. 9/13); or every pair
//!   `(i, j)` with `p^λ_i > p^λ_j`. `score_chosen`/`score_rejected` are the mixed grades
//!   `ψ = Σ_k λ_k r_k`. Lists whose responses all tie under λ give no pair and are counted.
//! - `sft`: conversations as they are; for preference data the best response under λ.
//!
//! Identical responses are merged first (ratings averaged) for `pairwise` and `sft`, so a
//! response is never paired with its own copy. The output is written to a temporary file
//! beside the target and renamed at the end: a failed conversion leaves no partial file.
//! Every output line carries `origin` (`file:line` of its input record); the listwise
//! output keeps the dataset's own `source` tag (UltraFeedback's) under `source`.

use std::io::Write;
use std::path::Path;

use lambda_dpo_math::error::MathError;
use lambda_dpo_math::targets::{mixed_target, MissingPolicy};
use lambda_dpo_model::Message;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::detect::DataKind;
use super::error::{DataError, ErrorKind};
use super::lambda::LambdaSpec;
use super::load::{group_equal, merged_rating, source_of};
use super::reader::{ReadOptions, RecordReader};
use super::record::{Content, ListRecord, Prompt, Record, Response, Scores};
use super::report::Skips;

/// What to convert to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertTo {
    Listwise,
    Pairwise,
    Sft,
}

impl std::str::FromStr for ConvertTo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "listwise" => Ok(Self::Listwise),
            "pairwise" => Ok(Self::Pairwise),
            "sft" => Ok(Self::Sft),
            _ => Err(format!(
                "unknown target {s:?}: expected listwise, pairwise or sft"
            )),
        }
    }
}

/// Which pairs a list gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pairs {
    /// Best vs worst under λ (the paper's pairwise baselines).
    #[default]
    BestWorst,
    /// Every strictly ordered pair under λ.
    All,
}

/// Options of a conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertOptions {
    pub to: ConvertTo,
    pub pairs: Pairs,
    /// λ for ranking (pairwise, and sft from preference data). Default: uniform.
    pub lambda: LambdaSpec,
    /// Temperature `T` of the per-dimension softmax (Eq. 13). Default 1.
    pub temperature: f64,
    /// Missing ratings when ranking. Default: drop the dimension for that list.
    pub missing: MissingPolicy,
    pub read: ReadOptions,
    pub skip_invalid: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            to: ConvertTo::Listwise,
            pairs: Pairs::BestWorst,
            lambda: LambdaSpec::Uniform,
            temperature: 1.0,
            missing: MissingPolicy::DropDimension,
            read: ReadOptions::default(),
            skip_invalid: false,
        }
    }
}

/// Counts of one conversion.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConvertReport {
    pub format: String,
    pub records: usize,
    /// Output lines written.
    pub written: usize,
    pub skipped: Skips,
    pub filtered_truthful_qa: usize,
    /// Lists whose responses all tie under λ (no pair, no best response).
    pub ties: usize,
    /// Identical responses merged before ranking.
    pub duplicates_removed: usize,
    /// Lists with N < 2 (after merging) left out.
    pub dropped_too_few: usize,
}

impl std::fmt::Display for ConvertReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "format {}: {} records read, {} lines written",
            self.format, self.records, self.written
        )?;
        for (label, n) in [
            ("filtered (truthful_qa)", self.filtered_truthful_qa),
            ("all tied under λ (no pair)", self.ties),
            ("duplicate responses merged", self.duplicates_removed),
            ("lists with N < 2 left out", self.dropped_too_few),
            ("skipped (invalid)", self.skipped.count),
        ] {
            if n > 0 {
                write!(f, "\n  {label}: {n}")?;
            }
        }
        for m in &self.skipped.first {
            write!(f, "\n    - {}", m.replace('\n', "\n      "))?;
        }
        Ok(())
    }
}

/// Converts `input` and writes JSONL to `out`. `lambda_origin` names where λ came from.
pub fn convert(
    input: &Path,
    out: &mut dyn Write,
    out_name: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertReport, DataError> {
    if !(opts.temperature.is_finite() && opts.temperature >= 0.0) {
        return Err(DataError::new(
            ErrorKind::Options,
            input,
            "a temperature ≥ 0",
            opts.temperature.to_string(),
        )
        .field("temperature"));
    }
    let mut reader = RecordReader::open(input, &opts.read)?;
    let fmt = reader.format();
    if fmt.kind() == DataKind::Unpaired
        || (fmt.kind() == DataKind::Sft && opts.to != ConvertTo::Sft)
    {
        return Err(DataError::new(
            ErrorKind::Format,
            input,
            match opts.to {
                ConvertTo::Sft => "preference or SFT data",
                _ => "preference data (prompts with rated responses)",
            },
            format!("{} records (format {fmt})", if fmt.kind() == DataKind::Sft { "SFT" } else { "unpaired KTO" }),
        )
        .hint("SFT and KTO data have no ratings to build lists or pairs from; only --to sft applies to SFT data"));
    }
    let mut report = ConvertReport {
        format: fmt.name().to_string(),
        ..Default::default()
    };
    let mut weights: Option<(Vec<String>, Vec<f64>)> = None;
    let write_err = |e: std::io::Error| {
        DataError::new(ErrorKind::Io, out_name, "a writable output", e.to_string())
    };
    for item in &mut reader {
        let rec = match item {
            Ok(r) => r,
            Err(e) => {
                if opts.skip_invalid && e.is_record_error() {
                    report.skipped.add(&e);
                    continue;
                }
                return Err(e);
            }
        };
        let lines = match rec {
            Record::Sft(s) => {
                vec![json!({"messages": s.messages, "origin": source_of(input, s.pos.line)})]
            }
            Record::Unpaired(_) => Vec::new(),
            Record::List(l) => match list_lines(input, l, opts, &mut weights, &mut report) {
                Ok(v) => v,
                Err(e) if opts.skip_invalid && e.is_record_error() => {
                    report.skipped.add(&e);
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        for v in lines {
            serde_json::to_writer(&mut *out, &v).map_err(|e| write_err(e.into()))?;
            out.write_all(b"\n").map_err(write_err)?;
            report.written += 1;
        }
    }
    out.flush().map_err(write_err)?;
    let c = reader.counters();
    report.records = c.rows;
    report.filtered_truthful_qa = c.filtered_truthful_qa;
    Ok(report)
}

/// Converts into a file, atomically (`-` writes to stdout).
pub fn convert_to_file(
    input: &Path,
    output: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertReport, DataError> {
    if output == Path::new("-") {
        let stdout = std::io::stdout();
        let mut lock = std::io::BufWriter::new(stdout.lock());
        return convert(input, &mut lock, output, opts);
    }
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let io = |e: std::io::Error| {
        DataError::new(
            ErrorKind::Io,
            output,
            "a writable output path",
            e.to_string(),
        )
    };
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut w = std::io::BufWriter::new(file);
    let result = convert(input, &mut w, output, opts);
    drop(w);
    match result {
        Ok(r) => {
            std::fs::rename(&tmp, output).map_err(io)?;
            Ok(r)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The output lines of one list.
fn list_lines(
    input: &Path,
    l: ListRecord,
    opts: &ConvertOptions,
    weights: &mut Option<(Vec<String>, Vec<f64>)>,
    report: &mut ConvertReport,
) -> Result<Vec<Value>, DataError> {
    let source = source_of(input, l.pos.line);
    if opts.to == ConvertTo::Listwise {
        if l.responses.len() < 2 {
            report.dropped_too_few += 1;
            return Ok(Vec::new());
        }
        return Ok(vec![listwise_json(&l, &source)]);
    }
    let l = merge_duplicates(l, report);
    if l.responses.len() < 2 {
        report.dropped_too_few += 1;
        return Ok(Vec::new());
    }
    // λ meets the data's dimensions at the first list (dimensions are uniform within a file;
    // a later list lacking one has it missing, handled by the missing policy).
    if weights.is_none() {
        let dims = l.dims();
        let w = opts.lambda.weights(&dims, Path::new("--lambda"))?;
        *weights = Some((dims, w));
    }
    let (dims, w) = weights.as_ref().expect("set above");
    let ratings = l.ratings(dims);
    let mixed = mixed_target(&ratings, w, opts.temperature, opts.missing).map_err(|e| {
        let (kind, expected) = match e {
            MathError::MissingRating { .. } | MathError::NoUsableDimension => (
                ErrorKind::MissingRating,
                "ratings to rank the responses under λ",
            ),
            _ => (ErrorKind::Rating, "ratings the λ-mixed target accepts"),
        };
        DataError::new(kind, input, expected, e.to_string())
            .at(l.pos.line, l.pos.index)
            .hint("choose another missing policy (a default rating such as 1), or --skip-invalid")
    })?;
    let p = &mixed.target.probs;
    let psi = &mixed.target.grades;
    // Ties (within round-off: mirror-image ratings give sums that differ in the last bit)
    // go to the first response listed, so the choice does not depend on summation order.
    const EPS: f64 = 1e-12;
    let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = p.iter().copied().fold(f64::INFINITY, f64::min);
    let best = p.iter().position(|&x| max - x <= EPS).unwrap_or(0);
    let worst = p.iter().position(|&x| x - min <= EPS).unwrap_or(0);
    if max - min <= EPS {
        report.ties += 1;
        return Ok(Vec::new());
    }
    Ok(match opts.to {
        ConvertTo::Sft => {
            let ids_error = || {
                DataError::new(
                    ErrorKind::Field,
                    input,
                    "a text or chat prompt (SFT output is text)",
                    "token ids",
                )
                .at(l.pos.line, l.pos.index)
                .field("prompt_ids")
            };
            let (Some(mut messages), Content::Text(t)) =
                (l.prompt.to_messages(), &l.responses[best].content)
            else {
                return Err(ids_error());
            };
            messages.push(Message::new("assistant", t));
            vec![json!({"messages": messages, "origin": source})]
        }
        ConvertTo::Pairwise | ConvertTo::Listwise => {
            let pairs: Vec<(usize, usize)> = match opts.pairs {
                Pairs::BestWorst => vec![(best, worst)],
                Pairs::All => (0..p.len())
                    .flat_map(|i| (0..p.len()).map(move |j| (i, j)))
                    .filter(|&(i, j)| p[i] - p[j] > EPS)
                    .collect(),
            };
            pairs
                .into_iter()
                .map(|(c, r)| pair_json(&l, c, r, psi[c], psi[r], &source))
                .collect()
        }
    })
}

/// Merges identical responses (first copy kept, ratings averaged).
fn merge_duplicates(mut l: ListRecord, report: &mut ConvertReport) -> ListRecord {
    let groups = group_equal(l.responses.iter().map(|r| &r.content));
    if groups.len() == l.responses.len() {
        return l;
    }
    report.duplicates_removed += l.responses.len() - groups.len();
    let dims = l.dims();
    let ratings = l.ratings(&dims);
    let merged: Vec<Response> = groups
        .iter()
        .map(|g| {
            let mut scores = Scores::default();
            for (d, row) in dims.iter().zip(&ratings) {
                scores.set(d, merged_rating(row, g));
            }
            Response {
                content: l.responses[g[0]].content.clone(),
                scores,
                model: l.responses[g[0]].model.clone(),
            }
        })
        .collect();
    l.responses = merged;
    l
}

fn prompt_fields(p: &Prompt, obj: &mut Map<String, Value>, pairwise: bool) {
    match p {
        Prompt::Text(t) => {
            obj.insert("prompt".into(), json!(t));
        }
        Prompt::Messages(m) => {
            obj.insert(
                if pairwise { "prompt" } else { "messages" }.into(),
                json!(m),
            );
        }
        Prompt::Ids(ids) => {
            obj.insert(
                if pairwise {
                    "prompt_input_ids"
                } else {
                    "prompt_ids"
                }
                .into(),
                json!(ids),
            );
        }
    }
}

fn listwise_json(l: &ListRecord, source: &str) -> Value {
    let mut obj = Map::new();
    prompt_fields(&l.prompt, &mut obj, false);
    let responses: Vec<Value> = l
        .responses
        .iter()
        .map(|r| {
            let mut ro = Map::new();
            match &r.content {
                Content::Text(t) => ro.insert("text".into(), json!(t)),
                Content::Ids(i) => ro.insert("ids".into(), json!(i)),
            };
            let scores: Map<String, Value> = r
                .scores
                .0
                .iter()
                .map(|(d, v)| (d.clone(), json!(v)))
                .collect();
            ro.insert("scores".into(), Value::Object(scores));
            if let Some(m) = &r.model {
                ro.insert("model".into(), json!(m));
            }
            Value::Object(ro)
        })
        .collect();
    obj.insert("responses".into(), Value::Array(responses));
    if let Some(s) = &l.source {
        obj.insert("source".into(), json!(s));
    }
    obj.insert("origin".into(), json!(source));
    Value::Object(obj)
}

/// A TRL pair: strings for a text prompt, message lists for a chat prompt, ids for ids.
fn pair_json(l: &ListRecord, c: usize, r: usize, sc: f64, sr: f64, source: &str) -> Value {
    let mut obj = Map::new();
    prompt_fields(&l.prompt, &mut obj, true);
    let side = |i: usize| -> (String, Value) {
        match (&l.prompt, &l.responses[i].content) {
            (_, Content::Ids(ids)) => ("_input_ids".into(), json!(ids)),
            (Prompt::Messages(_), Content::Text(t)) => {
                (String::new(), json!([{"role": "assistant", "content": t}]))
            }
            (_, Content::Text(t)) => (String::new(), json!(t)),
        }
    };
    let (suffix, chosen) = side(c);
    let (_, rejected) = side(r);
    obj.insert(format!("chosen{suffix}"), chosen);
    obj.insert(format!("rejected{suffix}"), rejected);
    obj.insert("score_chosen".into(), json!(sc));
    obj.insert("score_rejected".into(), json!(sr));
    obj.insert("origin".into(), json!(source));
    Value::Object(obj)
}
