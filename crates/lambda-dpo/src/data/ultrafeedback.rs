//! Raw UltraFeedback (openbmb/UltraFeedback) rows as one list each.
//!
//! ```text
//! {"source": "evol_instruct", "instruction": "…", "models": [...],
//!  "completions": [{"model": "…", "response": "…", "custom_system_prompt": "…",
//!                   "annotations": {"helpfulness": {"Rating": "4", …}, "honesty": …}}, …]}
//! ```
//!
//! Quirks handled (DESIGN.md §3 item 9): ratings are strings ("4") or numbers; "N/A", empty
//! and null are missing; each aspect is an object in the HF release and a one-element list in
//! early dumps; `completions[i].model` does not follow `models[]` (we keep the completions'
//! order and record each model); N is not always 4; responses can be empty (kept, counted by
//! the loaders); `source == "truthful_qa"` can be dropped (it contaminates TruthfulQA evals).
//! `custom_system_prompt` was drawn per completion, so it can become the list's system
//! message only when every completion has the same one.

use serde_json::Value;

use super::error::{DataError, ErrorKind};
use super::fields::Ctx;
use super::listwise::check_list;
use super::record::{Content, ListRecord, Prompt, Response, Scores};
use lambda_dpo_model::Message;

/// The source tag whose prompts overlap the TruthfulQA benchmark.
pub const TRUTHFUL_QA: &str = "truthful_qa";

/// Parses one row; `Ok(None)` when the row is filtered out (`drop_truthful_qa`).
pub fn parse(
    ctx: &Ctx<'_>,
    value: &Value,
    drop_truthful_qa: bool,
    use_custom_system_prompt: bool,
) -> Result<Option<ListRecord>, DataError> {
    let obj = ctx.record(value)?;
    let source = match obj.get("source") {
        None | Some(Value::Null) => None,
        Some(v) => Some(ctx.string(v, "source", "the source dataset name (a string)")?),
    };
    if drop_truthful_qa && source.as_deref() == Some(TRUTHFUL_QA) {
        return Ok(None);
    }
    let instruction = ctx.string(
        ctx.req(
            obj,
            "instruction",
            "instruction",
            "the prompt text (a string)",
        )?,
        "instruction",
        "the prompt text (a string)",
    )?;
    let completions = ctx.array(
        ctx.req(obj, "completions", "completions", "an array of completions")?,
        "completions",
    )?;
    let mut responses = Vec::with_capacity(completions.len());
    let mut system: Option<(usize, String)> = None;
    for (i, c) in completions.iter().enumerate() {
        let f = format!("completions[{i}]");
        let co = ctx.object(c, &f)?;
        let text = ctx.string(
            ctx.req(
                co,
                "response",
                &format!("{f}.response"),
                "the response text (a string)",
            )?,
            &format!("{f}.response"),
            "the response text (a string)",
        )?;
        let model = co.get("model").and_then(Value::as_str).map(str::to_string);
        let mut scores = Scores::default();
        match co.get("annotations") {
            None | Some(Value::Null) => {}
            Some(a) => {
                let ao = ctx.object(a, &format!("{f}.annotations"))?;
                for (aspect, av) in ao {
                    let af = format!("{f}.annotations.{aspect}");
                    scores.set(aspect, aspect_rating(ctx, av, &af)?);
                }
            }
        }
        if use_custom_system_prompt {
            let sp = co
                .get("custom_system_prompt")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match &system {
                None => system = Some((i, sp)),
                Some((j, first)) if *first != sp => {
                    return Err(ctx
                        .err(
                            ErrorKind::Field,
                            &format!("{f}.custom_system_prompt"),
                            "the same custom_system_prompt in every completion (a list shares one prompt)",
                            format!("a different one than completions[{j}]"),
                        )
                        .hint("UltraFeedback drew the system prompt per completion; turn use_custom_system_prompt off"));
                }
                Some(_) => {}
            }
        }
        responses.push(Response {
            content: Content::Text(text),
            scores,
            model,
        });
    }
    let prompt = match system {
        Some((_, sp)) if !sp.trim().is_empty() => Prompt::Messages(vec![
            Message::new("system", &sp),
            Message::new("user", &instruction),
        ]),
        _ => Prompt::Text(instruction),
    };
    let rec = ListRecord {
        pos: ctx.pos,
        prompt,
        responses,
        source,
    };
    check_list(ctx, &rec, "completions")?;
    Ok(Some(rec))
}

/// One aspect's rating: `{"Rating": "4", …}`, `[{"Rating": "4", …}]`, or `[]` (missing).
fn aspect_rating(ctx: &Ctx<'_>, v: &Value, field: &str) -> Result<Option<f64>, DataError> {
    let obj = match v {
        Value::Object(o) => o,
        Value::Array(a) if a.is_empty() => return Ok(None),
        Value::Array(a) if a.len() == 1 => {
            let f = format!("{field}[0]");
            return match &a[0] {
                Value::Object(o) => rating_field(ctx, o, &f),
                other => Err(ctx.err(
                    ErrorKind::Field,
                    &f,
                    "an object with a `Rating`",
                    super::error::describe(other),
                )),
            };
        }
        Value::Null => return Ok(None),
        other => {
            return Err(ctx
                .err(
                    ErrorKind::Field,
                    field,
                    "an object {\"Rating\": …} or a one-element list of one",
                    super::error::describe(other),
                )
                .hint("UltraFeedback annotations look like {\"helpfulness\": {\"Rating\": \"4\", \"Rationale\": \"…\"}}"))
        }
    };
    rating_field(ctx, obj, field)
}

fn rating_field(
    ctx: &Ctx<'_>,
    obj: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<f64>, DataError> {
    let key = ["Rating", "rating"]
        .into_iter()
        .find(|k| obj.contains_key(*k));
    match key {
        Some(k) => ctx.rating(&obj[k], &format!("{field}.{k}")),
        None => Err(ctx.missing(obj, &format!("{field}.Rating"), "a `Rating`")),
    }
}
