//! `lambda-dpo generate`: completions from a model, an adapter, or an adapter soup.
//!
//! One prompt (`--prompt`, the completion goes to stdout) or a JSONL file (`--input`, one
//! `{"prompt": "..."}` or `{"messages": [...]}` per line, optionally `"system"`). Prompts are
//! rendered with the model's chat template and `add_generation_prompt` unless `--raw` (then the
//! text is tokenized as `tokenizer(prompt)` does). Output lines, in input order, are the input
//! object plus `completion`, `num_tokens` and `finish_reason` (`stop_token` | `stop_string` |
//! `length`), on stdout or written atomically to `--output`.
//!
//! `--lambda` turns the preference weights at inference, three ways: several `--adapter` are
//! combined into one rank-concatenated adapter computing Σ λ_k ΔW_k (`lambda_dpo_model::soup`);
//! one adapter trained with `lambda.conditioning = "prompt"` gets λ rendered into every
//! prompt's system message exactly as in training; one trained with `"svd-lora"` runs with λ
//! as its last m singular values. Which one is read from the adapter folder's
//! `lambda_conditioning.json` (written by the trainer). Generation itself (batched, KV-cached,
//! greedy or seeded sampling) is `lambda_dpo_model::generate`; prompts are batched longest
//! first so a batch holds prompts of similar length, and every prompt samples from its own
//! seed (`row_seed(--seed, line index)`), so results do not depend on `--batch-size`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use lambda_dpo::train::conditioning::conditioned_messages;
use lambda_dpo_model::{
    generate_with_progress, row_seed, stop_token_ids, GenerateOptions, Message, Model, Prompt,
    SamplingConfig, Tokenizer,
};
use serde_json::{Map, Value};

use crate::input_error::InputError;
use crate::jsonl::kind;
use crate::progress::tokens_bar;
use crate::runtime::{device, parse_dtype};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["prompt", "input"])))]
pub struct GenerateArgs {
    /// Model folder (Hugging Face layout: config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// PEFT LoRA adapter folder applied on top of the model. Repeat it, with --lambda, to
    /// combine several adapters (e.g. one per preference dimension) into an adapter soup.
    #[arg(long)]
    adapter: Vec<PathBuf>,
    /// Preference weights λ, comma-separated. With several --adapter: one soup weight per
    /// adapter (updates combined as Σ λ_k ΔW_k; need not sum to 1). With one λ-conditioned
    /// adapter (trained with lambda.conditioning = "prompt" or "svd-lora"): one weight per
    /// preference dimension, on the simplex (e.g. 0.5,0.2,0.2,0.1).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    lambda: Option<Vec<f64>>,
    /// One prompt; its completion is printed on stdout.
    #[arg(long)]
    prompt: Option<String>,
    /// JSONL input: one {"prompt": "..."} or {"messages": [...]} (optionally "system") per line.
    #[arg(long)]
    input: Option<PathBuf>,
    /// JSONL output (default: stdout). Written atomically.
    #[arg(long)]
    output: Option<PathBuf>,
    /// System message put before each prompt (a line's own "system" field or leading system
    /// message takes precedence).
    #[arg(long)]
    system: Option<String>,
    /// Most tokens generated per prompt.
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 = greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Sample only among the K most likely tokens (applied after the temperature).
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling: the most likely tokens whose probabilities sum to P (after top-k).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Sampling seed; each prompt gets its own stream derived from it and its line index.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when this text appears (the completion is cut before it). Repeatable. A special
    /// token (e.g. `<|im_end|>`) also stops as a token.
    #[arg(long)]
    stop: Vec<String>,
    /// Prompts per batch (all decoded together, one forward per generated token).
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Compute dtype: f32 or bf16 (LoRA and softmax statistics stay f32).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Tokenize prompts as plain text (`tokenizer(prompt)`), without the chat template.
    #[arg(long)]
    raw: bool,
}

/// One prompt ready to run: its ids and the JSON object its output line extends.
struct Item {
    ids: Vec<u32>,
    echo: Map<String, Value>,
}

pub fn run(args: &GenerateArgs) -> Result<()> {
    // Resolve every flag before loading anything, so that a usage error is immediate.
    let dtype = parse_dtype(&args.dtype)?;
    if args.batch_size == 0 {
        return Err(InputError::new("--batch-size", None, None, "must be ≥ 1").into());
    }
    crate::adapters::check_adapter_flags(&args.adapter, args.lambda.as_deref())?;
    if args.raw && args.system.is_some() {
        return Err(InputError::new(
            "--system",
            None,
            None,
            "a system message needs the chat template",
        )
        .hint("drop --raw, or put the instructions into the prompt text")
        .into());
    }
    let flag = |name: &str, msg: String| -> anyhow::Error {
        InputError::new(name, None, None, msg).into()
    };
    if !args.temperature.is_finite() || args.temperature < 0.0 {
        return Err(flag(
            "--temperature",
            format!(
                "{} is not a finite value ≥ 0 (0 = greedy)",
                args.temperature
            ),
        ));
    }
    if args.top_k == Some(0) {
        return Err(flag("--top-k", "0 keeps no token; expected ≥ 1".into()));
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        return Err(flag("--top-p", format!("{} is outside (0, 1]", args.top_p)));
    }
    if args.stop.iter().any(String::is_empty) {
        return Err(flag(
            "--stop",
            "an empty stop string would stop before the first token".into(),
        ));
    }
    let sampling = SamplingConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
    };

    let device = device()?;
    let model = Model::load(&args.model, dtype, &device)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let tokenizer = Tokenizer::from_dir(&args.model)
        .with_context(|| format!("loading the tokenizer of {}", args.model.display()))?;
    let (adapter, prompt_lambda) = crate::adapters::load_adapter(
        &args.adapter,
        args.lambda.as_deref(),
        &model.config,
        &model.device,
    )?;
    let cond = prompt_lambda
        .as_ref()
        .map(|(d, l)| (d.as_slice(), l.as_slice()));

    let items = match (&args.prompt, &args.input) {
        (Some(p), _) => {
            let mut obj = Map::new();
            obj.insert("prompt".into(), Value::String(p.clone()));
            let ids = prompt_ids(&obj, args, &tokenizer, cond)
                .map_err(|(field, msg)| InputError::new("--prompt", None, field, msg))?;
            vec![Item { ids, echo: obj }]
        }
        (None, Some(path)) => read_items(path, args, &tokenizer, cond)?,
        (None, None) => unreachable!("clap requires --prompt or --input"),
    };

    let mut stop_ids = stop_token_ids(&args.model, &model.config, &tokenizer)?;
    for s in &args.stop {
        // A special token is invisible in the decoded text (special tokens are skipped), so it
        // can only stop as a token.
        if let Some(id) = tokenizer.token_to_id(s) {
            if tokenizer.decode(&[id], true)?.is_empty() && !stop_ids.contains(&id) {
                stop_ids.push(id);
            }
        }
    }
    let opts = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling,
        stop_token_ids: stop_ids,
        stop_strings: args.stop.clone(),
    };

    eprintln!(
        "generating for {} prompt{} with {} ({} layers, {:?}){}, {}",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        args.model.display(),
        model.config.num_layers,
        dtype,
        match (args.adapter.len(), &args.lambda) {
            (0, _) => String::new(),
            (1, None) => " + adapter".into(),
            (1, Some(l)) => format!(" + λ-conditioned adapter at λ = {l:?}"),
            (n, _) => format!(" + soup of {n} adapters"),
        },
        if opts.sampling.is_greedy() {
            "greedy".to_string()
        } else {
            format!("sampling T = {}", opts.sampling.temperature)
        }
    );

    // Longest first: a batch then holds prompts of similar length (less left padding).
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(items[i].ids.len()));
    let bar = tokens_bar((items.len() * args.max_new_tokens) as u64, "generate");
    let started = Instant::now();
    let mut generated = 0usize;
    let mut results = vec![None; items.len()];
    for chunk in order.chunks(args.batch_size) {
        let prompts: Vec<Prompt<'_>> = chunk
            .iter()
            .map(|&i| Prompt {
                ids: &items[i].ids,
                seed: row_seed(args.seed, i as u64),
            })
            .collect();
        let out = generate_with_progress(
            &model,
            &tokenizer,
            adapter.as_ref(),
            &prompts,
            &opts,
            &mut |n| bar.inc(n as u64),
        )?;
        for (g, &i) in out.into_iter().zip(chunk) {
            generated += g.ids.len();
            results[i] = Some(g);
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "generated {generated} tokens in {secs:.1} s ({:.1} tokens/s)",
        generated as f64 / secs.max(1e-9)
    );

    if args.prompt.is_some() && args.output.is_none() {
        let g = results[0].as_ref().expect("generated");
        println!("{}", g.text);
        return Ok(());
    }
    let mut out = Vec::new();
    for (item, g) in items.into_iter().zip(results) {
        let g = g.expect("every prompt generated");
        let mut line = item.echo;
        line.insert("completion".into(), Value::String(g.text));
        line.insert("num_tokens".into(), g.ids.len().into());
        line.insert("finish_reason".into(), g.finish_reason.as_str().into());
        serde_json::to_writer(&mut out, &Value::Object(line))?;
        out.push(b'\n');
    }
    crate::jsonl::write_output(args.output.as_deref(), &out)
}

/// Reads and validates every line before any compute, so a bad line fails fast.
fn read_items(
    path: &Path,
    args: &GenerateArgs,
    tok: &Tokenizer,
    cond: Option<(&[String], &[f64])>,
) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for (lineno, obj) in crate::jsonl::objects(path)? {
        let err =
            |field: Option<&str>, msg: String| InputError::new(path, Some(lineno), field, msg);
        let ids = prompt_ids(&obj, args, tok, cond).map_err(|(field, msg)| err(field, msg))?;
        items.push(Item { ids, echo: obj });
    }
    Ok(items)
}

/// The prompt ids of one input object, or the offending field and what is wrong with it.
/// `cond`: (dimensions, λ) rendered into the system message (prompt-conditioned adapters).
fn prompt_ids(
    obj: &Map<String, Value>,
    args: &GenerateArgs,
    tok: &Tokenizer,
    cond: Option<(&[String], &[f64])>,
) -> std::result::Result<Vec<u32>, (Option<&'static str>, String)> {
    if cond.is_some() && args.raw {
        return Err((
            None,
            "a prompt-conditioned adapter reads λ from the system message, which --raw turns off"
                .into(),
        ));
    }
    let condition = |messages: Vec<Message>| match cond {
        Some((dims, lambda)) => conditioned_messages(&messages, dims, lambda),
        None => messages,
    };
    let system = match obj.get("system") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err((
                Some("system"),
                format!("expected a string, found {}", kind(other)),
            ))
        }
    };
    let tokenize = |field: &'static str, r: lambda_dpo_model::Result<Vec<u32>>| {
        r.map_err(|e| (Some(field), e.to_string()))
    };
    let ids = match (obj.get("prompt"), obj.get("messages")) {
        (Some(_), Some(_)) => {
            return Err((
                Some("prompt"),
                "both `prompt` and `messages` given; expected one".into(),
            ))
        }
        (None, None) => {
            return Err((
                Some("prompt"),
                "missing (and no `messages`); each line is {\"prompt\": \"...\"} or {\"messages\": [...]}".into(),
            ))
        }
        (Some(Value::String(p)), None) if args.raw => {
            if system.is_some() {
                return Err((
                    Some("system"),
                    "a system message needs the chat template, which --raw turns off".into(),
                ));
            }
            tokenize("prompt", tok.encode(p, true))?
        }
        (Some(Value::String(p)), None) => {
            let mut messages = Vec::new();
            if let Some(s) = system.as_ref().or(args.system.as_ref()) {
                messages.push(Message::new("system", s));
            }
            messages.push(Message::new("user", p));
            let messages = condition(messages);
            tokenize("prompt", tok.encode_chat(&messages, true, &Default::default()))?
        }
        (Some(other), None) => {
            return Err((
                Some("prompt"),
                format!("expected a string, found {}", kind(other)),
            ))
        }
        (None, Some(_)) if args.raw => {
            return Err((
                Some("messages"),
                "a conversation needs the chat template, which --raw turns off".into(),
            ))
        }
        (None, Some(m)) => {
            let mut messages: Vec<Message> = serde_json::from_value(m.clone()).map_err(|e| {
                (
                    Some("messages"),
                    format!("expected a list of {{\"role\", \"content\"}} objects: {e}"),
                )
            })?;
            if messages.is_empty() {
                return Err((Some("messages"), "empty list; expected at least one message".into()));
            }
            let has_system = messages[0].role == "system";
            if has_system && system.is_some() {
                return Err((
                    Some("system"),
                    "given, and `messages` already starts with a system message; expected one".into(),
                ));
            }
            if !has_system {
                if let Some(s) = system.as_ref().or(args.system.as_ref()) {
                    messages.insert(0, Message::new("system", s));
                }
            }
            let messages = condition(messages);
            tokenize("messages", tok.encode_chat(&messages, true, &Default::default()))?
        }
    };
    if ids.is_empty() {
        return Err((
            Some("prompt"),
            "tokenizes to zero tokens; the first generated token would have no context".into(),
        ));
    }
    Ok(ids)
}
