//! Each reader on small hand-written records covering the layouts and quirks the real samples
//! do not: argilla ratings, H4 conversations, TRL ids, HelpSteer grouping, UltraFeedback's
//! list-shaped annotations, "N/A", variable N, `truthful_qa` and `custom_system_prompt`, and
//! the file layouts (JSON Lines, arrays, documents, gzip) streamed across chunk boundaries.

mod common;

use common::{file, gzip};
use lambda_dpo::data::{
    Content, ErrorKind, Format, Layout, ListRecord, Prompt, ReadOptions, Record, RecordReader,
};
use lambda_dpo_model::Message;

fn read(name: &str, bytes: &[u8], opts: &ReadOptions) -> (RecordReader, Vec<Record>) {
    let (dir, path) = file(name, bytes);
    let mut reader = RecordReader::open(&path, opts).unwrap();
    let recs: Vec<Record> = (&mut reader).map(|r| r.unwrap()).collect();
    drop(dir);
    (reader, recs)
}

fn lists(recs: Vec<Record>) -> Vec<ListRecord> {
    recs.into_iter()
        .map(|r| match r {
            Record::List(l) => l,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn text(c: &Content) -> &str {
    match c {
        Content::Text(t) => t,
        Content::Ids(_) => panic!("ids"),
    }
}

const UF: &str = r#"{"source": "truthful_qa", "instruction": "Q1", "models": ["a", "b", "c"], "completions": [
 {"model": "c", "response": "", "custom_system_prompt": "Be honest.", "annotations": {"helpfulness": [{"Rating": "3", "Rationale": "…"}], "honesty": {"Rating": "N/A"}}},
 {"model": "a", "response": "A", "custom_system_prompt": "Be honest.", "annotations": {"helpfulness": {"Rating": 5}, "honesty": {"Rating": " 2 "}}},
 {"model": "b", "response": "B", "custom_system_prompt": "Be honest.", "annotations": {"helpfulness": [], "honesty": {"Rating": ""}}}]}
{"source": "sharegpt", "instruction": "Q2", "completions": [
 {"model": "a", "response": "x", "custom_system_prompt": "One.", "annotations": {"helpfulness": {"Rating": "1"}}},
 {"model": "b", "response": "y", "custom_system_prompt": "Two.", "annotations": {"helpfulness": {"Rating": "2"}}}]}
"#;

#[test]
fn ultrafeedback_quirks() {
    let (reader, recs) = read("uf.json", UF.as_bytes(), &ReadOptions::default());
    assert_eq!(reader.format(), Format::UltraFeedback);
    assert_eq!(reader.layout(), Layout::JsonDocuments);
    let ls = lists(recs);
    assert_eq!(ls.len(), 2);
    // Variable N, an empty response kept, list-shaped and object-shaped aspects, "N/A",
    // empty and padded strings.
    assert_eq!(ls[0].responses.len(), 3);
    assert_eq!(ls[1].responses.len(), 2);
    assert_eq!(text(&ls[0].responses[0].content), "");
    let dims = ls[0].dims();
    assert_eq!(dims, ["helpfulness", "honesty"]);
    assert_eq!(
        ls[0].ratings(&dims),
        vec![
            vec![Some(3.0), Some(5.0), None],
            vec![None, Some(2.0), None]
        ]
    );
    assert_eq!((ls[0].pos.line, ls[1].pos.line), (1, 5));

    // drop_truthful_qa filters (and counts) the first row.
    let opts = ReadOptions {
        drop_truthful_qa: true,
        ..Default::default()
    };
    let (reader, recs) = read("uf.json", UF.as_bytes(), &opts);
    assert_eq!(recs.len(), 1);
    assert_eq!(reader.counters().filtered_truthful_qa, 1);
    assert_eq!(reader.counters().rows, 2);

    // custom_system_prompt: used when every completion shares it, refused otherwise.
    let opts = ReadOptions {
        use_custom_system_prompt: true,
        ..Default::default()
    };
    let (dir, path) = file("uf.json", UF.as_bytes());
    let mut reader = RecordReader::open(&path, &opts).unwrap();
    let Record::List(first) = reader.next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(
        first.prompt,
        Prompt::Messages(vec![
            Message::new("system", "Be honest."),
            Message::new("user", "Q1")
        ])
    );
    let e = reader.next().unwrap().unwrap_err();
    assert_eq!(
        e.field.as_deref(),
        Some("completions[1].custom_system_prompt")
    );
    drop(dir);
}

#[test]
fn trl_h4_argilla_and_ids_layouts() {
    let rows = [
        // TRL conversational: prompt messages, chosen/rejected assistant-only lists.
        r#"{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}"#,
        // H4: prompt string, chosen/rejected repeat the user turn.
        r#"{"prompt": "q", "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}], "score_chosen": 8.5, "score_rejected": "6"}"#,
        // Implicit prompt: only chosen/rejected conversations with a system turn.
        r#"{"chosen": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}"#,
        // argilla naming of the scores.
        r#"{"prompt": "q", "chosen": "a", "rejected": "b", "chosen-rating": 4.5, "rejected-rating": null}"#,
        // Pre-tokenized TRL.
        r#"{"prompt_input_ids": [1, 2], "chosen_input_ids": [3], "rejected_input_ids": [4, 5]}"#,
    ];
    let body = rows.join("\n");
    let (reader, recs) = read("p.jsonl", body.as_bytes(), &ReadOptions::default());
    assert_eq!(reader.format(), Format::Trl);
    let ls = lists(recs);
    let user_q = Message::new("user", "q");
    assert_eq!(ls[0].prompt, Prompt::Messages(vec![user_q.clone()]));
    assert_eq!(ls[0].dims(), ["preference"]);
    assert_eq!(
        ls[0].ratings(&["preference".into()]),
        vec![vec![Some(1.0), Some(0.0)]]
    );
    assert_eq!(ls[1].prompt, Prompt::Messages(vec![user_q.clone()]));
    assert_eq!(
        ls[1].ratings(&["score".into()]),
        vec![vec![Some(8.5), Some(6.0)]]
    );
    assert_eq!(
        ls[2].prompt,
        Prompt::Messages(vec![Message::new("system", "s"), user_q])
    );
    assert_eq!(text(&ls[2].responses[1].content), "b");
    assert_eq!(
        ls[3].ratings(&["score".into()]),
        vec![vec![Some(4.5), None]]
    );
    assert_eq!(ls[4].prompt, Prompt::Ids(vec![1, 2]));
    assert_eq!(ls[4].responses[1].content, Content::Ids(vec![4, 5]));

    // The argilla layout is recognised by its rating keys.
    let (reader, _) = read("p.jsonl", rows[3].as_bytes(), &ReadOptions::default());
    assert_eq!(reader.format(), Format::Argilla);
}

#[test]
fn pairs_that_disagree_are_refused() {
    let rows = [
        r#"{"prompt": "q", "chosen": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "b"}]}"#,
        r#"{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "r"}, {"role": "assistant", "content": "b"}]}"#,
        r#"{"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}], "rejected": "b"}"#,
    ];
    let (dir, path) = file("p.jsonl", rows.join("\n").as_bytes());
    let errs: Vec<String> = RecordReader::open(&path, &ReadOptions::default())
        .unwrap()
        .map(|r| r.unwrap_err().to_string())
        .collect();
    assert!(
        errs[0].contains("expected a conversation whose last user turn is `prompt`"),
        "{}",
        errs[0]
    );
    assert!(errs[1].contains("expected the same conversation history as `chosen`, found a history that differs at message 0"), "{}", errs[1]);
    assert!(errs[2].contains("field `chosen[1].role`: expected the assistant's response as the last message, found a user message"), "{}", errs[2]);
    drop(dir);
}

#[test]
fn helpsteer_rows_group_by_consecutive_prompt() {
    let rows = [
        r#"{"prompt": "p1", "response": "a", "helpfulness": 3, "correctness": 3, "coherence": 4, "complexity": 2, "verbosity": 1}"#,
        r#"{"prompt": "p1", "response": "b", "helpfulness": 1, "correctness": 2, "coherence": 4, "complexity": 2, "verbosity": 3}"#,
        r#"{"prompt": "p2", "response": "c", "helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 1}"#,
        r#"{"prompt": "p1", "response": "d", "helpfulness": 0, "correctness": 0, "coherence": 0, "complexity": 0, "verbosity": 0}"#,
        r#"{"prompt": "p1", "response": "e", "helpfulness": 2, "correctness": 1, "coherence": 3, "complexity": 1, "verbosity": 2}"#,
    ];
    let (reader, recs) = read(
        "hs.jsonl",
        rows.join("\n").as_bytes(),
        &ReadOptions::default(),
    );
    assert_eq!(reader.format(), Format::HelpSteer);
    let ls = lists(recs);
    let ns: Vec<usize> = ls.iter().map(|l| l.responses.len()).collect();
    assert_eq!(ns, [2, 1, 2]);
    assert_eq!(
        ls[0].dims(),
        [
            "helpfulness",
            "correctness",
            "coherence",
            "complexity",
            "verbosity"
        ]
    );
    assert_eq!(ls[2].pos.line, 4);
    assert_eq!(reader.counters().helpsteer_repeats, 1);
}

#[test]
fn sharegpt_sft_and_system_field() {
    let row = r#"{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "system": "s"}"#;
    let (reader, recs) = read("s.jsonl", row.as_bytes(), &ReadOptions::default());
    assert_eq!(reader.format(), Format::ShareGpt);
    let Record::Sft(s) = &recs[0] else { panic!() };
    assert_eq!(
        s.messages,
        [
            Message::new("system", "s"),
            Message::new("user", "q"),
            Message::new("assistant", "a")
        ]
    );
}

#[test]
fn forced_format_overrides_detection() {
    let row = r#"{"prompt": "p", "response": "r", "helpfulness": 3}"#;
    let opts = ReadOptions {
        format: Some(Format::Listwise),
        ..Default::default()
    };
    let (dir, path) = file("x.jsonl", row.as_bytes());
    let e = RecordReader::open(&path, &opts)
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Field, Some("responses"))
    );
    drop(dir);
}

/// Records far larger than the 64 KiB read chunk, in a gzip-compressed top-level array, with
/// strings full of brackets, quotes and escapes: every record and its start line come out.
#[test]
fn big_array_in_gzip_streams_across_chunk_boundaries() {
    let mut s = String::from("[\n");
    let n = 40;
    for i in 0..n {
        let noise = format!("}}]{{[\\\"\\\\ {i} ").repeat(2000 + i * 37); // ~30 KiB+ each
        s.push_str(&format!(
            "  {{\"prompt\": \"p{i}\",\n   \"responses\": [{{\"text\": \"{noise}\", \"scores\": {{\"h\": {i}}}}}, {{\"text\": \"b\", \"scores\": {{\"h\": 0}}}}]}}{}\n",
            if i + 1 < n { "," } else { "" }
        ));
    }
    s.push_str("]\n");
    for (name, bytes) in [
        ("big.json", s.clone().into_bytes()),
        ("big.json.gz", gzip(s.as_bytes())),
    ] {
        let (reader, recs) = read(name, &bytes, &ReadOptions::default());
        assert_eq!(reader.layout(), Layout::JsonArray);
        let ls = lists(recs);
        assert_eq!(ls.len(), n);
        for (i, l) in ls.iter().enumerate() {
            assert_eq!(l.pos.line, 2 + 2 * i, "{name}");
            assert_eq!(l.prompt, Prompt::Text(format!("p{i}")));
            assert!(text(&l.responses[0].content).starts_with("}]{[\"\\ "));
        }
    }
}
