//! The format-independent records every reader produces, before any tokenizer is involved.
//!
//! A preference record is a [`ListRecord`]: one prompt (text, chat messages or token ids) and
//! `N ≥ 2` responses, each with ratings on named dimensions. Pairwise formats become lists of
//! two; HelpSteer rows become lists by prompt. An SFT record is a conversation
//! ([`SftRecord`]). Rendering into token ids is `render.rs`'s job, not this module's.

use lambda_dpo_model::Message;

/// Where a record came from: its first line (1-based) and its index among the file's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub index: usize,
}

/// The prompt of a preference list.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Plain text: rendered as one user message when the model has a chat template.
    Text(String),
    /// A conversation ending with a user turn (may start with a system message).
    Messages(Vec<Message>),
    /// Pre-tokenized: used as-is, no special tokens added.
    Ids(Vec<u32>),
}

impl Prompt {
    /// The prompt as chat messages (a text prompt is one user message); `None` for ids.
    pub fn to_messages(&self) -> Option<Vec<Message>> {
        match self {
            Self::Text(t) => Some(vec![Message::new("user", t)]),
            Self::Messages(m) => Some(m.clone()),
            Self::Ids(_) => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Messages(_) => "messages",
            Self::Ids(_) => "ids",
        }
    }
}

/// A response: text (rendered as the assistant turn) or pre-tokenized ids (used as-is).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Content {
    Text(String),
    Ids(Vec<u32>),
}

impl Content {
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Text(t) => t.trim().is_empty(),
            Self::Ids(i) => i.is_empty(),
        }
    }
}

/// Ratings of one response, by dimension, in the order the data names them. `None` is a
/// missing rating ("N/A", empty, null) — kept as such; the missing policy decides later.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores(pub Vec<(String, Option<f64>)>);

impl Scores {
    pub fn get(&self, dim: &str) -> Option<Option<f64>> {
        self.0.iter().find(|(d, _)| d == dim).map(|(_, r)| *r)
    }

    /// Sets a rating, replacing an earlier one of the same dimension.
    pub fn set(&mut self, dim: &str, rating: Option<f64>) {
        match self.0.iter_mut().find(|(d, _)| d == dim) {
            Some(slot) => slot.1 = rating,
            None => self.0.push((dim.to_string(), rating)),
        }
    }

    pub fn dims(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(d, _)| d.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One candidate response of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub content: Content,
    pub scores: Scores,
    /// The model that wrote it, when the format says (UltraFeedback `completions[].model`).
    pub model: Option<String>,
}

/// A prompt with its rated responses.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRecord {
    pub pos: Pos,
    pub prompt: Prompt,
    pub responses: Vec<Response>,
    /// The dataset's own source tag (UltraFeedback `source`, e.g. `evol_instruct`).
    pub source: Option<String>,
}

impl ListRecord {
    /// Dimensions named by any response, in first-seen order.
    pub fn dims(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.responses {
            for d in r.scores.dims() {
                if !out.iter().any(|o| o == d) {
                    out.push(d.to_string());
                }
            }
        }
        out
    }

    /// `ratings[k][i]`: rating of response `i` on `dims[k]` (`None` if missing or absent).
    pub fn ratings(&self, dims: &[String]) -> Vec<Vec<Option<f64>>> {
        dims.iter()
            .map(|d| {
                self.responses
                    .iter()
                    .map(|r| r.scores.get(d).flatten())
                    .collect()
            })
            .collect()
    }
}

/// A conversation for supervised fine-tuning (at least one assistant turn).
#[derive(Debug, Clone, PartialEq)]
pub struct SftRecord {
    pub pos: Pos,
    pub messages: Vec<Message>,
}

/// An unpaired (KTO-style) example: a conversation whose last assistant turn is labelled
/// desirable or not. Recognised so that it can be inspected and refused with a clear message.
#[derive(Debug, Clone, PartialEq)]
pub struct UnpairedRecord {
    pub pos: Pos,
    pub messages: Vec<Message>,
    pub label: bool,
}

/// What a reader yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    List(ListRecord),
    Sft(SftRecord),
    Unpaired(UnpairedRecord),
}

impl Record {
    pub fn pos(&self) -> Pos {
        match self {
            Self::List(r) => r.pos,
            Self::Sft(r) => r.pos,
            Self::Unpaired(r) => r.pos,
        }
    }
}
