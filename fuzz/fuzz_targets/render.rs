//! Fuzz target: records from the detected reader rendered with a real tokenizer and chat
//! template (the Qwen2.5 fixture): prompt/response rendering, SFT masks and truncation.
#![no_main]

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use lambda_dpo::data::render::truncate_list;
use lambda_dpo::data::{fields::Ctx, ReadOptions, Record, RecordReader, Renderer, Truncation};
use lambda_dpo_model::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/lambda-dpo-model/tests/fixtures/qwen2/model");
        Tokenizer::from_dir(&dir).expect("fixture tokenizer")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = RecordReader::from_reader(
        "fuzz.jsonl",
        Cursor::new(data.to_vec()),
        &ReadOptions::default(),
    ) else {
        return;
    };
    let path = Path::new("fuzz.jsonl");
    let r = Renderer::new(
        tokenizer(),
        data.len().is_multiple_of(2),
        Default::default(),
    );
    for item in reader.take(100).flatten() {
        let ctx = Ctx::new(path, item.pos());
        match &item {
            Record::List(l) => {
                let Ok(p) = r.prompt(&ctx, &l.prompt) else {
                    continue;
                };
                let mut responses = Vec::new();
                for resp in &l.responses {
                    if let Ok(ids) = r.response(&ctx, &p, &resp.content, "responses") {
                        responses.push(ids);
                    }
                }
                let mut prompt = p.ids.clone();
                let max = 2 + data.len() % 64;
                if let Ok(true) =
                    truncate_list(&mut prompt, &mut responses, max, None, Truncation::KeepEnd)
                {
                    let longest = responses.iter().map(Vec::len).max().unwrap_or(0);
                    assert!(prompt.len() + longest <= max);
                }
            }
            Record::Sft(s) => {
                if let Ok((ids, mask)) = r.sft(&ctx, &s.messages) {
                    assert_eq!(ids.len(), mask.len());
                }
            }
            Record::Unpaired(_) => {}
        }
    }
});
