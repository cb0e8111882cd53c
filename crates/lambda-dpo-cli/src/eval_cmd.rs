//! `lambda-dpo eval`: the paper's benchmarks computed exactly as lm-eval-harness 0.4.13 does
//! (prompts, token split, log-likelihoods, metrics, standard errors; `lambda_dpo::eval`), on
//! local files, with a results JSON shaped like lm-eval's.
//!
//! Tasks and the files they read under `--data-dir` (the layout of `../shared/data/benchmarks`;
//! the first candidate that exists is used, its layout detected from its first row):
//!
//! ```text
//! arc_easy, arc_challenge   arc/<task>_test_mosaic.jsonl | arc/<task>_test.jsonl
//! hellaswag                 hellaswag/hellaswag_val.jsonl | hellaswag/hellaswag_val_first500_llamacpp_preprocessed.jsonl
//! mmlu                      mmlu/mmlu_test*.jsonl + mmlu/mmlu_dev*.jsonl (few-shot: first_n of dev)
//! truthfulqa_mc1, _mc2      truthfulqa/truthfulqa_mc*.jsonl (HF layout)
//! wsc273                    wsc273/wsc273*.jsonl | wsc273/winograd_wsc_mosaic.jsonl
//! gsm8k                     gsm8k/gsm8k_test.jsonl + gsm8k/gsm8k_train*.jsonl (few-shot pool)
//! ```
//!
//! An adapter (or an SVD-LoRA adapter at `--lambda`, or a soup) is merged into the weights
//! first, so scoring runs on the plain model as lm-eval runs a merged checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use lambda_dpo::eval::{
    aggregate_task, encode_items, group_alias, group_entry, gsm8k, mmlu_groups, request_tokens,
    score_encoded, task_alias, task_entry, task_metrics, tasks, Batching, LeafScore, McItem,
    MetricEntry,
};
use lambda_dpo_model::{Model, Tokenizer};
use serde_json::{json, Map, Value};

use crate::input_error::InputError;
use crate::progress::tokens_bar;
use crate::runtime::{device, parse_dtype};

const TASKS: [&str; 8] = [
    "arc_easy",
    "arc_challenge",
    "hellaswag",
    "mmlu",
    "truthfulqa_mc1",
    "truthfulqa_mc2",
    "wsc273",
    "gsm8k",
];

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Model folder (Hugging Face layout).
    #[arg(long)]
    model: PathBuf,
    /// PEFT LoRA adapter merged into the model first. Repeat it, with --lambda, for a soup.
    #[arg(long)]
    adapter: Vec<PathBuf>,
    /// The λ an SVD-LoRA adapter is merged at, or one soup weight per --adapter.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    lambda: Option<Vec<f64>>,
    /// Comma-separated tasks: arc_easy, arc_challenge, hellaswag, mmlu, truthfulqa_mc1,
    /// truthfulqa_mc2, wsc273, gsm8k.
    #[arg(long, value_delimiter = ',', required = true)]
    tasks: Vec<String>,
    /// Folder with the benchmark files (see `lambda-dpo eval --help` and the README).
    #[arg(long)]
    data_dir: PathBuf,
    /// Few-shot examples (default as lm-eval: 0, and 5 for gsm8k). Only mmlu (first_n of dev)
    /// and gsm8k (seeded draws from the train pool) have a few-shot source here.
    #[arg(long)]
    num_fewshot: Option<usize>,
    /// Items per task (per subject for mmlu), from the start of each file.
    #[arg(long)]
    limit: Option<usize>,
    /// Longest model input; requests are cut from the left (lm-eval). Default: the model's
    /// max_position_embeddings.
    #[arg(long)]
    max_length: Option<usize>,
    /// gsm8k: most new tokens per answer (lm-eval: 256).
    #[arg(long, default_value_t = 256)]
    max_gen_toks: usize,
    /// Items per forward on the padded path. An item whose choices share their context tokens
    /// (after the left truncation to --max-length: ARC, HellaSwag, MMLU and TruthfulQA when
    /// nothing is cut) runs alone as one prefix-sharing forward: the context once, the choices
    /// packed after it. The other items (WSC273, whose choices differ in the context; requests
    /// cut to --max-length, where the cut depends on the continuation's length) run B at a
    /// time, every request one right-padded row. Scores do not depend on B beyond f32
    /// rounding. On CPU B > 1 is not faster (same work per token, plus padding and page
    /// faults on larger tensors), hence the default 1; a GPU build may gain from more.
    #[arg(long, default_value_t = Batching::default().batch_size as u64, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Score every item on the padded path (one row per request, as lm-eval's HF backend), not
    /// with the shared-context forward.
    #[arg(long)]
    no_prefix_sharing: bool,
    /// Compute dtype: f32 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Results JSON (default: stdout). Written atomically.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// The first of `candidates` (relative to `dir`; a trailing `*` matches any suffix) that exists.
fn find(dir: &Path, task: &str, candidates: &[&str]) -> Result<PathBuf> {
    for c in candidates {
        let p = dir.join(c);
        if let Some(prefix) = c.strip_suffix('*') {
            let p = dir.join(prefix);
            let (parent, stem) = (
                p.parent().unwrap_or(dir).to_path_buf(),
                p.file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            if let Ok(rd) = std::fs::read_dir(&parent) {
                let mut hits: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(&stem))
                            && f.extension().is_some_and(|e| e == "jsonl")
                    })
                    .collect();
                hits.sort();
                if let Some(h) = hits.into_iter().next() {
                    return Ok(h);
                }
            }
        } else if p.is_file() {
            return Ok(p);
        }
    }
    Err(InputError::new(
        dir,
        None,
        Some(task),
        format!(
            "no file for this task; looked for {}",
            candidates.join(", ")
        ),
    )
    .hint("point --data-dir at a folder laid out like ../shared/data/benchmarks")
    .into())
}

/// The few-shot count of `task`, refusing counts a task has no source for.
fn shots(task: &str, requested: Option<usize>) -> Result<usize> {
    match (task, requested) {
        ("gsm8k", None) => Ok(5),
        (_, None) => Ok(0),
        ("mmlu" | "gsm8k", Some(k)) => Ok(k),
        (_, Some(0)) => Ok(0),
        (_, Some(k)) => Err(InputError::new(
            "--num-fewshot",
            None,
            None,
            format!("{k} shots for {task}, which has no few-shot split among the local files"),
        )
        .hint("few-shot is available for mmlu (dev) and gsm8k (train pool); run the others with 0")
        .into()),
    }
}

/// One multiple-choice task scored and aggregated into its lm-eval results entry.
fn mc_entry(
    model: &Model,
    tok: &Tokenizer,
    name: &str,
    items: &[McItem],
    max_length: usize,
    batching: Batching,
) -> Result<(Value, LeafScore)> {
    let encoded = encode_items(tok, items)?;
    // Progress in request tokens (what separate forwards would run), items in the message.
    let per_item: Vec<u64> = encoded
        .iter()
        .map(|r| request_tokens(r, max_length).map(|n| n as u64))
        .collect::<lambda_dpo::eval::error::Result<_>>()?;
    let bar = tokens_bar(per_item.iter().sum(), name);
    let n = items.len();
    let mut done = 0usize;
    bar.set_message(format!("{name} 0/{n} items"));
    let scores = score_encoded(model, &encoded, max_length, batching, &mut |i| {
        done += 1;
        bar.set_message(format!("{name} {done}/{n} items"));
        bar.inc(per_item[i]);
    })?;
    bar.finish_and_clear();
    let lls: Vec<Vec<f64>> = scores
        .iter()
        .map(|s| s.iter().map(|r| f64::from(r.ll)).collect())
        .collect();
    let (_, agg) = aggregate_task(items, &lls, task_metrics(name));
    let entries: Vec<MetricEntry> = agg.iter().map(MetricEntry::from).collect();
    // MMLU groups aggregate each leaf's first metric (acc), already computed above.
    let leaf = LeafScore {
        value: agg[0].value,
        stderr: Some(agg[0].stderr),
        size: agg[0].size,
    };
    Ok((
        task_entry(name, task_alias(name), items.len(), &entries),
        leaf,
    ))
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let started = Instant::now();
    for t in &args.tasks {
        if !TASKS.contains(&t.as_str()) {
            return Err(
                InputError::new("--tasks", None, None, format!("unknown task `{t}`"))
                    .hint(format!("known tasks: {}", TASKS.join(", ")))
                    .into(),
            );
        }
    }
    let shots_of: Vec<usize> = args
        .tasks
        .iter()
        .map(|t| shots(t, args.num_fewshot))
        .collect::<Result<_>>()?;
    let dtype = parse_dtype(&args.dtype)?;
    let device = device()?;
    let mut model = Model::load(&args.model, dtype, &device)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let tok = Tokenizer::from_dir(&args.model)
        .with_context(|| format!("loading the tokenizer of {}", args.model.display()))?;
    let (adapter, prompt) = crate::adapters::load_adapter(
        &args.adapter,
        args.lambda.as_deref(),
        &model.config,
        &device,
    )?;
    if prompt.is_some() {
        return Err(InputError::new(
            "--lambda",
            None,
            None,
            "a prompt-conditioned adapter reads λ from a system message, and lm-eval's prompts have none",
        )
        .hint("evaluate it without --lambda, or train with lambda.conditioning = \"svd-lora\" to evaluate at a λ")
        .into());
    }
    if let Some(a) = &adapter {
        model.merge_adapter(a)?;
    }
    let max_length = args
        .max_length
        .unwrap_or(model.config.max_position_embeddings);
    let batching = Batching {
        share_prefix: !args.no_prefix_sharing,
        batch_size: args.batch_size as usize,
    };
    let d = &args.data_dir;
    let mut results = Map::new();
    let mut groups = Map::new();
    let mut n_shot = Map::new();
    for (task, &k) in args.tasks.iter().zip(&shots_of) {
        let task = task.as_str();
        n_shot.insert(task.into(), json!(k));
        match task {
            "arc_easy" | "arc_challenge" => {
                let f = find(
                    d,
                    task,
                    &[
                        &format!("arc/{task}_test_mosaic.jsonl"),
                        &format!("arc/{task}_test.jsonl"),
                    ],
                )?;
                let items = tasks::arc(&f, args.limit)?;
                results.insert(
                    task.into(),
                    mc_entry(&model, &tok, task, &items, max_length, batching)?.0,
                );
            }
            "hellaswag" => {
                let f = find(
                    d,
                    task,
                    &[
                        "hellaswag/hellaswag_val.jsonl",
                        "hellaswag/hellaswag_val_first500_llamacpp_preprocessed.jsonl",
                    ],
                )?;
                let items = tasks::hellaswag(&f, args.limit)?;
                results.insert(
                    task.into(),
                    mc_entry(&model, &tok, task, &items, max_length, batching)?.0,
                );
            }
            "truthfulqa_mc1" | "truthfulqa_mc2" => {
                let f = find(d, task, &["truthfulqa/truthfulqa_mc*"])?;
                let variant = if task == "truthfulqa_mc1" {
                    tasks::TruthfulQa::Mc1
                } else {
                    tasks::TruthfulQa::Mc2
                };
                let items = tasks::truthfulqa(&f, variant, args.limit)?;
                results.insert(
                    task.into(),
                    mc_entry(&model, &tok, task, &items, max_length, batching)?.0,
                );
            }
            "wsc273" => {
                let f = find(
                    d,
                    task,
                    &["wsc273/wsc273*", "wsc273/winograd_wsc_mosaic.jsonl"],
                )?;
                let items = tasks::wsc273_any(&f, args.limit)?;
                results.insert(
                    task.into(),
                    mc_entry(&model, &tok, task, &items, max_length, batching)?.0,
                );
            }
            "mmlu" => {
                let test = find(d, task, &["mmlu/mmlu_test*"])?;
                let dev = find(d, task, &["mmlu/mmlu_dev*"])?;
                let mut leaves = Vec::new();
                for subject in tasks::mmlu_subjects(&test)? {
                    let items = tasks::mmlu_subject(&test, &dev, &subject, k, args.limit)?;
                    let name = format!("mmlu_{subject}");
                    let (entry, leaf) =
                        mc_entry(&model, &tok, &name, &items, max_length, batching)?;
                    results.insert(name.clone(), entry);
                    leaves.push((subject, leaf));
                }
                let named: Vec<(&str, LeafScore)> =
                    leaves.iter().map(|(s, l)| (s.as_str(), *l)).collect();
                for (group, score) in mmlu_groups(&named) {
                    let entry = group_entry(group, group_alias(group), "acc", &score);
                    groups.insert(group.into(), entry);
                }
            }
            "gsm8k" => {
                let test = find(d, task, &["gsm8k/gsm8k_test.jsonl"])?;
                let pool_file = find(d, task, &["gsm8k/gsm8k_train*"])?;
                let docs = gsm8k::read_gsm8k(&test, args.limit)?;
                let pool = gsm8k::read_gsm8k(&pool_file, None)?;
                let prompts = gsm8k::gsm8k_prompts(&docs, &pool, k, gsm8k::FEWSHOT_SEED);
                let contexts: Vec<String> = prompts.into_iter().map(|(c, _)| c).collect();
                let stop_ids = lambda_dpo_model::stop_token_ids(&args.model, &model.config, &tok)?;
                let until = gsm8k::stop_strings(tok.eos_token.as_deref());
                eprintln!("gsm8k: generating {} answers", contexts.len());
                let gens = gsm8k::generate_until(
                    &model,
                    &tok,
                    &contexts,
                    &stop_ids,
                    &until,
                    args.max_gen_toks,
                    max_length,
                )?;
                let mut entries = Vec::new();
                for (filter, extract) in [
                    ("strict-match", gsm8k::strict_match as fn(&str) -> String),
                    ("flexible-extract", gsm8k::flexible_extract),
                ] {
                    let xs: Vec<f64> = gens
                        .iter()
                        .zip(&docs)
                        .map(|(g, doc)| gsm8k::exact_match(&extract(&g.resp), &doc.answer))
                        .collect();
                    entries.push(MetricEntry::over("exact_match", filter, &xs));
                }
                results.insert(task.into(), task_entry(task, task, docs.len(), &entries));
            }
            _ => unreachable!("checked above"),
        }
    }
    let out = json!({
        "results": results,
        "groups": groups,
        "n-shot": n_shot,
        "config": {
            "model": args.model,
            "adapter": args.adapter,
            "lambda": args.lambda,
            "tasks": args.tasks,
            "data_dir": args.data_dir,
            "limit": args.limit,
            "max_length": max_length,
            "max_gen_toks": args.max_gen_toks,
            "batch_size": args.batch_size,
            "prefix_sharing": !args.no_prefix_sharing,
            "dtype": args.dtype,
            "reference": "lm-eval-harness 0.4.13 (HF backend, no chat template)",
        },
    });
    for (name, entry) in &results {
        let metrics: Vec<String> = entry
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.contains(',') && !k.contains("_stderr"))
            .map(|(k, v)| {
                format!(
                    "{k} {}",
                    v.as_f64().map_or("-".into(), |x| format!("{x:.4}"))
                )
            })
            .collect();
        eprintln!("{name:<40} {}", metrics.join("  "));
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    let text = serde_json::to_string_pretty(&out)? + "\n";
    crate::jsonl::write_output(args.output.as_deref(), text.as_bytes())
}
