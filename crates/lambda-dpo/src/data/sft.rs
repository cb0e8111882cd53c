//! SFT formats as conversations: `messages` (UltraChat-200k / H4 `*_sft`), Alpaca
//! (`instruction`, `input`, `output`, optional `system` and `history`), ShareGPT
//! (`conversations` of `{from, value}`); and the unpaired KTO layout (`messages` + `label`),
//! which is recognised so it can be inspected and refused clearly.
//!
//! Alpaca's user turn is `instruction + "\n" + input` when `input` is not empty, as
//! LLaMA-Factory builds it. Every conversation needs at least one assistant turn and may have
//! a system message only first.

use lambda_dpo_model::Message;
use serde_json::Value;

use super::error::{describe, DataError, ErrorKind};
use super::fields::{check_system_first, Ctx};
use super::record::{SftRecord, UnpairedRecord};

/// `{"messages": [...]}` (other keys such as `prompt`, `prompt_id` are ignored).
pub fn parse_messages(ctx: &Ctx<'_>, value: &Value) -> Result<SftRecord, DataError> {
    let obj = ctx.record(value)?;
    let messages = ctx.messages(
        ctx.req(obj, "messages", "messages", "an array of chat messages")?,
        "messages",
    )?;
    finish(ctx, messages, "messages")
}

/// `{"instruction", "input", "output", "system"?, "history"?}`.
pub fn parse_alpaca(ctx: &Ctx<'_>, value: &Value) -> Result<SftRecord, DataError> {
    let obj = ctx.record(value)?;
    let text = |key: &str, required: bool| -> Result<String, DataError> {
        match obj.get(key) {
            None | Some(Value::Null) if !required => Ok(String::new()),
            None | Some(Value::Null) => Err(ctx.missing(obj, key, "a string")),
            Some(v) => ctx.string(v, key, "a string"),
        }
    };
    let instruction = text("instruction", true)?;
    let input = text("input", false)?;
    let output = text("output", true)?;
    let system = text("system", false)?;
    let mut messages = Vec::new();
    if !system.is_empty() {
        messages.push(Message::new("system", &system));
    }
    if let Some(h) = obj.get("history").filter(|h| !h.is_null()) {
        for (i, pair) in ctx.array(h, "history")?.iter().enumerate() {
            let f = format!("history[{i}]");
            match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(q), Value::String(a)]) => {
                    messages.push(Message::new("user", q));
                    messages.push(Message::new("assistant", a));
                }
                _ => {
                    return Err(ctx.err(
                        ErrorKind::Field,
                        &f,
                        "a [query, response] pair of strings",
                        describe(pair),
                    ))
                }
            }
        }
    }
    let user = if input.is_empty() {
        instruction
    } else {
        format!("{instruction}\n{input}")
    };
    messages.push(Message::new("user", &user));
    messages.push(Message::new("assistant", &output));
    finish(ctx, messages, "output")
}

/// `{"conversations": [{"from": "human", "value": …}, …], "system"?}`.
pub fn parse_sharegpt(ctx: &Ctx<'_>, value: &Value) -> Result<SftRecord, DataError> {
    let obj = ctx.record(value)?;
    let mut messages = ctx.sharegpt(
        ctx.req(
            obj,
            "conversations",
            "conversations",
            "the conversation turns",
        )?,
        "conversations",
    )?;
    if let Some(Value::String(sys)) = obj.get("system") {
        if !sys.is_empty() && messages.first().is_none_or(|m| m.role != "system") {
            messages.insert(0, Message::new("system", sys));
        }
    }
    finish(ctx, messages, "conversations")
}

/// `{"messages": [...], "label": true|false}`.
pub fn parse_kto(ctx: &Ctx<'_>, value: &Value) -> Result<UnpairedRecord, DataError> {
    let obj = ctx.record(value)?;
    let messages = ctx.messages(
        ctx.req(obj, "messages", "messages", "an array of chat messages")?,
        "messages",
    )?;
    let label = match ctx.req(obj, "label", "label", "a boolean")? {
        Value::Bool(b) => *b,
        other => return Err(ctx.err(ErrorKind::Field, "label", "a boolean", describe(other))),
    };
    let rec = finish(ctx, messages, "messages")?;
    Ok(UnpairedRecord {
        pos: rec.pos,
        messages: rec.messages,
        label,
    })
}

fn finish(ctx: &Ctx<'_>, messages: Vec<Message>, field: &str) -> Result<SftRecord, DataError> {
    if !messages.iter().any(|m| m.role == "assistant") {
        return Err(ctx
            .err(
                ErrorKind::Field,
                field,
                "at least one assistant turn to train on",
                "no assistant turn",
            )
            .hint("SFT trains on the assistant's turns; add the response"));
    }
    check_system_first(ctx, &messages, field)?;
    Ok(SftRecord {
        pos: ctx.pos,
        messages,
    })
}
