//! HelpSteer / HelpSteer2 (nvidia): one row per (prompt, response) with 0–4 scores on
//! `helpfulness`, `correctness`, `coherence`, `complexity`, `verbosity`. Rows are grouped into
//! lists by identical prompt.
//!
//! Grouping streams: consecutive rows with the same prompt form one list, as the releases
//! store them. A prompt that comes back later (not adjacent) starts a new list and is counted
//! ([`Grouper::repeats`]) so the report can say so; finding such rows would need the whole
//! file in memory. Groups of one response are yielded as they are; the loaders report them
//! among the lists with N < 2.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

use super::error::DataError;
use super::fields::Ctx;
use super::record::{Content, ListRecord, Pos, Prompt, Response, Scores};

/// The attribute columns, in the order HelpSteer lists them.
pub const ATTRIBUTES: [&str; 5] = [
    "helpfulness",
    "correctness",
    "coherence",
    "complexity",
    "verbosity",
];

/// One row: its prompt and its rated response.
pub fn parse_row(ctx: &Ctx<'_>, value: &Value) -> Result<(String, Response), DataError> {
    let obj = ctx.record(value)?;
    let prompt = ctx.string(
        ctx.req(obj, "prompt", "prompt", "the prompt text (a string)")?,
        "prompt",
        "the prompt text (a string)",
    )?;
    let text = ctx.string(
        ctx.req(obj, "response", "response", "the response text (a string)")?,
        "response",
        "the response text (a string)",
    )?;
    let mut scores = Scores::default();
    for attr in ATTRIBUTES {
        if let Some(v) = obj.get(attr) {
            scores.set(attr, ctx.rating(v, attr)?);
        }
    }
    Ok((
        prompt,
        Response {
            content: Content::Text(text),
            scores,
            model: None,
        },
    ))
}

/// Streaming group-by on consecutive identical prompts.
#[derive(Debug, Default)]
pub struct Grouper {
    current: Option<(String, ListRecord)>,
    seen: HashSet<u64>,
    /// Lists whose prompt already formed an earlier, non-adjacent list.
    pub repeats: usize,
}

impl Grouper {
    /// Adds a row; returns the previous list when this row starts a new one.
    pub fn push(&mut self, pos: Pos, prompt: String, response: Response) -> Option<ListRecord> {
        if let Some((p, rec)) = &mut self.current {
            if *p == prompt {
                rec.responses.push(response);
                return None;
            }
        }
        if !self.seen.insert(hash(&prompt)) {
            self.repeats += 1;
        }
        let rec = ListRecord {
            pos,
            prompt: Prompt::Text(prompt.clone()),
            responses: vec![response],
            source: None,
        };
        self.current.replace((prompt, rec)).map(|(_, r)| r)
    }

    /// The last list, at the end of the file.
    pub fn finish(&mut self) -> Option<ListRecord> {
        self.current.take().map(|(_, r)| r)
    }
}

fn hash(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}
