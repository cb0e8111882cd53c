//! Parity with lm-eval-harness 0.4.13 on the tiny fixture models and the real benchmark items
//! in `../shared/data/benchmarks` (reference numbers in `tests/fixtures/eval/`, see its
//! README): (1) request strings and token ids, (2) per-request log-likelihoods and
//! `is_greedy` through the scoring path `lambda-dpo eval` uses (prefix sharing where the
//! contexts allow it), (3) per-item metrics, task metrics with standard errors and MMLU
//! groups, computed both from the fixture's log-likelihoods and from ours; and the shared-
//! prefix and batched forwards against one padded forward per item.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use lambda_dpo::eval::gsm8k;
use lambda_dpo::eval::tasks::{self, TruthfulQa};
use lambda_dpo::eval::{
    aggregate_task, encode_pair, group_alias, group_entry, mean, mean_stderr, mmlu_category,
    mmlu_groups, score_encoded, score_item, shared_context, task_alias, task_entry, task_metrics,
    Batching, EncodedRequest, LeafScore, McItem, McMetric, MetricEntry, RequestScore,
};
use lambda_dpo_model::{Model, Tokenizer};
use serde_json::Value;

const MODELS: [&str; 2] = ["llama", "qwen2"];
const RUNS: [&str; 9] = [
    "arc_easy_0shot",
    "arc_challenge_0shot",
    "hellaswag_0shot",
    "hellaswag_hflayout_0shot",
    "mmlu_0shot",
    "mmlu_5shot",
    "truthfulqa_mc1_0shot",
    "truthfulqa_mc2_0shot",
    "wsc273_0shot",
];
const LL_TOL: f64 = 1e-4;
const METRIC_TOL: f64 = 1e-6;
/// mc2 from *our* log-likelihoods: `∂mc2/∂ll_i = p_i (label_i − mc2)` sums to at most 1 in
/// absolute value, so an ll tolerance of `LL_TOL` allows `LL_TOL` on mc2 (first order). From
/// the fixture's own log-likelihoods mc2 is held to `METRIC_TOL`.
const MC2_OUR_LL_TOL: f64 = LL_TOL;

fn fixture(model: &str, run: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eval")
        .join(model)
        .join(format!("{run}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("fixture JSON")
}

/// `../shared/data/benchmarks`, or `None` (skip with a notice; fail under CI).
fn benchmarks() -> Option<PathBuf> {
    common::shared("benchmarks/mmlu/mmlu_dev_all57_hfschema.jsonl")?;
    Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/benchmarks"))
}

/// Our items for one lm-eval task of a fixture run.
fn our_items(data: &Path, task: &str, num_fewshot: usize, n: usize) -> Vec<McItem> {
    let f = |rel: &str| data.join(rel);
    let lim = Some(n);
    let items = match task {
        "arc_easy" => tasks::arc_mosaic(&f("arc/arc_easy_test_mosaic.jsonl"), lim),
        "arc_challenge" => tasks::arc_mosaic(&f("arc/arc_challenge_test_mosaic.jsonl"), lim),
        "hellaswag" => tasks::hellaswag_llamacpp(
            &f("hellaswag/hellaswag_val_first500_llamacpp_preprocessed.jsonl"),
            lim,
        ),
        "hellaswag_hflayout" => {
            tasks::hellaswag_hf(&f("hellaswag/hellaswag_hf_format_6_examples.jsonl"), lim)
        }
        "truthfulqa_mc1" => tasks::truthfulqa(
            &f("truthfulqa/truthfulqa_mc_v0_hfschema.jsonl"),
            TruthfulQa::Mc1,
            lim,
        ),
        "truthfulqa_mc2" => tasks::truthfulqa(
            &f("truthfulqa/truthfulqa_mc_v0_hfschema.jsonl"),
            TruthfulQa::Mc2,
            lim,
        ),
        "wsc273" => tasks::wsc273(
            &f("wsc273/wsc273_hfschema_from_WSCollection_xml.jsonl"),
            lim,
        ),
        t => {
            let subject = t
                .strip_prefix("mmlu_")
                .unwrap_or_else(|| panic!("task {t}"));
            tasks::mmlu_subject(
                &f("mmlu/mmlu_test_first10_per_subject_hfschema.jsonl"),
                &f("mmlu/mmlu_dev_all57_hfschema.jsonl"),
                subject,
                num_fewshot,
                lim,
            )
        }
    };
    let items = items.unwrap_or_else(|e| panic!("{task}: {e}"));
    assert_eq!(items.len(), n, "{task}: item count");
    items
}

/// Every (task, fixture items, our items) of a run.
fn run_tasks(data: &Path, fx: &Value) -> Vec<(String, Vec<Value>, Vec<McItem>)> {
    let mut out = Vec::new();
    for (task, t) in fx["tasks"].as_object().expect("tasks") {
        let fitems = t["items"].as_array().expect("items").clone();
        let shots = fx["n-shot"][task].as_u64().unwrap_or(0) as usize;
        let ours = our_items(data, task, shots, fitems.len());
        out.push((task.clone(), fitems, ours));
    }
    out
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Per request: the context fields (on the item or, for wsc273, on the request).
fn req_field<'a>(item: &'a Value, req: &'a Value, key: &str) -> &'a Value {
    if req.get(key).is_some() {
        &req[key]
    } else {
        &item[key]
    }
}

/// (1) strings and token ids; returns our encodings per task.
fn check_requests(
    tok: &Tokenizer,
    model: &str,
    run: &str,
    task: &str,
    fitems: &[Value],
    ours: &[McItem],
) -> Vec<Vec<EncodedRequest>> {
    let mut encoded = Vec::new();
    for (fi, item) in fitems.iter().zip(ours) {
        let at = format!("{model}/{run}/{task} doc {}", item.doc_id);
        assert_eq!(fi["doc_id"].as_u64().unwrap() as usize, item.doc_id, "{at}");
        assert_eq!(
            fi["gold"].as_u64().unwrap() as usize,
            item.gold,
            "{at}: gold"
        );
        if let Some(labels) = fi.get("mc2_labels") {
            let l: Vec<u8> = labels
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u8)
                .collect();
            assert_eq!(Some(l), item.mc2_labels, "{at}: mc2 labels");
        }
        let freqs = fi["requests"].as_array().unwrap();
        assert_eq!(freqs.len(), item.requests.len(), "{at}: request count");
        let mut enc_item = Vec::new();
        for (k, (fr, r)) in freqs.iter().zip(&item.requests).enumerate() {
            let at = format!("{at} request {k}");
            assert_eq!(
                req_field(fi, fr, "context").as_str().unwrap(),
                r.context,
                "{at}: context"
            );
            assert_eq!(
                fr["continuation"].as_str().unwrap(),
                r.continuation,
                "{at}: continuation"
            );
            let enc = encode_pair(tok, &r.context, &r.continuation).unwrap();
            let len = req_field(fi, fr, "context_enc_len").as_u64().unwrap() as usize;
            assert_eq!(enc.context_enc.len(), len, "{at}: context_enc_len");
            let tail = ids(req_field(fi, fr, "context_enc_tail"));
            assert_eq!(
                &enc.context_enc[len - tail.len()..],
                &tail[..],
                "{at}: context_enc_tail"
            );
            assert_eq!(
                enc.continuation_enc,
                ids(&fr["continuation_enc"]),
                "{at}: continuation_enc"
            );
            enc_item.push(enc);
        }
        encoded.push(enc_item);
    }
    encoded
}

/// Same keys in the same order, same strings and integers, floats within `tol`.
fn json_close(ours: &Value, want: &Value, tol: f64, at: &str) {
    match (ours, want) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<&String> = a.keys().collect();
            let kb: Vec<&String> = b.keys().collect();
            assert_eq!(ka, kb, "{at}: keys");
            for (k, v) in a {
                json_close(v, &b[k], tol, &format!("{at}.{k}"));
            }
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(close(x, y, tol), "{at}: {x} vs lm-eval {y}");
        }
        _ => assert_eq!(ours, want, "{at}"),
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol || (a.is_nan() && b.is_nan())
}

/// (3) per-item metrics, task results and groups from the given log-likelihoods.
fn check_metrics(
    fx: &Value,
    per_task: &[(String, Vec<Value>, Vec<McItem>)],
    lls: &[Vec<Vec<f64>>],
    what: &str,
    mc2_tol: f64,
) {
    let mut leaves: BTreeMap<String, LeafScore> = BTreeMap::new();
    for ((task, fitems, ours), task_lls) in per_task.iter().zip(lls) {
        let tol = if task == "truthfulqa_mc2" {
            mc2_tol
        } else {
            METRIC_TOL
        };
        // The library's per-item metrics and aggregation (lm-eval's `process_results`,
        // `mean`, `mean_stderr`), with the metric list of the task's YAML.
        let metrics = task_metrics(task);
        let (per_item, agg) = aggregate_task(ours, task_lls, metrics);
        for (fi, item) in fitems.iter().zip(ours) {
            let names: Vec<&str> = fi["metrics"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let ours_names: Vec<&str> = metrics.iter().map(|m| m.name()).collect();
            assert_eq!(
                names, ours_names,
                "{what}: {task} doc {}: metric names",
                item.doc_id
            );
        }
        for (m, xs) in metrics.iter().zip(&per_item) {
            let k = m.name();
            for ((fi, item), v) in fitems.iter().zip(ours).zip(xs) {
                let want = fi["metrics"][k].as_f64().unwrap();
                assert!(
                    close(*v, want, tol),
                    "{what}: {task} doc {} {k}: {v} vs lm-eval {want}",
                    item.doc_id
                );
            }
        }
        let res = &fx["results"][task];
        let entries: Vec<MetricEntry> = agg.iter().map(MetricEntry::from).collect();
        json_close(
            &task_entry(task, task_alias(task), ours.len(), &entries),
            res,
            tol,
            &format!("{what}: results.{task}"),
        );
        for t in &agg {
            let k = t.metric.name();
            let (value, se) = (t.value, t.stderr);
            let want = res[format!("{k},none")].as_f64().unwrap();
            let want_se = res[format!("{k}_stderr,none")].as_f64().unwrap();
            assert_eq!(
                t.size as u64,
                res["sample_len"].as_u64().unwrap(),
                "{what}: {task} size"
            );
            if t.metric != McMetric::Mc2 {
                assert_eq!(value, want, "{what}: {task} {k}");
            }
            assert!(
                close(value, want, tol),
                "{what}: {task} {k}: {value} vs {want}"
            );
            assert!(
                close(se, want_se, tol),
                "{what}: {task} {k} stderr: {se} vs {want_se}"
            );
            if k == "acc" {
                leaves.insert(
                    task.clone(),
                    LeafScore {
                        value,
                        stderr: Some(se),
                        size: t.size,
                    },
                );
            }
        }
    }
    // Groups: the library's MMLU table and aggregation; the fixture's group tree must agree.
    let subtasks = fx["group_subtasks"].as_object().unwrap();
    for (group, children) in subtasks {
        for c in children.as_array().unwrap() {
            let c = c.as_str().unwrap();
            let parent = match c.strip_prefix("mmlu_").and_then(mmlu_category) {
                Some(cat) => cat.group(),
                None => "mmlu",
            };
            assert_eq!(group, parent, "{what}: {c} belongs to {group}");
        }
    }
    let mmlu_leaves: Vec<(&str, LeafScore)> = leaves
        .iter()
        .filter_map(|(t, l)| Some((t.strip_prefix("mmlu_")?, *l)))
        .collect();
    let groups = mmlu_groups(&mmlu_leaves);
    let want_groups = fx["groups"].as_object().unwrap();
    assert_eq!(groups.len(), want_groups.len(), "{what}: groups");
    for (group, score) in groups {
        let g = &want_groups[group];
        let entry = group_entry(group, group_alias(group), "acc", &score);
        json_close(&entry, g, METRIC_TOL, &format!("{what}: groups.{group}"));
        json_close(
            &entry,
            &fx["results"][group],
            METRIC_TOL,
            &format!("{what}: results.{group}"),
        );
        let want = g["acc,none"].as_f64().unwrap();
        let want_se = g["acc_stderr,none"].as_f64().unwrap();
        assert_eq!(
            score.size as u64,
            g["sample_len"].as_u64().unwrap(),
            "{what}: {group} size"
        );
        assert!(
            close(score.value, want, METRIC_TOL),
            "{what}: {group}: {} vs {want}",
            score.value
        );
        assert!(
            close(score.stderr.unwrap(), want_se, METRIC_TOL),
            "{what}: {group} stderr: {:?} vs {want_se}",
            score.stderr
        );
    }
}

fn fixture_lls(per_task: &[(String, Vec<Value>, Vec<McItem>)]) -> Vec<Vec<Vec<f64>>> {
    per_task
        .iter()
        .map(|(_, fitems, _)| {
            fitems
                .iter()
                .map(|fi| {
                    fi["requests"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["ll"].as_f64().unwrap())
                        .collect()
                })
                .collect()
        })
        .collect()
}

#[test]
fn requests_and_fixture_metrics_match_lm_eval() {
    let Some(data) = benchmarks() else { return };
    for model in MODELS {
        let tok = Tokenizer::from_dir(&common::model_dir(model)).unwrap();
        for run in RUNS {
            let fx = fixture(model, run);
            let per_task = run_tasks(&data, &fx);
            for (task, fitems, ours) in &per_task {
                check_requests(&tok, model, run, task, fitems, ours);
            }
            check_metrics(
                &fx,
                &per_task,
                &fixture_lls(&per_task),
                &format!("{model}/{run} (fixture lls)"),
                METRIC_TOL,
            );
        }
    }
}

fn scoring_parity(model: &str) {
    let Some(data) = benchmarks() else { return };
    let dir = common::model_dir(model);
    let tok = Tokenizer::from_dir(&dir).unwrap();
    let m = Model::load(&dir, DType::F32, &Device::Cpu).unwrap();
    for run in RUNS {
        let fx = fixture(model, run);
        let max_length = fx["model"]["max_length"].as_u64().unwrap() as usize;
        let per_task = run_tasks(&data, &fx);
        let mut our_lls = Vec::new();
        for (task, fitems, ours) in &per_task {
            let encoded = check_requests(&tok, model, run, task, fitems, ours);
            let mut max_delta = 0f64;
            let mut task_lls = Vec::new();
            let all =
                score_encoded(&m, &encoded, max_length, Batching::default(), &mut |_| {}).unwrap();
            for (((fi, item), _), scores) in fitems.iter().zip(ours).zip(&encoded).zip(&all) {
                let mut item_lls = Vec::new();
                for (k, (fr, s)) in fi["requests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(scores)
                    .enumerate()
                {
                    let at = format!("{model}/{run}/{task} doc {} request {k}", item.doc_id);
                    let want = fr["ll"].as_f64().unwrap();
                    let d = (f64::from(s.ll) - want).abs();
                    max_delta = max_delta.max(d);
                    assert!(d <= LL_TOL, "{at}: ll {} vs lm-eval {want}", s.ll);
                    assert_eq!(
                        s.is_greedy,
                        fr["is_greedy"].as_bool().unwrap(),
                        "{at}: is_greedy"
                    );
                    assert_eq!(
                        s.truncated_tokens as u64,
                        fr["truncated_tokens"].as_u64().unwrap(),
                        "{at}: truncated"
                    );
                    item_lls.push(f64::from(s.ll));
                }
                task_lls.push(item_lls);
            }
            eprintln!("{model}/{run}/{task}: max |Δll| = {max_delta:.2e}");
            our_lls.push(task_lls);
        }
        check_metrics(
            &fx,
            &per_task,
            &our_lls,
            &format!("{model}/{run} (our lls)"),
            MC2_OUR_LL_TOL,
        );
    }
}

/// Index of the first maximum (lm-eval's `np.argmax`).
fn first_argmax(xs: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// The shared-prefix forward (one packed row per item whose requests share the truncated
/// context) and padded batches of several items give what one padded forward per item gives:
/// per-request log-likelihoods within 1e-4, the same `is_greedy` and truncation, and the same
/// predictions (argmax of ll and of ll / characters) on every fixture item of every MC task.
fn shared_and_batched_equal_one_forward_per_item(model: &str) {
    const SAME_TOL: f64 = 1e-4;
    let Some(data) = benchmarks() else { return };
    let dir = common::model_dir(model);
    let tok = Tokenizer::from_dir(&dir).unwrap();
    let m = Model::load(&dir, DType::F32, &Device::Cpu).unwrap();
    let variants = [
        ("shared, batch 1", Batching::default()),
        (
            "shared, batch 3",
            Batching {
                share_prefix: true,
                batch_size: 3,
            },
        ),
        (
            "unshared, batch 5",
            Batching {
                share_prefix: false,
                batch_size: 5,
            },
        ),
    ];
    let mut shared_total = 0;
    for run in RUNS {
        let fx = fixture(model, run);
        let max_length = fx["model"]["max_length"].as_u64().unwrap() as usize;
        for (task, fitems, ours) in &run_tasks(&data, &fx) {
            let encoded = check_requests(&tok, model, run, task, fitems, ours);
            let old: Vec<Vec<RequestScore>> = encoded
                .iter()
                .map(|enc| score_item(&m, enc, max_length).unwrap())
                .collect();
            let shared = encoded
                .iter()
                .filter(|e| shared_context(e, max_length).unwrap().is_some())
                .count();
            shared_total += shared;
            // Tasks whose choices share one untruncated context always take the packed path;
            // WSC273 (one context per choice) never does.
            match task.as_str() {
                "wsc273" => assert_eq!(shared, 0, "{model}/{run}/{task}: shared items"),
                t if t.starts_with("arc") || t.starts_with("hellaswag") => {
                    assert_eq!(shared, ours.len(), "{model}/{run}/{task}: shared items")
                }
                _ => {}
            }
            for (name, batching) in variants {
                let mut seen = Vec::new();
                let new = score_encoded(&m, &encoded, max_length, batching, &mut |i| seen.push(i))
                    .unwrap();
                seen.sort_unstable();
                assert_eq!(
                    seen,
                    (0..ours.len()).collect::<Vec<_>>(),
                    "{name}: progress"
                );
                let mut max_delta = 0f64;
                for ((item, a), b) in ours.iter().zip(&old).zip(&new) {
                    let at = format!("{model}/{run}/{task} doc {} ({name})", item.doc_id);
                    assert_eq!(a.len(), b.len(), "{at}: requests");
                    for (k, (x, y)) in a.iter().zip(b).enumerate() {
                        let d = (f64::from(x.ll) - f64::from(y.ll)).abs();
                        max_delta = max_delta.max(d);
                        assert!(d <= SAME_TOL, "{at} request {k}: ll {} vs {}", y.ll, x.ll);
                        assert_eq!(x.is_greedy, y.is_greedy, "{at} request {k}: is_greedy");
                        assert_eq!(
                            x.truncated_tokens, y.truncated_tokens,
                            "{at} request {k}: truncated"
                        );
                    }
                    let lls = |s: &[RequestScore]| -> Vec<f64> {
                        s.iter().map(|r| f64::from(r.ll)).collect()
                    };
                    let (la, lb) = (lls(a), lls(b));
                    assert_eq!(
                        first_argmax(la.iter().copied()),
                        first_argmax(lb.iter().copied()),
                        "{at}: prediction"
                    );
                    let norm = |l: &[f64]| {
                        first_argmax(
                            l.iter()
                                .zip(&item.choices)
                                .map(|(x, c)| x / c.chars().count() as f64),
                        )
                    };
                    assert_eq!(norm(&la), norm(&lb), "{at}: acc_norm prediction");
                    for &metric in task_metrics(task) {
                        let (va, vb) = (metric.of(item, &la), metric.of(item, &lb));
                        assert!((va - vb).abs() <= SAME_TOL, "{at}: {metric:?} {vb} vs {va}");
                    }
                }
                eprintln!(
                    "{model}/{run}/{task} ({name}): {shared}/{} items shareable, max |Δll| vs one forward per item = {max_delta:.2e}",
                    ours.len()
                );
            }
        }
    }
    assert!(shared_total > 0, "{model}: no item took the shared path");
}

#[test]
fn llama_shared_prefix_and_batched_scoring_equal_one_forward_per_item() {
    shared_and_batched_equal_one_forward_per_item("llama");
}

#[test]
fn qwen2_shared_prefix_and_batched_scoring_equal_one_forward_per_item() {
    shared_and_batched_equal_one_forward_per_item("qwen2");
}

#[test]
fn llama_loglikelihoods_and_metrics_match_lm_eval() {
    scoring_parity("llama");
}

#[test]
fn qwen2_loglikelihoods_and_metrics_match_lm_eval() {
    scoring_parity("qwen2");
}

// ---- GSM8K: prompts, few-shot draws, prompt token ids, stop strings, filters, exact_match ----

#[test]
fn gsm8k_filters_and_exact_match_match_lm_eval_on_hand_written_responses() {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval/model_free_checks.json");
    let checks: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let cases = &checks["gsm8k_scoring_cases"];
    let target = cases["target"].as_str().unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 16);
    for c in cases {
        let resp = c["response"].as_str().unwrap();
        let strict = gsm8k::strict_match(resp);
        let flexible = gsm8k::flexible_extract(resp);
        assert_eq!(
            strict,
            c["filtered"]["strict-match"].as_str().unwrap(),
            "{resp:?} strict"
        );
        assert_eq!(
            flexible,
            c["filtered"]["flexible-extract"].as_str().unwrap(),
            "{resp:?} flexible"
        );
        assert_eq!(
            gsm8k::exact_match(&strict, target),
            c["metrics"]["exact_match,strict-match"].as_f64().unwrap(),
            "{resp:?} exact_match strict"
        );
        assert_eq!(
            gsm8k::exact_match(&flexible, target),
            c["metrics"]["exact_match,flexible-extract"]
                .as_f64()
                .unwrap(),
            "{resp:?} exact_match flexible"
        );
    }
}

#[test]
fn gsm8k_prompts_tokens_filters_and_metrics_match_lm_eval() {
    let Some(data) = benchmarks() else { return };
    let test = gsm8k::read_gsm8k(&data.join("gsm8k/gsm8k_test.jsonl"), None).unwrap();
    let pool = gsm8k::read_gsm8k(&data.join("gsm8k/gsm8k_train_first200.jsonl"), None).unwrap();
    for model in MODELS {
        let tok = Tokenizer::from_dir(&common::model_dir(model)).unwrap();
        let until = gsm8k::stop_strings(tok.eos_token.as_deref());
        for (run, shots) in [("gsm8k_0shot", 0), ("gsm8k_3shot", 3)] {
            let fx = fixture(model, run);
            assert_eq!(fx["n-shot"]["gsm8k"].as_u64(), Some(shots as u64));
            let items = fx["tasks"]["gsm8k"]["items"].as_array().unwrap();
            let prompts =
                gsm8k::gsm8k_prompts(&test[..items.len()], &pool, shots, gsm8k::FEWSHOT_SEED);
            let (mut strict_scores, mut flexible_scores) = (Vec::new(), Vec::new());
            for (it, (context, drawn)) in items.iter().zip(&prompts) {
                let at = format!("{model}/{run} doc {}", it["doc_id"]);
                assert_eq!(it["context"].as_str().unwrap(), context, "{at}: context");
                if shots > 0 {
                    let want: Vec<usize> = it["fewshot_indices"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap() as usize)
                        .collect();
                    assert_eq!(&want, drawn, "{at}: few-shot draw");
                }
                let enc = tok.encode(context, true).unwrap();
                assert_eq!(
                    enc.len() as u64,
                    it["context_enc_len"].as_u64().unwrap(),
                    "{at}: context_enc_len"
                );
                let keep = it["left_truncate_len"].as_u64().unwrap() as usize;
                let input = &enc[enc.len().saturating_sub(keep)..];
                assert_eq!(input, &ids(&it["input_ids"])[..], "{at}: input_ids");
                let want_until: Vec<String> = it["until"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u.as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(until, want_until, "{at}: stop strings");
                let raw = tok.decode(&ids(&it["generated_ids"]), true).unwrap();
                assert_eq!(
                    raw,
                    it["generated_text_raw"].as_str().unwrap(),
                    "{at}: decode"
                );
                let resp = gsm8k::cut_at_stops(&raw, &until);
                assert_eq!(resp, it["resp"].as_str().unwrap(), "{at}: resp");
                let target = it["target"].as_str().unwrap();
                for (name, f, scores) in [
                    (
                        "strict-match",
                        gsm8k::strict_match(&resp),
                        &mut strict_scores,
                    ),
                    (
                        "flexible-extract",
                        gsm8k::flexible_extract(&resp),
                        &mut flexible_scores,
                    ),
                ] {
                    assert_eq!(f, it["filtered"][name].as_str().unwrap(), "{at}: {name}");
                    let em = gsm8k::exact_match(&f, target);
                    assert_eq!(
                        em,
                        it["metrics"][format!("exact_match,{name}")]
                            .as_f64()
                            .unwrap(),
                        "{at}: {name}"
                    );
                    scores.push(em);
                }
            }
            let res = &fx["results"]["gsm8k"];
            let entries: Vec<MetricEntry> = [
                ("strict-match", &strict_scores),
                ("flexible-extract", &flexible_scores),
            ]
            .into_iter()
            .map(|(f, xs)| MetricEntry::over("exact_match", f, xs))
            .collect();
            json_close(
                &task_entry("gsm8k", "gsm8k", items.len(), &entries),
                res,
                METRIC_TOL,
                &format!("{model}/{run}: results.gsm8k"),
            );
            for (name, scores) in [
                ("strict-match", &strict_scores),
                ("flexible-extract", &flexible_scores),
            ] {
                assert_eq!(
                    mean(scores),
                    res[format!("exact_match,{name}")].as_f64().unwrap()
                );
                let se = res[format!("exact_match_stderr,{name}")].as_f64().unwrap();
                assert!(
                    close(mean_stderr(scores), se, METRIC_TOL),
                    "{model}/{run} {name} stderr"
                );
            }
        }
    }
}

/// Greedy generation (lm-eval's `generate_until` on the HF backend) through the library: the
/// left-truncated prompt, 32 new tokens at most, the generation config's EOS ids and the stop
/// strings; the ids, the cut response, the filters and exact_match must all agree.
fn gsm8k_generation_parity(model: &str) {
    let dir = common::model_dir(model);
    let tok = Tokenizer::from_dir(&dir).unwrap();
    let m = Model::load(&dir, DType::F32, &Device::Cpu).unwrap();
    let stop_ids = lambda_dpo_model::stop_token_ids(&dir, &m.config, &tok).unwrap();
    let until = gsm8k::stop_strings(tok.eos_token.as_deref());
    for run in ["gsm8k_0shot", "gsm8k_3shot"] {
        let fx = fixture(model, run);
        let items = fx["tasks"]["gsm8k"]["items"].as_array().unwrap();
        let contexts: Vec<String> = items
            .iter()
            .map(|it| it["context"].as_str().unwrap().to_owned())
            .collect();
        let max_gen = fx["settings"]["max_gen_toks"].as_u64().unwrap_or(32) as usize;
        let max_length = fx["model"]["max_length"].as_u64().unwrap() as usize;
        let gens =
            gsm8k::generate_until(&m, &tok, &contexts, &stop_ids, &until, max_gen, max_length)
                .unwrap();
        for (it, g) in items.iter().zip(&gens) {
            let at = format!("{model}/{run} doc {}", it["doc_id"]);
            assert_eq!(g.input_ids, ids(&it["input_ids"]), "{at}: input ids");
            assert_eq!(
                g.generated_ids,
                ids(&it["generated_ids"]),
                "{at}: generated ids"
            );
            assert_eq!(g.resp, it["resp"].as_str().unwrap(), "{at}: resp");
            assert_eq!(
                gsm8k::strict_match(&g.resp),
                it["filtered"]["strict-match"].as_str().unwrap(),
                "{at}"
            );
            assert_eq!(
                gsm8k::flexible_extract(&g.resp),
                it["filtered"]["flexible-extract"].as_str().unwrap(),
                "{at}"
            );
        }
    }
}

#[test]
fn llama_gsm8k_greedy_generations_match_lm_eval() {
    gsm8k_generation_parity("llama");
}

#[test]
fn qwen2_gsm8k_greedy_generations_match_lm_eval() {
    gsm8k_generation_parity("qwen2");
}

#[test]
fn wsc273_mosaic_layout_gives_the_hf_layout_requests_on_all_rows() {
    let Some(data) = benchmarks() else { return };
    let hf = tasks::wsc273(
        &data.join("wsc273/wsc273_hfschema_from_WSCollection_xml.jsonl"),
        None,
    )
    .unwrap();
    let mosaic =
        tasks::wsc273_mosaic(&data.join("wsc273/winograd_wsc_mosaic.jsonl"), None).unwrap();
    assert_eq!(hf.len(), 273);
    assert_eq!(mosaic.len(), 273);
    for (a, b) in hf.iter().zip(&mosaic) {
        assert_eq!(a.requests, b.requests, "doc {}", a.doc_id);
        assert_eq!(a.gold, b.gold, "doc {}", a.doc_id);
    }
}

#[test]
fn arc_hf_layout_and_layout_detection_give_the_same_items() {
    let Some(data) = benchmarks() else { return };
    let mosaic = data.join("arc/arc_easy_test_mosaic.jsonl");
    // The HF layout as the fixture's tasks/arc/utils.py builds it from the MosaicML rows.
    let mut hf = String::new();
    for line in std::fs::read_to_string(&mosaic).unwrap().lines().take(50) {
        let row: Value = serde_json::from_str(line).unwrap();
        let choices = row["choices"].as_array().unwrap();
        let labels: Vec<String> = (0..choices.len())
            .map(|i| ((b'A' + i as u8) as char).to_string())
            .collect();
        let gold = row["gold"].as_u64().unwrap() as usize;
        let hf_row = serde_json::json!({
            "id": "x",
            "question": row["query"].as_str().unwrap().strip_prefix("Question: ").unwrap(),
            "choices": {"text": choices, "label": labels},
            "answerKey": labels[gold],
        });
        hf.push_str(&hf_row.to_string());
        hf.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let hf_path = dir.path().join("arc_easy_hf.jsonl");
    std::fs::write(&hf_path, hf).unwrap();
    let a = tasks::arc_mosaic(&mosaic, Some(50)).unwrap();
    assert_eq!(tasks::arc_hf(&hf_path, None).unwrap(), a);
    assert_eq!(tasks::arc(&hf_path, None).unwrap(), a);
    assert_eq!(tasks::arc(&mosaic, Some(50)).unwrap(), a);
    let h = data.join("hellaswag/hellaswag_hf_format_6_examples.jsonl");
    assert_eq!(
        tasks::hellaswag(&h, None).unwrap(),
        tasks::hellaswag_hf(&h, None).unwrap()
    );
    let l = data.join("hellaswag/hellaswag_val_first500_llamacpp_preprocessed.jsonl");
    assert_eq!(
        tasks::hellaswag(&l, Some(5)).unwrap(),
        tasks::hellaswag_llamacpp(&l, Some(5)).unwrap()
    );
    let w = data.join("wsc273/winograd_wsc_mosaic.jsonl");
    assert_eq!(
        tasks::wsc273_any(&w, None).unwrap(),
        tasks::wsc273_mosaic(&w, None).unwrap()
    );
}

#[test]
fn reader_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("arc.jsonl");
    std::fs::write(&p, "{\"query\": \"Question: q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n{\"query\": \"Question: q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n").unwrap();
    let e = tasks::arc_mosaic(&p, None).unwrap_err().to_string();
    assert!(
        e.contains("arc.jsonl:2") && e.contains("`gold`") && e.contains("hint:"),
        "{e}"
    );
    std::fs::write(
        &p,
        "{\"query\": \"Q: q\", \"choices\": [\"a\"], \"gold\": 0}\n",
    )
    .unwrap();
    let e = tasks::arc_mosaic(&p, None).unwrap_err().to_string();
    assert!(e.contains("arc.jsonl:1") && e.contains("`query`"), "{e}");
    std::fs::write(&p, "{not json\n").unwrap();
    let e = tasks::arc_mosaic(&p, None).unwrap_err().to_string();
    assert!(
        e.contains("arc.jsonl:1") && e.contains("not valid JSON"),
        "{e}"
    );
}

#[test]
fn every_mmlu_subject_of_the_local_files_is_in_the_category_table() {
    let Some(data) = benchmarks() else { return };
    for f in [
        "mmlu/mmlu_test_first10_per_subject_hfschema.jsonl",
        "mmlu/mmlu_dev_all57_hfschema.jsonl",
    ] {
        let subjects = tasks::mmlu_subjects(&data.join(f)).unwrap();
        assert_eq!(subjects.len(), 57, "{f}");
        for s in &subjects {
            assert!(mmlu_category(s).is_some(), "{f}: {s} has no category");
        }
    }
}
