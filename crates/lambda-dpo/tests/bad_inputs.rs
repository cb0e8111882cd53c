//! The table of bad inputs: each case is a small file (or option), the loader it goes
//! through, and the exact message the user sees (file, line, field, expected, found, hint).
//! None may panic. Then `skip_invalid`: the same problems counted and summarised.

mod common;

use std::path::Path;

use common::{file, gzip, opts, tokenizer};
use lambda_dpo::data::{
    load_preferences, load_sft, ErrorKind, LambdaSpec, LoadOptions, MissingPolicy, ReadOptions,
    RecordReader,
};

/// A good canonical line to surround the bad ones with.
const GOOD: &str = r#"{"prompt": "Hi", "responses": [{"text": "Hello!", "scores": {"helpfulness": 5, "honesty": 4}}, {"text": "Go away.", "scores": {"helpfulness": 1, "honesty": "N/A"}}]}"#;

struct Case {
    name: &'static str,
    file: &'static str,
    bytes: Vec<u8>,
    opts: LoadOptions,
    sft: bool,
    kind: ErrorKind,
    /// The full message, `FILE` standing for the file's path.
    message: &'static str,
}

fn case(
    name: &'static str,
    file: &'static str,
    bytes: impl Into<Vec<u8>>,
    kind: ErrorKind,
    message: &'static str,
) -> Case {
    Case {
        name,
        file,
        bytes: bytes.into(),
        opts: opts(),
        sft: false,
        kind,
        message,
    }
}

fn lines(ls: &[&str]) -> Vec<u8> {
    let mut s = ls.join("\n");
    s.push('\n');
    s.into_bytes()
}

fn cases() -> Vec<Case> {
    let mut big = String::new();
    for i in 0..300 {
        big.push_str(&GOOD.replace("Hi", &format!("Hi {i}")));
        big.push('\n');
    }
    let gz = gzip(big.as_bytes());
    vec![
        case(
            "invalid JSON at line k",
            "d.jsonl",
            lines(&[GOOD, GOOD, r#"{"prompt": "p", "responses": [}"#]),
            ErrorKind::Json,
            "FILE:3: expected a JSON object, found invalid JSON: expected value (column 31)\nhint: each line must hold one complete JSON object (a pretty-printed file is read as a .json array or document)",
        ),
        case(
            "missing `responses`",
            "d.jsonl",
            lines(&[GOOD, r#"{"prompt": "p", "answers": ["a", "b"]}"#]),
            ErrorKind::Field,
            "FILE:2: field `responses`: expected an array of responses [{\"text\": …, \"scores\": {…}}, …], found no such field (the object has keys [prompt, answers])\nhint: a listwise record is {\"prompt\": \"…\", \"responses\": [{\"text\": \"…\", \"scores\": {…}}, …]}",
        ),
        case(
            "a response without text",
            "d.jsonl",
            lines(&[r#"{"prompt": "p", "responses": [{"text": "a", "scores": {"h": 1}}, {"scores": {"h": 2}}]}"#]),
            ErrorKind::Field,
            "FILE:1: field `responses[1].text`: expected the response text (a string), found no such field (the object has keys [scores])\nhint: each response is an object {\"text\": \"…\", \"scores\": {\"helpfulness\": 4}}",
        ),
        case(
            "N = 1",
            "d.jsonl",
            lines(&[GOOD, r#"{"prompt": "p", "responses": [{"text": "only one", "scores": {"helpfulness": 3}}]}"#]),
            ErrorKind::TooFewResponses,
            "FILE:2: field `responses`: expected at least 2 responses to compare, found 1 response\nhint: a preference list needs N ≥ 2 responses; use --skip-invalid to skip such records",
        ),
        case(
            "a rating \"seven\"",
            "d.jsonl",
            lines(&[r#"{"prompt": "p", "responses": [{"text": "a", "scores": {"helpfulness": "seven"}}, {"text": "b", "scores": {"helpfulness": 2}}]}"#]),
            ErrorKind::Rating,
            "FILE:1: field `responses[0].scores.helpfulness`: expected a rating: a number, or N/A, empty or null when missing, found the string \"seven\"\nhint: ratings are numbers (UltraFeedback 1-5, HelpSteer 0-4); write \"N/A\" or null for a missing one",
        ),
        Case {
            opts: LoadOptions { dimensions: Some(vec!["helpfulnes".into()]), ..opts() },
            ..case(
                "an unknown dimension",
                "d.jsonl",
                lines(&[GOOD]),
                ErrorKind::UnknownDimension,
                "FILE: field `dimensions`: expected a dimension present in the data (one of: helpfulness, honesty), found \"helpfulnes\"\nhint: dimension names are case-sensitive; `lambda-dpo data inspect FILE` lists them",
            )
        },
        case(
            "a truncated .gz",
            "d.jsonl.gz",
            gz[..gz.len() / 2].to_vec(),
            ErrorKind::Gzip,
            // The line is where the readable text ends (checked against flate2 below); the
            // decoder's own words are "incomplete deflate stream".
            "FILE:124: expected a complete gzip stream, found incomplete deflate stream\nhint: the .gz file is truncated or corrupt (the line is where the readable text ends); check it with `gzip -t FILE` and download it again",
        ),
        case(
            "an empty file",
            "d.jsonl",
            Vec::new(),
            ErrorKind::Empty,
            "FILE: expected at least one record, found an empty file\nhint: the file has no JSON records; check that the export or download finished",
        ),
        case(
            "a UTF-8 error",
            "d.jsonl",
            [GOOD.as_bytes(), b"\n{\"prompt\": \"caf\xe9\", \"responses\": []}\n"].concat(),
            ErrorKind::Utf8,
            "FILE:2: expected UTF-8 text, found the byte 0xE9 at column 16, which is not valid UTF-8\nhint: the file must be UTF-8; convert it first, e.g. `iconv -f latin1 -t utf-8 IN > OUT`",
        ),
        // Beyond the issue's list: the other ways files go wrong.
        case(
            "an unrecognised format",
            "d.jsonl",
            lines(&[r#"{"question": "q", "answer": "a"}"#]),
            ErrorKind::Format,
            "FILE:1: expected a record in a known format (listwise, UltraFeedback, TRL/argilla/sharegpt/HH pairs, HelpSteer, messages, Alpaca, sharegpt), found an object with keys [question, answer]\nhint: force a format with --format NAME (one of: listwise, ultrafeedback, trl, argilla, sharegpt-pairwise, hh, helpsteer, messages, alpaca, sharegpt, kto); if the records sit under one key, extract them first, e.g. `jq -c '.data[]' FILE`",
        ),
        case(
            "UltraFeedback rating typo deep in annotations",
            "uf.json",
            br#"[{"instruction": "i", "completions": [
  {"response": "a", "annotations": {"honesty": {"Rating": "4"}}},
  {"response": "b", "annotations": {"honesty": [{"Rating": "seven"}]}}]}]"#.to_vec(),
            ErrorKind::Rating,
            "FILE:1: field `completions[1].annotations.honesty[0].Rating`: expected a rating: a number, or N/A, empty or null when missing, found the string \"seven\"\nhint: ratings are numbers (UltraFeedback 1-5, HelpSteer 0-4); write \"N/A\" or null for a missing one",
        ),
        case(
            "UltraFeedback completion without response",
            "uf.jsonl",
            lines(&[r#"{"instruction": "i", "completions": [{"response": "a"}, {"model": "m", "response": null}]}"#]),
            ErrorKind::Field,
            "FILE:1: field `completions[1].response`: expected the response text (a string), found null",
        ),
        case(
            "a JSON array that is never closed",
            "d.json",
            format!("[\n{GOOD},\n{GOOD}\n").into_bytes(),
            ErrorKind::Structure,
            "FILE:4: expected `,` or `]`, found the end of the file: the top-level array is never closed\nhint: the file is truncated (an interrupted download or export?)",
        ),
        case(
            "text response after a pre-tokenized prompt",
            "d.jsonl",
            lines(&[r#"{"prompt_ids": [1, 2], "responses": [{"text": "a", "scores": {"h": 1}}, {"ids": [3], "scores": {"h": 0}}]}"#]),
            ErrorKind::Field,
            "FILE:1: field `responses[0].text`: expected `ids` (the prompt is `prompt_ids`), found `text`\nhint: text and token ids cannot be mixed in one record",
        ),
        case(
            "a token id that is negative",
            "d.jsonl",
            lines(&[r#"{"prompt_ids": [1, -2], "responses": [{"ids": [4], "scores": {"h": 1}}, {"ids": [3], "scores": {"h": 0}}]}"#]),
            ErrorKind::Field,
            "FILE:1: field `prompt_ids[1]`: expected a token id (an integer from 0 to 4294967295), found the number -2",
        ),
        case(
            "a prompt that ends with the assistant",
            "d.jsonl",
            lines(&[r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "responses": [{"text": "x", "scores": {"h": 1}}, {"text": "y", "scores": {"h": 0}}]}"#]),
            ErrorKind::Field,
            "FILE:1: field `messages`: expected a prompt that ends with a user turn, found a prompt that ends with an assistant turn\nhint: the responses answer the last user turn; remove trailing assistant turns from the prompt",
        ),
        case(
            "a pair with only one score",
            "p.jsonl",
            lines(&[r#"{"prompt": "p", "chosen": "a", "rejected": "b", "score_chosen": 8}"#]),
            ErrorKind::Field,
            "FILE:1: field `score_rejected`: expected the rejected response's score (the chosen one has a score), found no such field (the object has keys [prompt, chosen, rejected, score_chosen])",
        ),
        case(
            "an HH transcript without an assistant turn",
            "hh.jsonl",
            lines(&[r#"{"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: hi\n\nAssistant: no"}"#]),
            ErrorKind::Field,
            "FILE:1: field `chosen`: expected a transcript with a final \"\\n\\nAssistant:\" turn, found the string \"\\n\\nHuman: hi\"\nhint: HH transcripts look like \"\\n\\nHuman: …\\n\\nAssistant: …\"",
        ),
        Case {
            opts: LoadOptions { missing: MissingPolicy::Error, ..opts() },
            ..case(
                "a missing rating under missing = error",
                "d.jsonl",
                lines(&[GOOD]),
                ErrorKind::MissingRating,
                "FILE:1: field `honesty`: expected a rating on `honesty` for every response (missing policy: error), found no rating for response 1\nhint: choose another missing policy (drop-dimension, or a default rating), or --skip-invalid",
            )
        },
        Case {
            opts: LoadOptions { max_length: 1, ..opts() },
            ..case(
                "max_length too small",
                "d.jsonl",
                lines(&[GOOD]),
                ErrorKind::Options,
                "FILE: field `max_length`: expected at least 2 tokens, found 1",
            )
        },
        case(
            "SFT data given to preference training",
            "s.jsonl",
            lines(&[r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#]),
            ErrorKind::Format,
            "FILE: expected preference data (prompts with rated responses), found SFT conversations (format messages)\nhint: this file is SFT data; preference formats are listwise, ultrafeedback, trl, argilla, sharegpt-pairwise, hh, helpsteer",
        ),
        Case {
            sft: true,
            ..case(
                "an SFT conversation without an assistant turn",
                "s.jsonl",
                lines(&[r#"{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}"#]),
                ErrorKind::Field,
                "FILE:1: field `messages`: expected at least one assistant turn to train on, found no assistant turn\nhint: SFT trains on the assistant's turns; add the response",
            )
        },
        Case {
            sft: true,
            ..case(
                "an unknown role",
                "s.jsonl",
                lines(&[r#"{"messages": [{"role": "tool", "content": "q"}, {"role": "assistant", "content": "a"}]}"#]),
                ErrorKind::Field,
                "FILE:1: field `messages[0].role`: expected one of system, user, assistant, found \"tool\"\nhint: tool and function turns are not supported in training data",
            )
        },
        Case {
            sft: true,
            ..case(
                "Alpaca without output",
                "a.json",
                br#"[{"instruction": "i", "input": "", "output": "o"},
 {"instruction": "i", "input": ""}]"#.to_vec(),
                ErrorKind::Field,
                "FILE:2: field `output`: expected a string, found no such field (the object has keys [instruction, input])",
            )
        },
    ]
}

/// Decodes gzip `bytes` until the decoder fails: the text it gave and its error.
fn decode_until_error(bytes: &[u8]) -> (Vec<u8>, std::io::Error) {
    use std::io::Read;
    let mut dec = flate2::read::MultiGzDecoder::new(bytes);
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match dec.read(&mut chunk) {
            Ok(0) => panic!("the truncated stream decoded without an error"),
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) => return (text, e),
        }
    }
}

#[test]
fn every_bad_input_has_its_message() {
    let tok = tokenizer("qwen2");
    for c in cases() {
        let (_dir, path) = file(c.file, &c.bytes);
        let err = if c.sft {
            load_sft(&path, &tok, &c.opts).map(|_| ()).unwrap_err()
        } else {
            load_preferences(&path, &tok, &c.opts)
                .map(|_| ())
                .unwrap_err()
        };
        assert_eq!(err.kind, c.kind, "{}: {err}", c.name);
        let shown = err.to_string().replace(&path.display().to_string(), "FILE");
        assert_eq!(shown, c.message, "{}", c.name);
        if c.kind == ErrorKind::Gzip {
            // A file error, not a record error: reading stops there even with skip_invalid.
            assert!(!err.is_record_error());
            // Line 124 is where the decodable text of the half file ends: decoding the same
            // bytes with flate2 directly yields 123 complete lines and then the error.
            let (text, e) = decode_until_error(&c.bytes);
            assert_eq!(e.to_string(), "incomplete deflate stream");
            assert_eq!(
                text.iter().filter(|&&b| b == b'\n').count() + 1,
                err.line.unwrap()
            );
        }
    }
}

#[test]
fn a_negative_lambda_weight_in_config() {
    let e = LambdaSpec::from_pairs(
        vec![("helpfulness".into(), 1.0), ("honesty".into(), -0.5)],
        Path::new("run.toml"),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Lambda);
    assert_eq!(
        e.to_string(),
        "run.toml: field `lambda.honesty`: expected a weight ≥ 0 (λ lies on the simplex), found -0.5\nhint: λ weights are non-negative and are normalised to sum 1, e.g. helpfulness=0.7,honesty=0.3"
    );
}

#[test]
fn skip_invalid_counts_and_summarises() {
    let bad = lines(&[
        GOOD,
        r#"{"prompt": "p", "responses": [}"#,
        GOOD,
        r#"{"prompt": "p", "responses": [{"text": "x", "scores": {"helpfulness": "seven"}}, {"text": "y", "scores": {"helpfulness": 1}}]}"#,
        r#"{"prompt": "p", "responses": [{"text": "x", "scores": {"helpfulness": 1}}]}"#,
        r#"{"prompt": "p", "responses": [{"text": "same", "scores": {"helpfulness": 1}}, {"text": "same", "scores": {"helpfulness": 3}}]}"#,
        GOOD,
    ]);
    let (_dir, path) = file("d.jsonl", &bad);
    let tok = tokenizer("llama");
    assert_eq!(
        load_preferences(&path, &tok, &opts()).unwrap_err().line,
        Some(2)
    );
    let data = load_preferences(
        &path,
        &tok,
        &LoadOptions {
            skip_invalid: true,
            ..opts()
        },
    )
    .unwrap();
    let r = &data.report;
    assert_eq!((r.records, r.kept, r.skipped.count), (7, 3, 3));
    let kinds: Vec<(&str, usize)> = r
        .skipped
        .by_kind
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert_eq!(
        kinds,
        [("json", 1), ("rating", 1), ("too-few-responses", 1)]
    );
    assert!(r.skipped.first[0].contains("d.jsonl:2"));
    // Line 6 holds two identical responses: merged, the list has N = 1 and is reported.
    assert_eq!((r.duplicates_removed, r.dropped_too_few), (1, 1));
    assert!(r.dropped_examples[0].ends_with("d.jsonl:6"));
    let text = r.to_string();
    assert!(
        text.contains("skipped (invalid): 3 (json 1, rating 1, too-few-responses 1)"),
        "{text}"
    );
    assert!(text.contains("lists dropped with N < 2: 1"), "{text}");
}

#[test]
fn a_messages_prompt_needs_a_chat_template() {
    // The Qwen fixture's tokenizer without its chat template.
    let dir = tempfile::tempdir().unwrap();
    let src = common::model_dir("qwen2");
    std::fs::copy(
        src.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"eos_token": "<|endoftext|>"}"#,
    )
    .unwrap();
    let tok = lambda_dpo_model::Tokenizer::from_dir(dir.path()).unwrap();
    let (_d, path) = file(
        "m.jsonl",
        &lines(&[
            r#"{"messages": [{"role": "user", "content": "q"}], "responses": [{"text": "x", "scores": {"h": 1}}, {"text": "y", "scores": {"h": 0}}]}"#,
        ]),
    );
    let e = load_preferences(&path, &tok, &opts()).unwrap_err();
    assert_eq!((e.kind, e.line), (ErrorKind::Template, Some(1)));
    assert!(
        e.to_string()
            .contains("expected a model with a chat template"),
        "{e}"
    );
    // Plain text prompts work without a template: tokenizer(prompt) + response + EOS.
    let (_d, path) = file("t.jsonl", &lines(&[GOOD]));
    let data = load_preferences(&path, &tok, &opts()).unwrap();
    let eos = tok.token_to_id("<|endoftext|>").unwrap();
    assert_eq!(data.lists[0].prompt_ids, tok.encode("Hi", true).unwrap());
    assert_eq!(data.lists[0].responses[0].last(), Some(&eos));
}

/// Every prefix of a file mixing good and bad records: the reader and the loader return
/// errors or data, never panic.
#[test]
fn no_prefix_of_a_file_panics() {
    let samples: [&[u8]; 4] = [
        br#"[{"instruction": "i", "completions": [{"response": "a", "annotations": {"h": [{"Rating": "N/A"}]}}, {"response": "b", "annotations": {"h": {"Rating": 3}}}]}]"#,
        br#"{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}], "chosen-rating": 4, "rejected-rating": "2"}"#,
        b"{\"conversations\": [{\"from\": \"system\", \"value\": \"s\"}, {\"from\": \"human\", \"value\": \"q\"}], \"chosen\": {\"from\": \"gpt\", \"value\": \"a\"}, \"rejected\": {\"from\": \"gpt\", \"value\": \"b\"}}\n{\"chosen\": \"\\n\\nHuman: q\\n\\nAssistant: a\", \"rejected\": \"\\n\\nHuman: q\\n\\nAssistant: b\"}",
        b"{\"prompt\": \"p\", \"response\": \"r1\", \"helpfulness\": 3}\n{\"prompt\": \"p\", \"response\": \"r2\", \"helpfulness\": \"4\"}\n",
    ];
    let tok = tokenizer("qwen2");
    for s in samples {
        for cut in 0..=s.len() {
            let (_dir, path) = file("x.json", &s[..cut]);
            if let Ok(reader) = RecordReader::open(&path, &ReadOptions::default()) {
                for _ in reader {}
            }
            let _ = load_preferences(
                &path,
                &tok,
                &LoadOptions {
                    skip_invalid: true,
                    ..opts()
                },
            );
        }
    }
}
