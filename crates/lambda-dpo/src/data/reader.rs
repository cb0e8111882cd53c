//! [`RecordReader`]: a streaming, tokenizer-free iterator of [`Record`]s over one file, in
//! any supported format. It detects the format from the first record that parses (unless one
//! is forced), dispatches each JSON record to its format's parser, filters UltraFeedback's
//! `truthful_qa` rows on request, and groups HelpSteer rows into lists.
//!
//! Errors are yielded in file order and reading goes on after a record error, so a caller can
//! stop at the first one or count and skip them (`--skip-invalid`); a file error (I/O,
//! truncated gzip, broken array) is the last item.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::detect::{detect, Format};
use super::error::{describe, keys, DataError, ErrorKind};
use super::fields::Ctx;
use super::helpsteer::{self, Grouper};
use super::record::{Pos, Record};
use super::source::{JsonSource, Layout, RawRecord};
use super::{listwise, pairwise, sft, ultrafeedback};

/// How many unparsable records may precede the first good one before detection gives up.
const MAX_ERRORS_BEFORE_DETECTION: usize = 1000;

/// Options that change which records a file yields (no tokenizer involved).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOptions {
    /// Force a format instead of detecting it from the first record.
    pub format: Option<Format>,
    /// UltraFeedback: leave out rows whose `source` is `truthful_qa` (counted).
    pub drop_truthful_qa: bool,
    /// UltraFeedback: use the completions' shared `custom_system_prompt` as a system message.
    pub use_custom_system_prompt: bool,
}

/// Counts kept while reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReadCounters {
    /// JSON records read (valid or not).
    pub rows: usize,
    /// UltraFeedback rows left out by `drop_truthful_qa`.
    pub filtered_truthful_qa: usize,
    /// HelpSteer lists whose prompt already formed an earlier, non-adjacent list.
    pub helpsteer_repeats: usize,
}

/// A streaming reader of one file's records.
pub struct RecordReader {
    source: JsonSource,
    path: PathBuf,
    format: Format,
    opts: ReadOptions,
    /// Records read ahead while detecting the format, yielded first.
    pending: VecDeque<Result<RawRecord, DataError>>,
    grouper: Grouper,
    counters: ReadCounters,
    done: bool,
}

impl std::fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl RecordReader {
    /// Opens a file and detects (or takes) its format.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self, DataError> {
        Self::from_source(JsonSource::open(path)?, opts)
    }

    /// Reads from a byte stream; `name` appears in messages (used by the fuzz targets).
    pub fn from_reader(
        name: impl Into<PathBuf>,
        reader: impl Read + 'static,
        opts: &ReadOptions,
    ) -> Result<Self, DataError> {
        Self::from_source(JsonSource::from_reader(name, reader)?, opts)
    }

    fn from_source(mut source: JsonSource, opts: &ReadOptions) -> Result<Self, DataError> {
        let path = source.path().to_path_buf();
        let mut pending = VecDeque::new();
        let format = match opts.format {
            Some(f) => f,
            None => detect_from(&mut source, &mut pending)?,
        };
        Ok(Self {
            source,
            path,
            format,
            opts: opts.clone(),
            pending,
            grouper: Grouper::default(),
            counters: ReadCounters::default(),
            done: false,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn layout(&self) -> Layout {
        self.source.layout()
    }

    pub fn is_gzip(&self) -> bool {
        self.source.is_gzip()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn counters(&self) -> &ReadCounters {
        &self.counters
    }

    /// Parses one JSON record in this reader's format; `Ok(None)` when it yields nothing
    /// (filtered, or a HelpSteer row added to the open group).
    fn parse(&mut self, raw: RawRecord) -> Result<Option<Record>, DataError> {
        let pos = Pos {
            line: raw.line,
            index: raw.index,
        };
        let ctx = Ctx::new(&self.path, pos);
        let v = &raw.value;
        Ok(Some(match self.format {
            Format::Listwise => Record::List(listwise::parse(&ctx, v)?),
            Format::UltraFeedback => {
                match ultrafeedback::parse(
                    &ctx,
                    v,
                    self.opts.drop_truthful_qa,
                    self.opts.use_custom_system_prompt,
                )? {
                    Some(r) => Record::List(r),
                    None => {
                        self.counters.filtered_truthful_qa += 1;
                        return Ok(None);
                    }
                }
            }
            Format::Trl | Format::Argilla => Record::List(pairwise::parse_trl(&ctx, v)?),
            Format::ShareGptPairwise => Record::List(pairwise::parse_sharegpt(&ctx, v)?),
            Format::Hh => Record::List(pairwise::parse_hh(&ctx, v)?),
            Format::HelpSteer => {
                let (prompt, response) = helpsteer::parse_row(&ctx, v)?;
                match self.grouper.push(pos, prompt, response) {
                    Some(list) => Record::List(list),
                    None => return Ok(None),
                }
            }
            Format::Messages => Record::Sft(sft::parse_messages(&ctx, v)?),
            Format::Alpaca => Record::Sft(sft::parse_alpaca(&ctx, v)?),
            Format::ShareGpt => Record::Sft(sft::parse_sharegpt(&ctx, v)?),
            Format::Kto => Record::Unpaired(sft::parse_kto(&ctx, v)?),
        }))
    }
}

impl Iterator for RecordReader {
    type Item = Result<Record, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let raw = match self.pending.pop_front() {
                Some(r) => Some(r),
                None => self.source.next(),
            };
            match raw {
                None => {
                    self.done = true;
                    self.counters.helpsteer_repeats = self.grouper.repeats;
                    return self.grouper.finish().map(|r| Ok(Record::List(r)));
                }
                Some(Err(e)) => {
                    if e.is_record_error() {
                        self.counters.rows += 1;
                    }
                    return Some(Err(e));
                }
                Some(Ok(raw)) => {
                    self.counters.rows += 1;
                    match self.parse(raw) {
                        Ok(Some(rec)) => return Some(Ok(rec)),
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
        }
    }
}

/// Reads up to the first JSON object and recognises its format; everything read is kept in
/// `pending` so that it is yielded (errors included) in file order.
fn detect_from(
    source: &mut JsonSource,
    pending: &mut VecDeque<Result<RawRecord, DataError>>,
) -> Result<Format, DataError> {
    let path = source.path().to_path_buf();
    loop {
        match source.next() {
            None => {
                // Only bad records (or an empty array): report the first problem.
                return Err(match pending.pop_front() {
                    Some(Err(e)) => e,
                    _ => DataError::new(
                        ErrorKind::Empty,
                        &path,
                        "at least one record",
                        "an empty array",
                    )
                    .hint("the file has no records"),
                });
            }
            Some(Err(e))
                if !e.is_record_error() || pending.len() >= MAX_ERRORS_BEFORE_DETECTION =>
            {
                return Err(match pending.pop_front() {
                    Some(Err(first)) => first,
                    _ => e,
                })
            }
            Some(Err(e)) => pending.push_back(Err(e)),
            Some(Ok(raw)) => {
                let found = match raw.value.as_object() {
                    Some(obj) => match detect(obj) {
                        Some(f) => {
                            pending.push_back(Ok(raw));
                            return Ok(f);
                        }
                        None => format!("an object with keys {}", keys(obj)),
                    },
                    None => describe(&raw.value),
                };
                return Err(DataError::new(
                    ErrorKind::Format,
                    &path,
                    "a record in a known format (listwise, UltraFeedback, TRL/argilla/sharegpt/HH pairs, HelpSteer, messages, Alpaca, sharegpt)",
                    found,
                )
                .at(raw.line, raw.index)
                .hint(format!(
                    "force a format with --format NAME (one of: {}); if the records sit under one key, extract them first, e.g. `jq -c '.data[]' FILE`",
                    Format::names()
                )));
            }
        }
    }
}
