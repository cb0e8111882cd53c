//! Fuzz target: the whole pipeline behind `train`, `data inspect` and `data convert` on
//! arbitrary bytes: load_preferences and load_sft (rendering with the Llama-3.2 fixture's chat
//! template, dedup, targets, truncation, skip_invalid), inspect (with token lengths) and
//! convert to each layout. The input's length picks the options, `data[0]` the file name.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lambda_dpo::data::{
    convert, inspect, load_preferences, load_sft, ConvertOptions, ConvertTo, LambdaSpec,
    LoadOptions, MissingPolicy, Pairs, Truncation,
};
use lambda_dpo_model::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/lambda-dpo-model/tests/fixtures/llama/model");
        Tokenizer::from_dir(&dir).expect("fixture tokenizer")
    })
}

fn file(name: &str, body: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lambda-dpo-fuzz-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, body).expect("temp file");
    path
}

fuzz_target!(|data: &[u8]| {
    let (name, body) = match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => ("fuzz.jsonl", rest),
        Some((_, rest)) => ("fuzz.json", rest),
        None => ("fuzz.json", data),
    };
    let path = file(name, body);
    let k = data.len();
    let mut kwargs = serde_json::Map::new();
    kwargs.insert("date_string".into(), "26 Jul 2024".into());
    let opts = LoadOptions {
        missing: match k % 3 {
            0 => MissingPolicy::DropDimension,
            1 => MissingPolicy::Default(1.0),
            _ => MissingPolicy::Error,
        },
        drop_truthful_qa: k.is_multiple_of(5),
        use_custom_system_prompt: k.is_multiple_of(7),
        max_length: 1 + k % 97,
        max_prompt_length: k.is_multiple_of(4).then_some(k % 13),
        truncation: if k.is_multiple_of(2) {
            Truncation::KeepEnd
        } else {
            Truncation::KeepStart
        },
        skip_invalid: !k.is_multiple_of(11),
        dedup: !k.is_multiple_of(17),
        chat_template: !k.is_multiple_of(19),
        template_kwargs: kwargs,
        ..LoadOptions::default()
    };
    let tok = tokenizer();
    if let Ok(d) = load_preferences(&path, tok, &opts) {
        for l in &d.lists {
            let longest = l.responses.iter().map(Vec::len).max().unwrap_or(0);
            assert!(l.prompt_ids.len() + longest <= opts.max_length);
        }
        let _ = d.report.to_string();
    }
    if let Ok(d) = load_sft(&path, tok, &opts) {
        let _ = d.report.to_string();
    }
    if let Ok(i) = inspect(&path, Some(tok), &opts) {
        let _ = i.human();
    }
    let _ = inspect(&path, None, &opts);
    for (to, pairs) in [
        (ConvertTo::Listwise, Pairs::BestWorst),
        (ConvertTo::Pairwise, Pairs::BestWorst),
        (ConvertTo::Pairwise, Pairs::All),
        (ConvertTo::Sft, Pairs::BestWorst),
    ] {
        let copts = ConvertOptions {
            to,
            pairs,
            lambda: if k.is_multiple_of(2) {
                LambdaSpec::Uniform
            } else {
                LambdaSpec::Positional(vec![1.0, 0.0])
            },
            temperature: [1.0, 0.0, 1e-3][k % 3],
            missing: opts.missing,
            skip_invalid: opts.skip_invalid,
            ..ConvertOptions::default()
        };
        let _ = convert(&path, &mut std::io::sink(), Path::new("out.jsonl"), &copts);
    }
});
