//! `lambda-dpo logprobs`: per-token log-probabilities of completions — the first user-facing
//! command and our parity probe against `transformers`.
//!
//! Input lines are `{"input_ids": [...], "completion_start": k}` (tokens k..end are scored,
//! each given everything before it) or `{"prompt" | "messages": ..., "completion": "..."}`
//! (messages rendered with the chat template and `add_generation_prompt`, a plain prompt
//! tokenized as `tokenizer(prompt)` does; the completion is tokenized on its own without
//! special tokens and appended, so the boundary is exact). Output lines, in input order:
//! `{"token_logprobs": [...], "sum": s, "mean": m, "num_tokens": n}`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lambda_dpo_model::{LoraRun, Message, Model, ScoreOptions, ScoreRequest, Tokenizer};
use serde_json::Value;

use crate::input_error::InputError;
use crate::jsonl::kind;
use crate::progress::tokens_bar;
use crate::runtime::{device, parse_dtype};

#[derive(Debug, clap::Args)]
pub struct LogprobsArgs {
    /// Model folder (Hugging Face layout: config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// PEFT LoRA adapter folder applied on top of the model. Repeat it, with --lambda, to
    /// score under an adapter soup.
    #[arg(long)]
    adapter: Vec<PathBuf>,
    /// Preference weights: the λ an SVD-LoRA adapter runs at, or one soup weight per
    /// --adapter (as `generate --lambda`). A prompt-conditioned adapter reads λ from the
    /// system message: write it into the `messages` input instead.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    lambda: Option<Vec<f64>>,
    /// JSONL input, one sequence per line.
    #[arg(long)]
    input: PathBuf,
    /// JSONL output (default: stdout). Written atomically.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Compute dtype: f32 or bf16 (LoRA and softmax statistics stay f32).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
}

/// One parsed input line: token ids and the first scored position.
struct Item {
    ids: Vec<u32>,
    start: usize,
}

pub fn run(args: &LogprobsArgs) -> Result<()> {
    let dtype = parse_dtype(&args.dtype)?;
    let device = device()?;
    let model = Model::load(&args.model, dtype, &device)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let (adapter, prompt) = crate::adapters::load_adapter(
        &args.adapter,
        args.lambda.as_deref(),
        &model.config,
        &device,
    )?;
    if let Some((dims, lambda)) = prompt {
        return Err(InputError::new(
            "--lambda",
            None,
            None,
            format!(
                "{} is prompt-conditioned: it reads λ from the system message, which `logprobs` does not write for you",
                args.adapter[0].display()
            ),
        )
        .hint(format!(
            "drop --lambda and give `messages` whose system message starts with \"{}\"",
            lambda_dpo::train::conditioning::render_lambda(&dims, &lambda)
        ))
        .into());
    }
    let items = read_items(&args.input, &args.model, model.config.vocab_size)?;
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be ≥ 1");
    }
    eprintln!(
        "scoring {} sequences with {} ({} layers, {:?}){}",
        items.len(),
        args.model.display(),
        model.config.num_layers,
        dtype,
        if adapter.is_some() { " + adapter" } else { "" }
    );

    // Longest first, so batches hold sequences of similar length (less padding); outputs are
    // put back in input order.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(items[i].ids.len()));
    let total: u64 = items.iter().map(|i| i.ids.len() as u64).sum();
    let bar = tokens_bar(total, "logprobs");
    let mut results: Vec<Option<Vec<f32>>> = vec![None; items.len()];
    let lora = adapter.as_ref().map(|a| LoraRun {
        adapter: a,
        dropout_seed: None,
    });
    for chunk in order.chunks(args.batch_size) {
        let requests: Vec<ScoreRequest<'_>> = chunk
            .iter()
            .map(|&i| ScoreRequest {
                ids: &items[i].ids,
                start: items[i].start,
            })
            .collect();
        let scored = model.score(&requests, lora, ScoreOptions::default())?;
        let flat: Vec<f32> = scored.token_logprobs.to_vec1()?;
        for (k, &i) in chunk.iter().enumerate() {
            results[i] = Some(flat[scored.offsets[k]..scored.offsets[k + 1]].to_vec());
        }
        bar.inc(requests.iter().map(|r| r.ids.len() as u64).sum());
    }
    bar.finish_and_clear();

    let mut out = Vec::new();
    for r in results {
        let lp = r.expect("every item scored");
        let sum: f64 = lp.iter().map(|&x| x as f64).sum();
        let n = lp.len();
        let line = serde_json::json!({
            "token_logprobs": lp.iter().map(|&x| x as f64).collect::<Vec<_>>(),
            "sum": sum,
            "mean": sum / n as f64,
            "num_tokens": n,
        });
        serde_json::to_writer(&mut out, &line)?;
        out.push(b'\n');
    }
    crate::jsonl::write_output(args.output.as_deref(), &out)
}

/// Reads and validates every line before any compute, so a bad line fails fast.
fn read_items(path: &Path, model_dir: &Path, vocab: usize) -> Result<Vec<Item>> {
    let mut tokenizer: Option<Tokenizer> = None;
    let mut items = Vec::new();
    for (lineno, obj) in crate::jsonl::objects(path)? {
        let err =
            |field: Option<&str>, msg: String| InputError::new(path, Some(lineno), field, msg);
        if let Some(ids) = obj.get("input_ids") {
            let ids = ids.as_array().ok_or_else(|| {
                err(
                    Some("input_ids"),
                    format!("expected an array of token ids, found {}", kind(ids)),
                )
            })?;
            let ids: Vec<u32> = ids
                .iter()
                .enumerate()
                .map(|(j, x)| {
                    x.as_u64()
                        .filter(|&t| (t as usize) < vocab)
                        .map(|t| t as u32)
                        .ok_or_else(|| {
                            err(
                                Some(&format!("input_ids[{j}]")),
                                format!("expected a token id in 0..{vocab}, found {x}"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?;
            let start = obj.get("completion_start").ok_or_else(|| {
                err(Some("completion_start"), "missing".into())
                    .hint("give the index of the first scored token, e.g. the prompt length")
            })?;
            let start = start.as_u64().ok_or_else(|| {
                err(
                    Some("completion_start"),
                    format!("expected a non-negative integer, found {start}"),
                )
            })? as usize;
            if start == 0 || start >= ids.len() {
                return Err(err(Some("completion_start"), format!("{start} is outside 1..{} (input_ids has {} tokens)", ids.len(), ids.len()))
                    .hint("the first token has no context, so scoring starts at 1 or later, and at least one token must be scored")
                    .into());
            }
            items.push(Item { ids, start });
            continue;
        }
        let completion = match obj.get("completion") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(err(Some("completion"), format!("expected a string, found {}", kind(other))).into()),
            None => {
                return Err(err(Some("completion"), "missing".into())
                    .hint("each line is {\"input_ids\", \"completion_start\"} or {\"prompt\" | \"messages\", \"completion\"}")
                    .into())
            }
        };
        if tokenizer.is_none() {
            tokenizer = Some(Tokenizer::from_dir(model_dir).with_context(|| {
                format!("{}:{lineno} needs the model's tokenizer", path.display())
            })?);
        }
        let tok = tokenizer.as_ref().expect("just loaded");
        let prompt_ids = match (obj.get("prompt"), obj.get("messages")) {
            (Some(_), Some(_)) => {
                return Err(err(
                    Some("prompt"),
                    "both `prompt` and `messages` given; expected one".into(),
                )
                .into())
            }
            (Some(Value::String(p)), None) => tok.encode(p, true)?,
            (Some(other), None) => {
                return Err(err(
                    Some("prompt"),
                    format!("expected a string, found {}", kind(other)),
                )
                .into())
            }
            (None, Some(m)) => {
                let messages: Vec<Message> = serde_json::from_value(m.clone()).map_err(|e| {
                    err(
                        Some("messages"),
                        format!("expected a list of {{\"role\", \"content\"}} objects: {e}"),
                    )
                })?;
                tok.encode_chat(&messages, true, &Default::default())
                    .map_err(|e| err(Some("messages"), e.to_string()))?
            }
            (None, None) => {
                return Err(err(Some("prompt"), "missing (and no `messages`)".into()).into())
            }
        };
        let completion_ids = tok.encode(&completion, false)?;
        if completion_ids.is_empty() {
            return Err(err(
                Some("completion"),
                "tokenizes to zero tokens; nothing to score".into(),
            )
            .into());
        }
        if prompt_ids.is_empty() {
            return Err(err(
                Some("prompt"),
                "tokenizes to zero tokens; the first completion token would have no context".into(),
            )
            .into());
        }
        let start = prompt_ids.len();
        let mut ids = prompt_ids;
        ids.extend(completion_ids);
        items.push(Item { ids, start });
    }
    Ok(items)
}
