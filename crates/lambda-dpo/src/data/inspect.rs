//! `data inspect`: what a file holds, computed in one streaming pass.
//!
//! Without a tokenizer: format and layout, records, N per prompt (histogram), prompt kinds,
//! dimensions with their rating distributions, missing ratings and ties, identical responses
//! and the lists they would leave with N < 2, empty responses, UltraFeedback sources. With a
//! tokenizer: prompt/response token-length quantiles and how many lists (conversations) would
//! be truncated at `max_length` / `max_prompt_length`. [`Inspection`] serialises to JSON
//! (`--json`) and renders as text ([`Inspection::human`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use lambda_dpo_model::Tokenizer;
use serde::Serialize;

use super::detect::DataKind;
use super::error::DataError;
use super::fields::Ctx;
use super::load::{group_equal, LoadOptions};
use super::reader::RecordReader;
use super::record::{ListRecord, Prompt, Record};
use super::render::Renderer;
use super::report::Skips;

/// Everything `data inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub file: String,
    pub format: String,
    /// `preference`, `sft` or `unpaired`.
    pub kind: String,
    pub layout: String,
    pub gzip: bool,
    /// JSON records read (valid or not).
    pub records: usize,
    /// Preference lists, SFT conversations or unpaired examples read.
    pub items: usize,
    pub skipped: Skips,
    pub filtered_truthful_qa: usize,
    pub helpsteer_repeats: usize,
    /// Preference: how many lists have N responses.
    pub responses_per_list: BTreeMap<usize, usize>,
    pub prompts: PromptStats,
    pub dimensions: Vec<DimensionStats>,
    /// Lists with two or more identical responses, and how many copies would be merged.
    pub lists_with_duplicates: usize,
    pub duplicate_responses: usize,
    /// Lists left with N < 2 once identical responses are merged (or HelpSteer singletons).
    pub lists_below_two: usize,
    pub empty_responses: usize,
    /// UltraFeedback `source` tags.
    pub sources: BTreeMap<String, usize>,
    /// SFT / unpaired: how many conversations have k assistant turns.
    pub assistant_turns: BTreeMap<usize, usize>,
    /// Unpaired (KTO): desirable / undesirable examples.
    pub desirable: usize,
    pub undesirable: usize,
    pub tokens: Option<TokenStats>,
}

/// What the prompts look like.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PromptStats {
    pub text: usize,
    pub messages: usize,
    pub ids: usize,
    /// Conversations with earlier assistant turns (multi-turn history).
    pub multi_turn: usize,
    pub with_system: usize,
}

/// One dimension's ratings.
#[derive(Debug, Clone, Serialize)]
pub struct DimensionStats {
    pub name: String,
    /// Ratings present.
    pub rated: usize,
    /// Ratings missing ("N/A", empty, null) in lists that have this dimension.
    pub missing: usize,
    /// Lists without this dimension at all.
    pub lists_without: usize,
    /// `[rating, count]`, ascending.
    pub histogram: Vec<(f64, usize)>,
    pub mean: Option<f64>,
    /// Lists whose rated responses all tie (the target is uniform on this dimension).
    pub lists_all_tied: usize,
    /// Lists with at least two responses tied.
    pub lists_with_tie: usize,
}

/// Length quantiles in tokens.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Quantiles {
    pub count: usize,
    pub min: u32,
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub max: u32,
    pub mean: f64,
}

impl Quantiles {
    fn of(mut v: Vec<u32>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_unstable();
        // Nearest-rank quantile: the smallest value with at least q of the data at or below.
        let q = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Self {
            count: v.len(),
            min: v[0],
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: v[v.len() - 1],
            mean: v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64,
        }
    }
}

/// Token lengths under one tokenizer.
#[derive(Debug, Clone, Serialize)]
pub struct TokenStats {
    pub model: String,
    pub chat_template: bool,
    pub max_length: usize,
    pub max_prompt_length: Option<usize>,
    /// Preference: prompt tokens; SFT: whole conversations.
    pub prompt: Quantiles,
    /// Preference: response tokens (end-of-turn included); SFT: trained tokens.
    pub response: Quantiles,
    /// Preference: prompt + longest response.
    pub longest: Quantiles,
    /// Lists (conversations) that `max_length` / `max_prompt_length` would cut.
    pub would_truncate: usize,
    /// Records the tokenizer or template could not render (counted as skipped too).
    pub render_errors: usize,
}

/// Inspects a file. Record errors stop the pass unless `opts.skip_invalid` (then they are
/// counted); with a tokenizer, token lengths are measured with `opts`' rendering settings.
pub fn inspect(
    path: &Path,
    tokenizer: Option<&Tokenizer>,
    opts: &LoadOptions,
) -> Result<Inspection, DataError> {
    opts.validate(path)?;
    let mut reader = RecordReader::open(path, &opts.read_options())?;
    let format = reader.format();
    let mut acc = Acc::default();
    let renderer =
        tokenizer.map(|t| Renderer::new(t, opts.chat_template, opts.template_kwargs.clone()));
    let mut skipped = Skips::default();
    let mut items = 0;
    let mut render_errors = 0;
    for item in &mut reader {
        let rec = match item {
            Ok(r) => r,
            Err(e) if opts.skip_invalid && e.is_record_error() => {
                skipped.add(&e);
                continue;
            }
            Err(e) => return Err(e),
        };
        items += 1;
        let measured = match (&renderer, &rec) {
            (Some(r), _) => acc.measure(path, r, &rec, opts),
            (None, _) => Ok(()),
        };
        if let Err(e) = measured {
            if opts.skip_invalid && e.is_record_error() {
                skipped.add(&e);
                render_errors += 1;
            } else {
                return Err(e);
            }
        }
        match rec {
            Record::List(l) => acc.list(&l),
            Record::Sft(s) => {
                acc.conversation(&s.messages);
            }
            Record::Unpaired(u) => {
                acc.conversation(&u.messages);
                if u.label {
                    acc.desirable += 1;
                } else {
                    acc.undesirable += 1;
                }
            }
        }
    }
    let counters = reader.counters().clone();
    let kind = match format.kind() {
        DataKind::Preference => "preference",
        DataKind::Sft => "sft",
        DataKind::Unpaired => "unpaired",
    };
    let tokens = tokenizer.map(|t| TokenStats {
        model: t.path.parent().unwrap_or(&t.path).display().to_string(),
        chat_template: renderer.as_ref().is_some_and(Renderer::uses_template),
        max_length: opts.max_length,
        max_prompt_length: opts.max_prompt_length,
        prompt: Quantiles::of(std::mem::take(&mut acc.prompt_lens)),
        response: Quantiles::of(std::mem::take(&mut acc.response_lens)),
        longest: Quantiles::of(std::mem::take(&mut acc.longest_lens)),
        would_truncate: acc.would_truncate,
        render_errors,
    });
    Ok(Inspection {
        file: path.display().to_string(),
        format: format.name().to_string(),
        kind: kind.to_string(),
        layout: reader.layout().name().to_string(),
        gzip: reader.is_gzip(),
        records: counters.rows,
        items,
        skipped,
        filtered_truthful_qa: counters.filtered_truthful_qa,
        helpsteer_repeats: counters.helpsteer_repeats,
        responses_per_list: acc.n_hist,
        prompts: acc.prompts,
        dimensions: acc.dims.into_iter().map(|d| d.finish(acc.lists)).collect(),
        lists_with_duplicates: acc.lists_with_duplicates,
        duplicate_responses: acc.duplicate_responses,
        lists_below_two: acc.lists_below_two,
        empty_responses: acc.empty_responses,
        sources: acc.sources,
        assistant_turns: acc.turns,
        desirable: acc.desirable,
        undesirable: acc.undesirable,
        tokens,
    })
}

#[derive(Default)]
struct DimAcc {
    name: String,
    rated: usize,
    missing: usize,
    lists_with: usize,
    /// Keyed by the rating's bits: ratings are few distinct values.
    hist: BTreeMap<u64, (f64, usize)>,
    sum: f64,
    all_tied: usize,
    with_tie: usize,
}

impl DimAcc {
    fn finish(self, lists: usize) -> DimensionStats {
        let mut histogram: Vec<(f64, usize)> = self.hist.into_values().collect();
        histogram.sort_by(|a, b| a.0.total_cmp(&b.0));
        DimensionStats {
            name: self.name,
            rated: self.rated,
            missing: self.missing,
            lists_without: lists.saturating_sub(self.lists_with),
            histogram,
            mean: (self.rated > 0).then(|| self.sum / self.rated as f64),
            lists_all_tied: self.all_tied,
            lists_with_tie: self.with_tie,
        }
    }
}

#[derive(Default)]
struct Acc {
    lists: usize,
    n_hist: BTreeMap<usize, usize>,
    prompts: PromptStats,
    dims: Vec<DimAcc>,
    lists_with_duplicates: usize,
    duplicate_responses: usize,
    lists_below_two: usize,
    empty_responses: usize,
    sources: BTreeMap<String, usize>,
    turns: BTreeMap<usize, usize>,
    desirable: usize,
    undesirable: usize,
    prompt_lens: Vec<u32>,
    response_lens: Vec<u32>,
    longest_lens: Vec<u32>,
    would_truncate: usize,
}

impl Acc {
    fn list(&mut self, l: &ListRecord) {
        self.lists += 1;
        *self.n_hist.entry(l.responses.len()).or_default() += 1;
        match &l.prompt {
            Prompt::Text(_) => self.prompts.text += 1,
            Prompt::Ids(_) => self.prompts.ids += 1,
            Prompt::Messages(m) => {
                self.prompts.messages += 1;
                if m.iter().any(|m| m.role == "assistant") {
                    self.prompts.multi_turn += 1;
                }
                if m.first().is_some_and(|m| m.role == "system") {
                    self.prompts.with_system += 1;
                }
            }
        }
        if let Some(s) = &l.source {
            *self.sources.entry(s.clone()).or_default() += 1;
        }
        self.empty_responses += l.responses.iter().filter(|r| r.content.is_empty()).count();
        let groups = group_equal(l.responses.iter().map(|r| &r.content));
        let dup = l.responses.len() - groups.len();
        if dup > 0 {
            self.lists_with_duplicates += 1;
            self.duplicate_responses += dup;
        }
        if groups.len() < 2 {
            self.lists_below_two += 1;
        }
        let dims = l.dims();
        for (name, row) in dims.iter().zip(l.ratings(&dims)) {
            let d = match self.dims.iter().position(|d| &d.name == name) {
                Some(i) => &mut self.dims[i],
                None => {
                    self.dims.push(DimAcc {
                        name: name.clone(),
                        ..Default::default()
                    });
                    self.dims.last_mut().expect("pushed")
                }
            };
            d.lists_with += 1;
            let present: Vec<f64> = row.iter().flatten().copied().collect();
            d.missing += row.len() - present.len();
            d.rated += present.len();
            for &r in &present {
                d.sum += r;
                d.hist.entry(r.to_bits()).or_insert((r, 0)).1 += 1;
            }
            if present.len() >= 2 {
                if present.iter().all(|&r| r == present[0]) {
                    d.all_tied += 1;
                }
                let distinct = group_equal(present.iter().map(|r| r.to_bits())).len();
                if distinct < present.len() {
                    d.with_tie += 1;
                }
            }
        }
    }

    fn conversation(&mut self, m: &[lambda_dpo_model::Message]) {
        let k = m.iter().filter(|m| m.role == "assistant").count();
        *self.turns.entry(k).or_default() += 1;
        if m.first().is_some_and(|m| m.role == "system") {
            self.prompts.with_system += 1;
        }
        if k > 1 {
            self.prompts.multi_turn += 1;
        }
    }

    /// Token lengths of one record (untruncated) and whether loading would cut it.
    fn measure(
        &mut self,
        path: &Path,
        r: &Renderer<'_>,
        rec: &Record,
        opts: &LoadOptions,
    ) -> Result<(), DataError> {
        let ctx = Ctx::new(path, rec.pos());
        match rec {
            Record::List(l) => {
                let p = r.prompt(&ctx, &l.prompt)?;
                let mut longest = 0;
                for (i, resp) in l.responses.iter().enumerate() {
                    let ids = r.response(&ctx, &p, &resp.content, &format!("responses[{i}]"))?;
                    self.response_lens.push(ids.len() as u32);
                    longest = longest.max(ids.len());
                }
                self.prompt_lens.push(p.ids.len() as u32);
                self.longest_lens.push((p.ids.len() + longest) as u32);
                let prompt_cut = opts.max_prompt_length.is_some_and(|m| p.ids.len() > m);
                if prompt_cut || p.ids.len() + longest > opts.max_length {
                    self.would_truncate += 1;
                }
            }
            Record::Sft(s) => {
                let (ids, mask) = r.sft(&ctx, &s.messages)?;
                self.prompt_lens.push(ids.len() as u32);
                self.response_lens
                    .push(mask.iter().filter(|&&m| m).count() as u32);
                if ids.len() > opts.max_length {
                    self.would_truncate += 1;
                }
            }
            Record::Unpaired(_) => {}
        }
        Ok(())
    }
}

/// "1 list", "2 lists".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn fmt_rating(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn hist_line<K: std::fmt::Display>(h: &BTreeMap<K, usize>, max: usize) -> String {
    let mut parts: Vec<String> = h
        .iter()
        .take(max)
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    if h.len() > max {
        parts.push(format!("… ({} more)", h.len() - max));
    }
    parts.join(", ")
}

impl Inspection {
    /// The human-readable report (what the CLI prints on stderr).
    pub fn human(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "file        {}", self.file);
        let _ = writeln!(
            w,
            "format      {} ({}, {}{})",
            self.format,
            self.kind,
            self.layout,
            if self.gzip { ", gzip" } else { "" }
        );
        let what = match self.kind.as_str() {
            "preference" => "list",
            "sft" => "conversation",
            _ => "example",
        };
        let _ = writeln!(
            w,
            "records     {} read, {}",
            self.records,
            count(self.items, what)
        );
        if self.skipped.count > 0 {
            let kinds: Vec<String> = self
                .skipped
                .by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                w,
                "skipped     {} invalid ({})",
                self.skipped.count,
                kinds.join(", ")
            );
            for m in &self.skipped.first {
                let _ = writeln!(w, "            - {}", m.replace('\n', "\n              "));
            }
        }
        if self.filtered_truthful_qa > 0 {
            let _ = writeln!(
                w,
                "filtered    {} rows with source truthful_qa",
                self.filtered_truthful_qa
            );
        }
        if self.kind == "preference" {
            let _ = writeln!(w, "N per list  {}", hist_line(&self.responses_per_list, 12));
        } else {
            let _ = writeln!(
                w,
                "assistant turns per conversation  {}",
                hist_line(&self.assistant_turns, 12)
            );
        }
        let p = &self.prompts;
        let mut kinds = Vec::new();
        for (name, n) in [
            ("text", p.text),
            ("messages", p.messages),
            ("token ids", p.ids),
        ] {
            if n > 0 {
                kinds.push(format!("{name} {n}"));
            }
        }
        if !kinds.is_empty() {
            let _ = writeln!(w, "prompts     {}", kinds.join(", "));
        }
        if p.multi_turn > 0 || p.with_system > 0 {
            let _ = writeln!(
                w,
                "            {} multi-turn, {} with a system message",
                p.multi_turn, p.with_system
            );
        }
        if !self.sources.is_empty() {
            let _ = writeln!(w, "sources     {}", hist_line(&self.sources, 10));
            if let Some(n) = self.sources.get(super::ultrafeedback::TRUTHFUL_QA) {
                let _ = writeln!(
                    w,
                    "            warning: {n} rows come from truthful_qa, which overlaps the TruthfulQA benchmark (--drop-truthful-qa)"
                );
            }
        }
        if self.kind == "unpaired" {
            let _ = writeln!(
                w,
                "labels      {} desirable, {} undesirable",
                self.desirable, self.undesirable
            );
        }
        if !self.dimensions.is_empty() {
            let _ = writeln!(w, "dimensions  {}", self.dimensions.len());
            let width = self
                .dimensions
                .iter()
                .map(|d| d.name.chars().count())
                .max()
                .unwrap_or(0);
            for d in &self.dimensions {
                let hist: Vec<String> = d
                    .histogram
                    .iter()
                    .take(12)
                    .map(|(r, n)| format!("{}:{n}", fmt_rating(*r)))
                    .collect();
                let more = if d.histogram.len() > 12 { " …" } else { "" };
                let _ = writeln!(
                    w,
                    "  {:<width$}  {} rated, {} missing{}  mean {}  [{}{more}]",
                    d.name,
                    d.rated,
                    d.missing,
                    if d.lists_without > 0 {
                        format!(", absent from {} lists", d.lists_without)
                    } else {
                        String::new()
                    },
                    d.mean.map_or("-".into(), |m| format!("{m:.2}")),
                    hist.join(" "),
                );
                let _ = writeln!(
                    w,
                    "  {:<width$}  ties: {} all tied (uniform target), {} with some tie",
                    "",
                    count(d.lists_all_tied, "list"),
                    count(d.lists_with_tie, "list")
                );
            }
        }
        if self.kind == "preference" {
            let _ = writeln!(
                w,
                "duplicates  {} with identical responses ({} to merge); {} left with N < 2",
                count(self.lists_with_duplicates, "list"),
                count(self.duplicate_responses, "copy").replace("copys", "copies"),
                count(self.lists_below_two, "list")
            );
            let _ = writeln!(
                w,
                "empty       {}",
                count(self.empty_responses, "empty response")
            );
        }
        if self.helpsteer_repeats > 0 {
            let _ = writeln!(
                w,
                "note        {} prompts reappear non-adjacently (grouped separately)",
                self.helpsteer_repeats
            );
        }
        if let Some(t) = &self.tokens {
            let _ = writeln!(
                w,
                "tokens      {} ({})",
                t.model,
                if t.chat_template {
                    "chat template"
                } else {
                    "plain text, no chat template"
                }
            );
            let rows: [(&str, &Quantiles); 3] = if self.kind == "preference" {
                [
                    ("prompt", &t.prompt),
                    ("response", &t.response),
                    ("prompt+longest", &t.longest),
                ]
            } else {
                [
                    ("conversation", &t.prompt),
                    ("trained", &t.response),
                    ("", &t.longest),
                ]
            };
            let _ = writeln!(
                w,
                "  {:<15} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
                "", "min", "p50", "p90", "p99", "max", "mean"
            );
            for (name, q) in rows {
                if name.is_empty() || q.count == 0 {
                    continue;
                }
                let _ = writeln!(
                    w,
                    "  {:<15} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9.1}",
                    name, q.min, q.p50, q.p90, q.p99, q.max, q.mean
                );
            }
            let limit = match t.max_prompt_length {
                Some(m) => format!("max_length {} / max_prompt_length {m}", t.max_length),
                None => format!("max_length {}", t.max_length),
            };
            let _ = writeln!(
                w,
                "  truncated at {limit}: {} of {}",
                t.would_truncate,
                count(self.items, what)
            );
        }
        s
    }
}
