//! The canonical listwise format (DESIGN.md §4), text or pre-tokenized:
//!
//! ```text
//! {"prompt": "…" | "messages": [{"role": "user", "content": "…"}],
//!  "responses": [{"text": "…", "scores": {"helpfulness": 4, "honesty": "N/A"}}, …]}
//! {"prompt_ids": [1, 2, 3], "responses": [{"ids": [4, 5], "scores": {"helpfulness": 4}}, …]}
//! ```
//!
//! Pre-tokenized prompts and responses are used as-is (no special tokens added), so text and
//! ids cannot be mixed in one record. Unknown keys (`source`, `id`, `model`) are ignored.
//! Also holds the checks every list shares ([`check_list`]).

use serde_json::Value;

use super::error::{DataError, ErrorKind};
use super::fields::{check_prompt_messages, Ctx};
use super::record::{Content, ListRecord, Prompt, Response, Scores};

/// Parses one canonical listwise record.
pub fn parse(ctx: &Ctx<'_>, value: &Value) -> Result<ListRecord, DataError> {
    let obj = ctx.record(value)?;
    let given: Vec<&str> = ["prompt", "messages", "prompt_ids"]
        .into_iter()
        .filter(|k| obj.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    let prompt = match given.as_slice() {
        ["prompt"] => Prompt::Text(ctx.string(&obj["prompt"], "prompt", "the prompt text (a string)")?),
        ["messages"] => {
            let m = ctx.messages(&obj["messages"], "messages")?;
            check_prompt_messages(ctx, &m, "messages")?;
            Prompt::Messages(m)
        }
        ["prompt_ids"] => Prompt::Ids(ctx.ids(&obj["prompt_ids"], "prompt_ids")?),
        [] => {
            return Err(ctx
                .missing(obj, "prompt", "one of `prompt` (text), `messages` (chat) or `prompt_ids` (tokens)")
                .hint("a listwise record is {\"prompt\": \"…\", \"responses\": [{\"text\": \"…\", \"scores\": {…}}, …]}"))
        }
        several => {
            return Err(ctx.err(
                ErrorKind::Field,
                several[1],
                "exactly one of `prompt`, `messages`, `prompt_ids`",
                format!("both `{}` and `{}`", several[0], several[1]),
            ))
        }
    };
    let responses_v = ctx
        .req(
            obj,
            "responses",
            "responses",
            "an array of responses [{\"text\": …, \"scores\": {…}}, …]",
        )
        .map_err(|e| {
            e.hint("a listwise record is {\"prompt\": \"…\", \"responses\": [{\"text\": \"…\", \"scores\": {…}}, …]}")
        })?;
    let arr = ctx.array(responses_v, "responses")?;
    let pre_tokenized = matches!(prompt, Prompt::Ids(_));
    let mut responses = Vec::with_capacity(arr.len());
    for (i, r) in arr.iter().enumerate() {
        let f = format!("responses[{i}]");
        let ro = ctx.object(r, &f).map_err(|e| {
            e.hint("each response is an object {\"text\": \"…\", \"scores\": {\"helpfulness\": 4}}")
        })?;
        let content = match (ro.get("text"), ro.get("ids")) {
            (Some(t), None) if !t.is_null() => {
                if pre_tokenized {
                    return Err(ctx
                        .err(
                            ErrorKind::Field,
                            &format!("{f}.text"),
                            "`ids` (the prompt is `prompt_ids`)",
                            "`text`",
                        )
                        .hint("text and token ids cannot be mixed in one record"));
                }
                Content::Text(ctx.string(
                    t,
                    &format!("{f}.text"),
                    "the response text (a string)",
                )?)
            }
            (None, Some(ids)) if !ids.is_null() => {
                if !pre_tokenized {
                    return Err(ctx
                        .err(
                            ErrorKind::Field,
                            &format!("{f}.ids"),
                            "`text` (the prompt is text)",
                            "`ids`",
                        )
                        .hint("text and token ids cannot be mixed in one record"));
                }
                Content::Ids(ctx.ids(ids, &format!("{f}.ids"))?)
            }
            (Some(_), Some(_)) => {
                return Err(ctx.err(ErrorKind::Field, &f, "one of `text` or `ids`", "both"))
            }
            _ => {
                let want = if pre_tokenized { "ids" } else { "text" };
                return Err(ctx
                    .missing(ro, &format!("{f}.{want}"), if pre_tokenized { "the response's token ids" } else { "the response text (a string)" })
                    .hint("each response is an object {\"text\": \"…\", \"scores\": {\"helpfulness\": 4}}"));
            }
        };
        let mut scores = Scores::default();
        match ro.get("scores") {
            None | Some(Value::Null) => {}
            Some(s) => {
                let so = ctx.object(s, &format!("{f}.scores")).map_err(|e| {
                    e.hint("scores map each dimension to a rating: {\"helpfulness\": 4, \"honesty\": \"N/A\"}")
                })?;
                for (dim, v) in so {
                    scores.set(dim, ctx.rating(v, &format!("{f}.scores.{dim}"))?);
                }
            }
        }
        let model = ro.get("model").and_then(Value::as_str).map(str::to_string);
        responses.push(Response {
            content,
            scores,
            model,
        });
    }
    let rec = ListRecord {
        pos: ctx.pos,
        prompt,
        responses,
        source: obj
            .get("source")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    check_list(ctx, &rec, "responses")?;
    if rec.responses.iter().all(|r| r.scores.is_empty()) {
        return Err(ctx
            .err(ErrorKind::Field, "responses[0].scores", "ratings (`scores`) on the responses", "no `scores` on any response")
            .hint("every response needs scores, e.g. {\"text\": \"…\", \"scores\": {\"helpfulness\": 4}}"));
    }
    Ok(rec)
}

/// Checks shared by every list: at least two responses.
pub fn check_list(ctx: &Ctx<'_>, rec: &ListRecord, field: &str) -> Result<(), DataError> {
    let n = rec.responses.len();
    if n < 2 {
        return Err(ctx
            .err(
                ErrorKind::TooFewResponses,
                field,
                "at least 2 responses to compare",
                format!("{n} response{}", if n == 1 { "" } else { "s" }),
            )
            .hint(
                "a preference list needs N ≥ 2 responses; use --skip-invalid to skip such records",
            ));
    }
    Ok(())
}
