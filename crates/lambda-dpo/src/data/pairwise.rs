//! Pairwise formats as lists of two (`[chosen, rejected]`):
//!
//! - **TRL / H4** `{"prompt", "chosen", "rejected"}` with strings or message lists (an H4-style
//!   `chosen` that repeats the prompt conversation is accepted, and without `prompt` the shared
//!   history *is* the prompt); pre-tokenized `prompt_input_ids`/`chosen_input_ids`/
//!   `rejected_input_ids`; optional scores `score_chosen`/`score_rejected` (also under
//!   `metadata`, as in the trl-lib binarized dumps).
//! - **argilla**: the same with `chosen-rating`/`rejected-rating` (or `_`).
//! - **LLaMA-Factory sharegpt**: `conversations` (history; a leading `system` turn or a `system`
//!   field) + `chosen`/`rejected` turn objects.
//! - **Anthropic HH**: full transcripts, split at the last `"\n\nAssistant:"`; both must share
//!   the history before it, which becomes the prompt messages.
//!
//! The target: with scores, one dimension `score` holding them (a tie gives a uniform
//! target); without, one dimension `preference` with chosen 1 and rejected 0 (one-hot under
//! `T = 0`, a soft 0.73/0.27 under `T = 1`).

use lambda_dpo_model::Message;
use serde_json::{Map, Value};

use super::error::{describe, preview, DataError, ErrorKind};
use super::fields::{check_prompt_messages, check_system_first, text_of, Ctx};
use super::listwise::check_list;
use super::record::{Content, ListRecord, Prompt, Response, Scores};

/// Dimension of a pair without scores: chosen 1, rejected 0.
pub const PREFERENCE_DIM: &str = "preference";
/// Dimension of a pair with scores from the data.
pub const SCORE_DIM: &str = "score";

/// Key pairs that hold a pair's scores, in the order they are looked for.
const SCORE_KEYS: [(&str, &str); 4] = [
    ("score_chosen", "score_rejected"),
    ("chosen-rating", "rejected-rating"),
    ("chosen_rating", "rejected_rating"),
    ("chosen_score", "rejected_score"),
];

/// TRL / H4 / argilla record.
pub fn parse_trl(ctx: &Ctx<'_>, value: &Value) -> Result<ListRecord, DataError> {
    let obj = ctx.record(value)?;
    if obj.contains_key("chosen_input_ids") || obj.contains_key("prompt_input_ids") {
        return parse_trl_ids(ctx, obj);
    }
    let prompt = match obj.get("prompt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Prompt::Text(s.clone())),
        Some(v @ Value::Array(_)) => Some(Prompt::Messages(ctx.messages(v, "prompt")?)),
        Some(other) => {
            return Err(ctx.err(
                ErrorKind::Field,
                "prompt",
                "the prompt: a string or a list of messages",
                describe(other),
            ))
        }
    };
    let (hc, chosen) = side(ctx, obj, "chosen")?;
    let (hr, rejected) = side(ctx, obj, "rejected")?;
    if hc != hr {
        let k = hc.iter().zip(&hr).take_while(|(a, b)| a == b).count();
        return Err(ctx
            .err(
                ErrorKind::Field,
                "rejected",
                "the same conversation history as `chosen`",
                format!("a history that differs at message {k}"),
            )
            .hint("chosen and rejected must answer the same prompt"));
    }
    let prompt = match (prompt, hc.is_empty()) {
        (None, true) => {
            return Err(ctx
                .missing(obj, "prompt", "the prompt (a string or a list of messages)")
                .hint("without `prompt`, `chosen`/`rejected` must be message lists that start with the prompt turns"))
        }
        (Some(p), true) => p,
        (None, false) => Prompt::Messages(hc),
        // H4 style: `chosen` repeats the prompt conversation; it must agree with `prompt`.
        (Some(Prompt::Text(t)), false) => {
            if hc.last().map(text_of) != Some(t.as_str()) {
                return Err(ctx.err(
                    ErrorKind::Field,
                    "chosen",
                    "a conversation whose last user turn is `prompt`",
                    format!("a last user turn of {}", preview(hc.last().map(text_of).unwrap_or(""))),
                ));
            }
            Prompt::Messages(hc)
        }
        (Some(Prompt::Messages(pm)), false) => {
            if pm != hc {
                return Err(ctx.err(
                    ErrorKind::Field,
                    "chosen",
                    "a conversation that starts with the `prompt` messages",
                    "a different conversation",
                ));
            }
            Prompt::Messages(hc)
        }
        (Some(Prompt::Ids(_)), false) => unreachable!("ids prompts are parsed by parse_trl_ids"),
    };
    if let Prompt::Messages(m) = &prompt {
        check_prompt_messages(ctx, m, "prompt")?;
    }
    let scores = pair_scores(ctx, obj)?;
    finish(ctx, prompt, chosen, rejected, scores, "chosen")
}

/// TRL's pre-tokenized layout: `prompt_input_ids`, `chosen_input_ids`, `rejected_input_ids`.
fn parse_trl_ids(ctx: &Ctx<'_>, obj: &Map<String, Value>) -> Result<ListRecord, DataError> {
    let get =
        |k: &str| -> Result<Vec<u32>, DataError> { ctx.ids(ctx.req(obj, k, k, "token ids")?, k) };
    let prompt = Prompt::Ids(get("prompt_input_ids")?);
    let chosen = Content::Ids(get("chosen_input_ids")?);
    let rejected = Content::Ids(get("rejected_input_ids")?);
    let scores = pair_scores(ctx, obj)?;
    finish(ctx, prompt, chosen, rejected, scores, "chosen_input_ids")
}

/// One side of a pair: a string response, or a message list whose last message is the
/// assistant's response and whose earlier messages are the history.
fn side(
    ctx: &Ctx<'_>,
    obj: &Map<String, Value>,
    key: &str,
) -> Result<(Vec<Message>, Content), DataError> {
    let expected = "the response: a string or a list of messages ending with the assistant's";
    let v = ctx.req(obj, key, key, expected)?;
    match v {
        Value::String(s) => Ok((Vec::new(), Content::Text(s.clone()))),
        Value::Array(_) => {
            let mut msgs = ctx.messages(v, key)?;
            let last = msgs.pop().expect("messages() refuses empty lists");
            if last.role != "assistant" {
                return Err(ctx.err(
                    ErrorKind::Field,
                    &format!("{key}[{}].role", msgs.len()),
                    "the assistant's response as the last message",
                    format!("{} message", super::fields::with_article(&last.role)),
                ));
            }
            Ok((msgs, Content::Text(text_of(&last).to_string())))
        }
        other => Err(ctx.err(ErrorKind::Field, key, expected, describe(other))),
    }
}

/// `(chosen, rejected)` scores when the record has them; a score may be missing ("N/A").
type PairScores = Option<(Option<f64>, Option<f64>)>;

/// The pair's scores, if the record has them (both or neither).
fn pair_scores(ctx: &Ctx<'_>, obj: &Map<String, Value>) -> Result<PairScores, DataError> {
    let meta = obj.get("metadata").and_then(Value::as_object);
    for (prefix, map) in [("", Some(obj)), ("metadata.", meta)] {
        let Some(map) = map else { continue };
        for (c, r) in SCORE_KEYS {
            match (map.get(c), map.get(r)) {
                (None, None) => continue,
                (Some(cv), Some(rv)) => {
                    return Ok(Some((
                        ctx.rating(cv, &format!("{prefix}{c}"))?,
                        ctx.rating(rv, &format!("{prefix}{r}"))?,
                    )))
                }
                (Some(_), None) => {
                    return Err(ctx.missing(
                        map,
                        &format!("{prefix}{r}"),
                        "the rejected response's score (the chosen one has a score)",
                    ))
                }
                (None, Some(_)) => {
                    return Err(ctx.missing(
                        map,
                        &format!("{prefix}{c}"),
                        "the chosen response's score (the rejected one has a score)",
                    ))
                }
            }
        }
    }
    Ok(None)
}

/// Builds the list of two with its target dimension.
fn finish(
    ctx: &Ctx<'_>,
    prompt: Prompt,
    chosen: Content,
    rejected: Content,
    scores: PairScores,
    field: &str,
) -> Result<ListRecord, DataError> {
    let (dim, (sc, sr)) = match scores {
        Some(s) => (SCORE_DIM, s),
        None => (PREFERENCE_DIM, (Some(1.0), Some(0.0))),
    };
    let mk = |content, r| {
        let mut scores = Scores::default();
        scores.set(dim, r);
        Response {
            content,
            scores,
            model: None,
        }
    };
    let rec = ListRecord {
        pos: ctx.pos,
        prompt,
        responses: vec![mk(chosen, sc), mk(rejected, sr)],
        source: None,
    };
    check_list(ctx, &rec, field)?;
    Ok(rec)
}

/// LLaMA-Factory sharegpt pairwise record.
pub fn parse_sharegpt(ctx: &Ctx<'_>, value: &Value) -> Result<ListRecord, DataError> {
    let obj = ctx.record(value)?;
    let mut history = ctx.sharegpt(
        ctx.req(
            obj,
            "conversations",
            "conversations",
            "the conversation turns",
        )?,
        "conversations",
    )?;
    if let Some(Value::String(sys)) = obj.get("system") {
        if !sys.is_empty() && history.first().is_none_or(|m| m.role != "system") {
            history.insert(0, Message::new("system", sys));
        }
    }
    check_prompt_messages(ctx, &history, "conversations")?;
    let turn = |key: &str| -> Result<Content, DataError> {
        let m = ctx.sharegpt_turn(
            ctx.req(
                obj,
                key,
                key,
                "the response turn {\"from\": \"gpt\", \"value\": …}",
            )?,
            key,
        )?;
        if m.role != "assistant" {
            return Err(ctx.err(
                ErrorKind::Field,
                &format!("{key}.from"),
                "an assistant turn (gpt)",
                format!("{} turn", super::fields::with_article(&m.role)),
            ));
        }
        Ok(Content::Text(text_of(&m).to_string()))
    };
    let chosen = turn("chosen")?;
    let rejected = turn("rejected")?;
    finish(
        ctx,
        Prompt::Messages(history),
        chosen,
        rejected,
        None,
        "chosen",
    )
}

/// Anthropic HH-RLHF record: two transcripts that differ only in the last assistant turn.
pub fn parse_hh(ctx: &Ctx<'_>, value: &Value) -> Result<ListRecord, DataError> {
    let obj = ctx.record(value)?;
    let split = |key: &str| -> Result<(String, String), DataError> {
        let t = ctx.string(
            ctx.req(obj, key, key, "a transcript (a string)")?,
            key,
            "a \"\\n\\nHuman: …\\n\\nAssistant: …\" transcript (a string)",
        )?;
        let Some(at) = t.rfind(ASSISTANT) else {
            return Err(ctx
                .err(
                    ErrorKind::Field,
                    key,
                    "a transcript with a final \"\\n\\nAssistant:\" turn",
                    format!("the string {}", preview(&t)),
                )
                .hint("HH transcripts look like \"\\n\\nHuman: …\\n\\nAssistant: …\""));
        };
        let response = &t[at + ASSISTANT.len()..];
        let response = response.strip_prefix(' ').unwrap_or(response);
        Ok((t[..at].to_string(), response.to_string()))
    };
    let (hc, chosen) = split("chosen")?;
    let (hr, rejected) = split("rejected")?;
    if hc != hr {
        return Err(ctx
            .err(
                ErrorKind::Field,
                "rejected",
                "the same history as `chosen` before the last \"\\n\\nAssistant:\"",
                "a different history",
            )
            .hint("chosen and rejected must answer the same conversation"));
    }
    let messages = transcript_messages(&hc).map_err(|found| {
        ctx.err(
            ErrorKind::Field,
            "chosen",
            "a transcript that starts with \"\\n\\nHuman:\"",
            found,
        )
    })?;
    check_prompt_messages(ctx, &messages, "chosen")?;
    check_system_first(ctx, &messages, "chosen")?;
    finish(
        ctx,
        Prompt::Messages(messages),
        Content::Text(chosen),
        Content::Text(rejected),
        None,
        "chosen",
    )
}

const HUMAN: &str = "\n\nHuman:";
const ASSISTANT: &str = "\n\nAssistant:";

/// Splits `"\n\nHuman: a\n\nAssistant: b\n\nHuman: c"` into user/assistant messages (one
/// space after each marker is dropped, as in the HH-derived SFT sets).
pub fn transcript_messages(text: &str) -> Result<Vec<Message>, String> {
    let body = if text.starts_with(HUMAN) {
        text.to_string()
    } else if let Some(rest) = text.strip_prefix("Human:") {
        format!("{HUMAN}{rest}")
    } else {
        return Err(format!("the string {}", preview(text)));
    };
    let mut marks: Vec<(usize, &str, usize)> = Vec::new(); // (start, role, marker length)
    for (role, marker) in [("user", HUMAN), ("assistant", ASSISTANT)] {
        marks.extend(
            body.match_indices(marker)
                .map(|(i, _)| (i, role, marker.len())),
        );
    }
    marks.sort_by_key(|m| m.0);
    let mut out = Vec::with_capacity(marks.len());
    for (k, &(start, role, len)) in marks.iter().enumerate() {
        let end = marks.get(k + 1).map_or(body.len(), |m| m.0);
        let content = &body[start + len..end];
        let content = content.strip_prefix(' ').unwrap_or(content);
        out.push(Message::new(role, content));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_split_into_turns() {
        let m = transcript_messages("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye").unwrap();
        let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(text_of(&m[1]), "hello");
        assert!(transcript_messages("hello").is_err());
    }
}
