//! Typed access to the fields of one JSON record, with errors that carry the record's
//! location and the field's JSON path. Every format reader goes through these helpers, so a
//! wrong type, a missing field or a bad rating reads the same whatever the format.

use std::path::Path;

use lambda_dpo_math::targets::parse_rating;
use lambda_dpo_model::Message;
use serde_json::{Map, Value};

use super::error::{describe, keys, DataError, ErrorKind};
use super::record::Pos;

/// Roles a chat message may have. Tool turns are out of scope for preference training.
pub const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// The location of the record being parsed.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub path: &'a Path,
    pub pos: Pos,
}

impl<'a> Ctx<'a> {
    pub fn new(path: &'a Path, pos: Pos) -> Self {
        Self { path, pos }
    }

    /// An error about `field` of this record.
    pub fn err(
        &self,
        kind: ErrorKind,
        field: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> DataError {
        let e = DataError::new(kind, self.path, expected, found).at(self.pos.line, self.pos.index);
        if field.is_empty() {
            e
        } else {
            e.field(field)
        }
    }

    /// "`field` is missing": lists the keys the object does have, which catches typos.
    pub fn missing(&self, obj: &Map<String, Value>, field: &str, expected: &str) -> DataError {
        self.err(
            ErrorKind::Field,
            field,
            expected,
            format!("no such field (the object has keys {})", keys(obj)),
        )
    }

    /// The record itself as an object.
    pub fn record<'v>(&self, v: &'v Value) -> Result<&'v Map<String, Value>, DataError> {
        v.as_object().ok_or_else(|| {
            self.err(ErrorKind::Field, "", "a JSON object", describe(v))
                .hint("every record is one JSON object")
        })
    }

    pub fn object<'v>(
        &self,
        v: &'v Value,
        field: &str,
    ) -> Result<&'v Map<String, Value>, DataError> {
        v.as_object()
            .ok_or_else(|| self.err(ErrorKind::Field, field, "an object", describe(v)))
    }

    pub fn array<'v>(&self, v: &'v Value, field: &str) -> Result<&'v Vec<Value>, DataError> {
        v.as_array()
            .ok_or_else(|| self.err(ErrorKind::Field, field, "an array", describe(v)))
    }

    /// A present, non-null field.
    pub fn req<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
        expected: &str,
    ) -> Result<&'v Value, DataError> {
        match obj.get(key) {
            None => Err(self.missing(obj, field, expected)),
            Some(Value::Null) => Err(self.err(ErrorKind::Field, field, expected, "null")),
            Some(v) => Ok(v),
        }
    }

    pub fn string(&self, v: &Value, field: &str, expected: &str) -> Result<String, DataError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.err(ErrorKind::Field, field, expected, describe(other))),
        }
    }

    /// A non-empty array of token ids (integers in `0..2^32`).
    pub fn ids(&self, v: &Value, field: &str) -> Result<Vec<u32>, DataError> {
        let arr = self
            .array(v, field)
            .map_err(|e| e.expecting("an array of token ids"))?;
        if arr.is_empty() {
            return Err(self.err(
                ErrorKind::Field,
                field,
                "at least one token id",
                "an empty array",
            ));
        }
        arr.iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        self.err(
                            ErrorKind::Field,
                            &format!("{field}[{i}]"),
                            "a token id (an integer from 0 to 4294967295)",
                            describe(x),
                        )
                    })
            })
            .collect()
    }

    /// A rating: a number, a numeric string, or a missing marker ("N/A", "", null, …), as
    /// decided by [`parse_rating`]. Anything else is an error rather than "missing", so a typo
    /// never silently changes the target.
    pub fn rating(&self, v: &Value, field: &str) -> Result<Option<f64>, DataError> {
        let bad = |found: String| {
            self.err(
                ErrorKind::Rating,
                field,
                "a rating: a number, or N/A, empty or null when missing",
                found,
            )
            .hint("ratings are numbers (UltraFeedback 1-5, HelpSteer 0-4); write \"N/A\" or null for a missing one")
        };
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => match n.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(bad(describe(v))),
            },
            Value::String(s) => parse_rating(s).map_err(|_| bad(describe(v))),
            other => Err(bad(describe(other))),
        }
    }

    /// Chat messages `[{"role": …, "content": "…"}, …]` (extra keys are ignored).
    pub fn messages(&self, v: &Value, field: &str) -> Result<Vec<Message>, DataError> {
        let arr = self
            .array(v, field)
            .map_err(|e| e.expecting("an array of messages ({\"role\": …, \"content\": …})"))?;
        if arr.is_empty() {
            return Err(self.err(
                ErrorKind::Field,
                field,
                "at least one message",
                "an empty array",
            ));
        }
        arr.iter()
            .enumerate()
            .map(|(i, m)| {
                let f = format!("{field}[{i}]");
                let obj = self.object(m, &f)?;
                let role = self.string(
                    self.req(
                        obj,
                        "role",
                        &format!("{f}.role"),
                        "a role (system, user or assistant)",
                    )?,
                    &format!("{f}.role"),
                    "a role (system, user or assistant)",
                )?;
                if !ROLES.contains(&role.as_str()) {
                    return Err(self
                        .err(
                            ErrorKind::Field,
                            &format!("{f}.role"),
                            "one of system, user, assistant",
                            format!("{role:?}"),
                        )
                        .hint("tool and function turns are not supported in training data"));
                }
                let content = self.content(obj, &format!("{f}.content"))?;
                Ok(Message::new(&role, &content))
            })
            .collect()
    }

    /// A message's text content.
    fn content(&self, obj: &Map<String, Value>, field: &str) -> Result<String, DataError> {
        let v = self.req(obj, "content", field, "the message text (a string)")?;
        self.string(v, field, "the message text (a string)")
            .map_err(|e| {
                if v.is_array() {
                    e.hint("multimodal content parts are not supported; give the text as a string")
                } else {
                    e
                }
            })
    }

    /// One ShareGPT turn `{"from": "human"|"gpt"|"system", "value": "…"}` (also accepts
    /// `role`/`content` and the user/assistant names) as a message.
    pub fn sharegpt_turn(&self, v: &Value, field: &str) -> Result<Message, DataError> {
        let obj = self.object(v, field)?;
        let (role_key, text_key) = if obj.contains_key("from") || !obj.contains_key("role") {
            ("from", "value")
        } else {
            ("role", "content")
        };
        let rf = format!("{field}.{role_key}");
        let tag = self.string(
            self.req(obj, role_key, &rf, "a speaker tag (human, gpt or system)")?,
            &rf,
            "a speaker tag (human, gpt or system)",
        )?;
        let role =
            match tag.as_str() {
                "human" | "user" => "user",
                "gpt" | "assistant" | "model" | "chatgpt" | "bard" | "bing" => "assistant",
                "system" => "system",
                _ => return Err(self
                    .err(
                        ErrorKind::Field,
                        &rf,
                        "one of human, gpt, system (or user, assistant)",
                        format!("{tag:?}"),
                    )
                    .hint(
                        "function_call and observation turns are not supported in training data",
                    )),
            };
        let tf = format!("{field}.{text_key}");
        let text = self.string(
            self.req(obj, text_key, &tf, "the turn's text (a string)")?,
            &tf,
            "the turn's text (a string)",
        )?;
        Ok(Message::new(role, &text))
    }

    /// A ShareGPT conversation (array of turns).
    pub fn sharegpt(&self, v: &Value, field: &str) -> Result<Vec<Message>, DataError> {
        let arr = self.array(v, field)?;
        arr.iter()
            .enumerate()
            .map(|(i, t)| self.sharegpt_turn(t, &format!("{field}[{i}]")))
            .collect()
    }
}

/// "a user", "an assistant": roles in messages.
pub fn with_article(role: &str) -> String {
    // By sound, not spelling: "a user", "an assistant".
    if role == "assistant" {
        format!("an {role}")
    } else {
        format!("a {role}")
    }
}

/// The text of a message (its `content` as a string; messages built here always have one).
pub fn text_of(m: &Message) -> &str {
    m.content.as_str().unwrap_or("")
}

/// Checks that a prompt conversation can take a generation prompt: it ends with a user turn
/// and only the first message may be a system message.
pub fn check_prompt_messages(
    ctx: &Ctx<'_>,
    msgs: &[Message],
    field: &str,
) -> Result<(), DataError> {
    match msgs.last() {
        None => Err(ctx.err(ErrorKind::Field, field, "a prompt with at least one user turn", "no messages")),
        Some(m) if m.role != "user" => Err(ctx
            .err(
                ErrorKind::Field,
                field,
                "a prompt that ends with a user turn",
                format!("a prompt that ends with {} turn", with_article(&m.role)),
            )
            .hint("the responses answer the last user turn; remove trailing assistant turns from the prompt")),
        Some(_) => check_system_first(ctx, msgs, field),
    }
}

/// Only the first message may be a system message (chat templates place it once).
pub fn check_system_first(ctx: &Ctx<'_>, msgs: &[Message], field: &str) -> Result<(), DataError> {
    if let Some(i) = msgs.iter().skip(1).position(|m| m.role == "system") {
        return Err(ctx.err(
            ErrorKind::Field,
            &format!("{field}[{}].role", i + 1),
            "a system message only as the first message",
            "a system message later in the conversation",
        ));
    }
    Ok(())
}
