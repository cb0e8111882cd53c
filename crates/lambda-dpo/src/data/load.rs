//! Loading for training: a file → rendered, truncated token lists with their ratings
//! ([`load_preferences`]) or token ids with assistant masks ([`load_sft`]).
//!
//! Per preference list, in this order:
//!
//! 1. read and validate (errors stop the load, or are counted with `skip_invalid`);
//! 2. merge identical responses (same text), then identical rendered tokens (e.g. texts that
//!    differ only in whitespace the template trims): one copy stays, its ratings are the mean
//!    of the copies'. At the optimum of the listwise loss the implicit rewards differ by the
//!    rating differences (`s_i − s_j = (r_i − r_j)/T` for one dimension), with or without
//!    copies, so keeping the rating keeps that optimum while copies no longer compete;
//! 3. drop lists left with N < 2 (counted, with their location);
//! 4. truncate (`infer_seqlen` budget split);
//! 5. after the whole file: the dimensions present, the selection checked against them, and
//!    the missing-rating policy applied (`Default` fills, `Error` refuses, `DropDimension`
//!    leaves `None` for the loss to drop, refusing a list with no fully rated dimension).

use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;

use lambda_dpo_math::targets::MissingPolicy;
use lambda_dpo_model::Tokenizer;
use serde::Serialize;
use serde_json::{Map, Value};

use super::detect::{DataKind, Format};
use super::error::{DataError, ErrorKind};
use super::fields::Ctx;
use super::reader::{ReadOptions, RecordReader};
use super::record::{ListRecord, Record};
use super::render::{truncate_list, Renderer, Truncation};
use super::report::LoadReport;

/// Everything that shapes a load. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Force a format (default: detected from the first record).
    pub format: Option<Format>,
    /// What a missing rating ("N/A", empty, null, or a dimension a list lacks) becomes.
    /// Default: `DropDimension` (leave the dimension out for that prompt; renormalise λ).
    /// The authors' code uses `Default(1.0)`.
    pub missing: MissingPolicy,
    /// UltraFeedback: leave out rows whose `source` is `truthful_qa` (they overlap the
    /// TruthfulQA benchmark). Default: false (the paper keeps them).
    pub drop_truthful_qa: bool,
    /// UltraFeedback: use the completions' shared `custom_system_prompt` as the system
    /// message. Default: false.
    pub use_custom_system_prompt: bool,
    /// Longest prompt + response, in tokens (the paper's cutoff: 2048).
    pub max_length: usize,
    /// Longest prompt, in tokens, applied before the budget split. Default: none.
    pub max_prompt_length: Option<usize>,
    /// Which end of an over-long prompt to keep. Default: keep the end (TRL).
    pub truncation: Truncation,
    /// Skip invalid records (counted, first few reported) instead of stopping at the first.
    pub skip_invalid: bool,
    /// Dimensions to keep, in this order (default: all present, in first-seen order). Naming
    /// one the data does not have is an error that lists the ones it does.
    pub dimensions: Option<Vec<String>>,
    /// Merge identical responses within a list. Default: true.
    pub dedup: bool,
    /// Render text through the model's chat template when it has one. Default: true.
    pub chat_template: bool,
    /// Extra template variables (e.g. `date_string` for Llama-3, to make renders stable).
    pub template_kwargs: Map<String, Value>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            format: None,
            missing: MissingPolicy::DropDimension,
            drop_truthful_qa: false,
            use_custom_system_prompt: false,
            max_length: 2048,
            max_prompt_length: None,
            truncation: Truncation::KeepEnd,
            skip_invalid: false,
            dimensions: None,
            dedup: true,
            chat_template: true,
            template_kwargs: Map::new(),
        }
    }
}

impl LoadOptions {
    /// The reader's share of the options.
    pub fn read_options(&self) -> ReadOptions {
        ReadOptions {
            format: self.format,
            drop_truthful_qa: self.drop_truthful_qa,
            use_custom_system_prompt: self.use_custom_system_prompt,
        }
    }

    /// Checks the options themselves (errors name `path`, the data file they apply to).
    pub fn validate(&self, path: &Path) -> Result<(), DataError> {
        let bad = |field: &str, expected: &str, found: String| {
            Err(DataError::new(ErrorKind::Options, path, expected, found).field(field))
        };
        if self.max_length < 2 {
            return bad(
                "max_length",
                "at least 2 tokens",
                self.max_length.to_string(),
            );
        }
        if let Some(mp) = self.max_prompt_length {
            if mp == 0 || mp >= self.max_length {
                return bad(
                    "max_prompt_length",
                    &format!("between 1 and max_length − 1 = {}", self.max_length - 1),
                    mp.to_string(),
                );
            }
        }
        if let MissingPolicy::Default(v) = self.missing {
            if !v.is_finite() {
                return bad("missing", "a finite default rating", v.to_string());
            }
        }
        if let Some(d) = &self.dimensions {
            if d.is_empty() {
                return bad(
                    "dimensions",
                    "at least one dimension (or none given: all)",
                    "an empty list".into(),
                );
            }
        }
        Ok(())
    }
}

/// A rendered preference list: ready for the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedList {
    /// `file:line` of the record (of its first row, for HelpSteer).
    pub source: String,
    pub prompt_ids: Vec<u32>,
    /// Response tokens, each including the end-of-turn token (unless truncated away).
    pub responses: Vec<Vec<u32>>,
    /// `ratings[k][i]`: rating of response `i` on `PreferenceData::dimensions[k]`.
    pub ratings: Vec<Vec<Option<f64>>>,
    pub truncated: bool,
    /// The prompt as chat messages when it was rendered with the chat template (`None` for
    /// plain text without a template and for pre-tokenized prompts): what λ-conditioning
    /// re-renders with a system message.
    #[serde(skip)]
    pub prompt_messages: Option<Vec<lambda_dpo_model::Message>>,
}

/// The result of [`load_preferences`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreferenceData {
    pub format: String,
    /// Dimension names, the index `k` of `RenderedList::ratings`.
    pub dimensions: Vec<String>,
    pub lists: Vec<RenderedList>,
    pub report: LoadReport,
}

/// SFT: token ids plus a mask of which positions are trained (assistant tokens only,
/// end-of-turn included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedSft {
    pub source: String,
    pub ids: Vec<u32>,
    pub train_mask: Vec<bool>,
    pub truncated: bool,
}

/// The result of [`load_sft`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SftData {
    pub format: String,
    pub records: Vec<RenderedSft>,
    pub report: LoadReport,
}

/// A list between rendering and the end of the file (dimensions are global only then).
struct Staged {
    line: usize,
    index: usize,
    list: RenderedList,
    /// (global dimension index, ratings of each kept response).
    local: Vec<(usize, Vec<Option<f64>>)>,
}

/// Reads, validates, renders and truncates a preference file.
pub fn load_preferences(
    path: &Path,
    tokenizer: &Tokenizer,
    opts: &LoadOptions,
) -> Result<PreferenceData, DataError> {
    opts.validate(path)?;
    let mut reader = RecordReader::open(path, &opts.read_options())?;
    check_kind(&reader, DataKind::Preference)?;
    let renderer = Renderer::new(tokenizer, opts.chat_template, opts.template_kwargs.clone());
    let mut report = LoadReport {
        format: reader.format().name().to_string(),
        ..Default::default()
    };
    let mut dims: Vec<String> = Vec::new();
    let mut staged = Vec::new();
    for item in &mut reader {
        let rec = match item {
            Ok(Record::List(r)) => r,
            Ok(_) => continue, // check_kind: never for a preference format
            Err(e) => {
                skip_or_fail(e, opts, &mut report)?;
                continue;
            }
        };
        match stage(path, &renderer, rec, opts, &mut dims, &mut report) {
            Ok(Some(s)) => staged.push(s),
            Ok(None) => {}
            Err(e) => skip_or_fail(e, opts, &mut report)?,
        }
    }
    let c = reader.counters();
    report.records = c.rows;
    report.filtered_truthful_qa = c.filtered_truthful_qa;
    report.helpsteer_repeats = c.helpsteer_repeats;

    if dims.is_empty() && !staged.is_empty() {
        return Err(DataError::new(
            ErrorKind::Field,
            path,
            "ratings on the responses",
            "no rating in any record",
        )
        .hint("each response needs scores on at least one dimension"));
    }
    let selected = select_dimensions(path, &dims, opts.dimensions.as_deref())?;
    let mut lists = Vec::with_capacity(staged.len());
    for s in staged {
        let n = s.list.responses.len();
        let mut list = s.list;
        list.ratings = selected
            .iter()
            .map(|&g| {
                s.local
                    .iter()
                    .find(|(d, _)| *d == g)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| vec![None; n])
            })
            .collect();
        let names: Vec<&str> = selected.iter().map(|&g| dims[g].as_str()).collect();
        match apply_missing(
            path,
            s.line,
            s.index,
            &names,
            &mut list.ratings,
            opts.missing,
        ) {
            Ok(filled) => report.missing_filled += filled,
            Err(e) => {
                skip_or_fail(e, opts, &mut report)?;
                continue;
            }
        }
        lists.push(list);
    }
    report.kept = lists.len();
    if lists.is_empty() {
        return Err(DataError::new(
            ErrorKind::Empty,
            path,
            "at least one usable preference list",
            format!(
                "none ({})",
                report.to_string().trim_end().replace('\n', "; ")
            ),
        )
        .hint("`lambda-dpo data inspect FILE` shows what the file holds"));
    }
    Ok(PreferenceData {
        format: report.format.clone(),
        dimensions: selected.iter().map(|&g| dims[g].clone()).collect(),
        lists,
        report,
    })
}

/// Reads, validates, renders (with assistant masks) and truncates an SFT file.
pub fn load_sft(
    path: &Path,
    tokenizer: &Tokenizer,
    opts: &LoadOptions,
) -> Result<SftData, DataError> {
    opts.validate(path)?;
    let mut reader = RecordReader::open(path, &opts.read_options())?;
    check_kind(&reader, DataKind::Sft)?;
    let renderer = Renderer::new(tokenizer, opts.chat_template, opts.template_kwargs.clone());
    let mut report = LoadReport {
        format: reader.format().name().to_string(),
        ..Default::default()
    };
    let mut records = Vec::new();
    for item in &mut reader {
        let rec = match item {
            Ok(Record::Sft(r)) => r,
            Ok(_) => continue,
            Err(e) => {
                skip_or_fail(e, opts, &mut report)?;
                continue;
            }
        };
        let ctx = Ctx::new(path, rec.pos);
        let (mut ids, mut mask) = match renderer.sft(&ctx, &rec.messages) {
            Ok(x) => x,
            Err(e) => {
                skip_or_fail(e, opts, &mut report)?;
                continue;
            }
        };
        // SFT keeps the start: the system prompt and the first turns are what the later
        // turns depend on.
        let truncated = ids.len() > opts.max_length;
        if truncated {
            ids.truncate(opts.max_length);
            mask.truncate(opts.max_length);
            report.truncated += 1;
        }
        if !mask.iter().any(|&m| m) {
            report.dropped_no_target += 1;
            continue;
        }
        records.push(RenderedSft {
            source: source_of(path, rec.pos.line),
            ids,
            train_mask: mask,
            truncated,
        });
    }
    report.records = reader.counters().rows;
    report.kept = records.len();
    if records.is_empty() {
        return Err(DataError::new(
            ErrorKind::Empty,
            path,
            "at least one usable conversation",
            format!(
                "none ({})",
                report.to_string().trim_end().replace('\n', "; ")
            ),
        ));
    }
    Ok(SftData {
        format: report.format.clone(),
        records,
        report,
    })
}

/// `file:line`.
pub fn source_of(path: &Path, line: usize) -> String {
    format!("{}:{line}", path.display())
}

/// Refuses a file whose format is for another kind of training, with the way out.
pub fn check_kind(reader: &RecordReader, want: DataKind) -> Result<(), DataError> {
    let f = reader.format();
    if f.kind() == want {
        return Ok(());
    }
    let (found, hint) = match (f.kind(), want) {
        (DataKind::Sft, _) => (
            format!("SFT conversations (format {f})"),
            "this file is SFT data; preference formats are listwise, ultrafeedback, trl, argilla, sharegpt-pairwise, hh, helpsteer".to_string(),
        ),
        (DataKind::Unpaired, DataKind::Sft) => (
            "unpaired KTO examples (messages + label)".into(),
            "to use the desirable examples as SFT data: `jq -c 'select(.label) | {messages}' FILE`".into(),
        ),
        (DataKind::Unpaired, _) => (
            "unpaired KTO examples (messages + label)".into(),
            "KTO examples have nothing to compare; λ-DPO needs ≥ 2 rated responses per prompt".into(),
        ),
        (DataKind::Preference, _) => (
            format!("preference lists (format {f})"),
            "to train SFT on the best response of each list: `lambda-dpo data convert FILE --to sft OUT`".into(),
        ),
    };
    let expected = match want {
        DataKind::Preference => "preference data (prompts with rated responses)",
        DataKind::Sft => "SFT conversations",
        DataKind::Unpaired => "unpaired examples",
    };
    Err(DataError::new(ErrorKind::Format, reader.path(), expected, found).hint(hint))
}

fn skip_or_fail(
    e: DataError,
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<(), DataError> {
    if opts.skip_invalid && e.is_record_error() {
        report.skipped.add(&e);
        Ok(())
    } else {
        Err(e)
    }
}

/// Positions grouped by equal key, groups in first-occurrence order.
pub fn group_equal<K: Eq + Hash>(keys: impl IntoIterator<Item = K>) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut at: HashMap<K, usize> = HashMap::new();
    for (i, k) in keys.into_iter().enumerate() {
        match at.get(&k) {
            Some(&g) => groups[g].push(i),
            None => {
                at.insert(k, groups.len());
                groups.push(vec![i]);
            }
        }
    }
    groups
}

/// Mean of the present ratings of a group of responses (`None` if none is present).
pub fn merged_rating(row: &[Option<f64>], group: &[usize]) -> Option<f64> {
    let vals: Vec<f64> = group.iter().filter_map(|&i| row[i]).collect();
    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
}

/// Renders one list; `Ok(None)` when it ends with N < 2 (counted in the report).
fn stage(
    path: &Path,
    renderer: &Renderer<'_>,
    rec: ListRecord,
    opts: &LoadOptions,
    dims: &mut Vec<String>,
    report: &mut LoadReport,
) -> Result<Option<Staged>, DataError> {
    let ctx = Ctx::new(path, rec.pos);
    let source = source_of(path, rec.pos.line);
    report.empty_responses += rec
        .responses
        .iter()
        .filter(|r| r.content.is_empty())
        .count();
    let local_dims = rec.dims();
    let ratings = rec.ratings(&local_dims); // [k][i] over the original responses

    // Merge identical texts first (cheap), render one copy of each, then merge identical
    // token sequences; groups always hold original indices so the mean is over all copies.
    let groups: Vec<Vec<usize>> = if opts.dedup {
        group_equal(rec.responses.iter().map(|r| &r.content))
    } else {
        (0..rec.responses.len()).map(|i| vec![i]).collect()
    };
    let prompt = renderer.prompt(&ctx, &rec.prompt)?;
    let mut rendered = Vec::with_capacity(groups.len());
    for g in &groups {
        let field = format!("responses[{}]", g[0]);
        rendered.push(renderer.response(&ctx, &prompt, &rec.responses[g[0]].content, &field)?);
    }
    if let Some(i) = rendered.iter().position(Vec::is_empty) {
        return Err(ctx
            .err(
                ErrorKind::Field,
                &format!("responses[{}]", groups[i][0]),
                "a response with at least one token",
                "no tokens (empty text, and the tokenizer has no end-of-sequence token)",
            )
            .hint("give the response some text"));
    }
    let (groups, mut responses) = if opts.dedup {
        let by_ids = group_equal(rendered.iter());
        let merged: Vec<Vec<usize>> = by_ids
            .iter()
            .map(|gg| gg.iter().flat_map(|&g| groups[g].iter().copied()).collect())
            .collect();
        let firsts: Vec<Vec<u32>> = by_ids.iter().map(|gg| rendered[gg[0]].clone()).collect();
        (merged, firsts)
    } else {
        (groups, rendered)
    };
    let removed = rec.responses.len() - groups.len();
    if removed > 0 {
        report.duplicates_removed += removed;
        report.lists_with_duplicates += 1;
    }
    if responses.len() < 2 {
        report.drop_too_few(&source);
        return Ok(None);
    }
    let prompt_messages = prompt.messages().map(<[_]>::to_vec);
    let mut prompt_ids = prompt.ids;
    let truncated = truncate_list(
        &mut prompt_ids,
        &mut responses,
        opts.max_length,
        opts.max_prompt_length,
        opts.truncation,
    )
    .map_err(|m| {
        DataError::new(
            ErrorKind::Options,
            path,
            "a max_length that leaves room for the responses",
            m,
        )
        .at(rec.pos.line, rec.pos.index)
        .field("max_length")
    })?;
    if truncated {
        report.truncated += 1;
    }
    let local = local_dims
        .iter()
        .zip(&ratings)
        .map(|(d, row)| {
            let g = match dims.iter().position(|x| x == d) {
                Some(g) => g,
                None => {
                    dims.push(d.clone());
                    dims.len() - 1
                }
            };
            (
                g,
                groups.iter().map(|grp| merged_rating(row, grp)).collect(),
            )
        })
        .collect();
    Ok(Some(Staged {
        line: rec.pos.line,
        index: rec.pos.index,
        list: RenderedList {
            source,
            prompt_ids,
            responses,
            ratings: Vec::new(),
            truncated,
            prompt_messages,
        },
        local,
    }))
}

/// Indices of the selected dimensions in `present` (all of them when none are selected).
pub fn select_dimensions(
    path: &Path,
    present: &[String],
    selected: Option<&[String]>,
) -> Result<Vec<usize>, DataError> {
    let Some(sel) = selected else {
        return Ok((0..present.len()).collect());
    };
    sel.iter()
        .map(|name| {
            present.iter().position(|p| p == name).ok_or_else(|| {
                DataError::new(
                    ErrorKind::UnknownDimension,
                    path,
                    format!(
                        "a dimension present in the data (one of: {})",
                        present.join(", ")
                    ),
                    format!("{name:?}"),
                )
                .field("dimensions")
                .hint(
                    "dimension names are case-sensitive; `lambda-dpo data inspect FILE` lists them",
                )
            })
        })
        .collect()
}

/// Applies the missing-rating policy to one list's `ratings[k][i]`; returns how many ratings
/// were filled.
fn apply_missing(
    path: &Path,
    line: usize,
    index: usize,
    names: &[&str],
    ratings: &mut [Vec<Option<f64>>],
    policy: MissingPolicy,
) -> Result<usize, DataError> {
    let err = |field: &str, expected: &str, found: String, hint: &str| {
        DataError::new(ErrorKind::MissingRating, path, expected, found)
            .at(line, index)
            .field(field)
            .hint(hint)
    };
    match policy {
        MissingPolicy::Default(v) => {
            let mut filled = 0;
            for row in ratings.iter_mut() {
                for r in row.iter_mut().filter(|r| r.is_none()) {
                    *r = Some(v);
                    filled += 1;
                }
            }
            Ok(filled)
        }
        MissingPolicy::Error => {
            for (k, row) in ratings.iter().enumerate() {
                if let Some(i) = row.iter().position(Option::is_none) {
                    return Err(err(
                        names[k],
                        &format!("a rating on `{}` for every response (missing policy: error)", names[k]),
                        format!("no rating for response {i}"),
                        "choose another missing policy (drop-dimension, or a default rating), or --skip-invalid",
                    ));
                }
            }
            Ok(0)
        }
        MissingPolicy::DropDimension => {
            if ratings.iter().all(|row| row.iter().any(Option::is_none)) {
                return Err(err(
                    names.first().copied().unwrap_or(""),
                    "at least one dimension rated for every response (missing policy: drop-dimension)",
                    "a missing rating on every dimension".into(),
                    "use a default rating for missing ones (the authors' code uses 1), or --skip-invalid",
                ));
            }
            Ok(0)
        }
    }
}
