//! `data convert`: listwise output reads back to the same records, pairwise follows the
//! paper's best-vs-worst construction under λ (or every ordered pair), SFT takes the best
//! response, and a failed conversion leaves no file behind.

mod common;

use std::path::Path;

use common::{file, shared};
use lambda_dpo::data::{
    convert_to_file, ConvertOptions, ConvertTo, ErrorKind, Format, LambdaSpec, ListRecord, Pairs,
    ReadOptions, Record, RecordReader,
};
use serde_json::Value;

fn records(path: &Path) -> (Format, Vec<Record>) {
    let r = RecordReader::open(path, &ReadOptions::default()).unwrap();
    let f = r.format();
    (f, r.map(|x| x.unwrap()).collect())
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn to(to: ConvertTo) -> ConvertOptions {
    ConvertOptions {
        to,
        ..Default::default()
    }
}

#[test]
fn ultrafeedback_to_listwise_reads_back_identically() {
    let Some(p) = shared("ultrafeedback/uf_raw_evol_instruct_row0_ratings_only.json") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("uf.jsonl");
    let rep = convert_to_file(&p, &out, &to(ConvertTo::Listwise)).unwrap();
    assert_eq!((rep.records, rep.written), (1, 1));
    let (_, orig) = records(&p);
    let (f, back) = records(&out);
    assert_eq!(f, Format::Listwise);
    let (Record::List(a), Record::List(b)) = (&orig[0], &back[0]) else {
        panic!()
    };
    assert_eq!(
        (&a.prompt, &a.responses, &a.source),
        (&b.prompt, &b.responses, &b.source)
    );
    assert_eq!(lines(&out)[0]["origin"], format!("{}:1", p.display()));
}

#[test]
fn ultrafeedback_to_pairwise_best_vs_worst_and_all_pairs() {
    let Some(p) = shared("ultrafeedback/uf_raw_evol_instruct_row0_ratings_only.json") else {
        return;
    };
    let (_, orig) = records(&p);
    let Record::List(l) = &orig[0] else { panic!() };
    let text = |i: usize| match &l.responses[i].content {
        lambda_dpo::data::Content::Text(t) => t.clone(),
        _ => panic!(),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pairs.jsonl");
    convert_to_file(&p, &out, &to(ConvertTo::Pairwise)).unwrap();
    let v = &lines(&out)[0];
    // Uniform λ: starchat (all 5s) is best. alpaca-7b (2,1,1,1) and pythia-12b (1,1,2,1) have
    // the same mean rating ψ = 1.25, but p^λ separates them: pythia's 2 is on
    // instruction_following, where vicuna's 5 makes the softmax denominator larger.
    assert_eq!(v["chosen"], text(1));
    assert_eq!(v["rejected"], text(3));
    assert_eq!(
        (v["score_chosen"].as_f64(), v["score_rejected"].as_f64()),
        (Some(5.0), Some(1.25))
    );
    assert_eq!(
        v["prompt"].as_str().unwrap(),
        match &l.prompt {
            lambda_dpo::data::Prompt::Text(t) => t.as_str(),
            _ => panic!(),
        }
    );
    // The output is a TRL file our reader takes back.
    let (f, back) = records(&out);
    assert_eq!((f, back.len()), (Format::Trl, 1));

    let all = ConvertOptions {
        pairs: Pairs::All,
        ..to(ConvertTo::Pairwise)
    };
    convert_to_file(&p, &out, &all).unwrap();
    assert_eq!(
        lines(&out).len(),
        6,
        "starchat > vicuna > alpaca > pythia: all 6 pairs ordered"
    );

    let honest = ConvertOptions {
        lambda: LambdaSpec::parse("honesty=1", Path::new("--lambda")).unwrap(),
        ..to(ConvertTo::Pairwise)
    };
    convert_to_file(&p, &out, &honest).unwrap();
    let v = &lines(&out)[0];
    assert_eq!(
        (v["score_chosen"].as_f64(), v["score_rejected"].as_f64()),
        (Some(5.0), Some(1.0))
    );

    let unknown = ConvertOptions {
        lambda: LambdaSpec::parse("honestly=1", Path::new("--lambda")).unwrap(),
        ..to(ConvertTo::Pairwise)
    };
    let e = convert_to_file(&p, &out, &unknown).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownDimension);
    assert!(e
        .expected
        .contains("helpfulness, honesty, instruction_following, truthfulness"));
}

#[test]
fn binarized_pairs_to_pairwise_count_ties() {
    let Some(p) = shared("ultrafeedback/uf_binarized_trl_eval200.jsonl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pairs.jsonl");
    let rep = convert_to_file(&p, &out, &to(ConvertTo::Pairwise)).unwrap();
    assert_eq!(rep.records, 200);
    // Score ties give no pair; the one row with chosen == rejected merges to N = 1.
    assert_eq!(rep.dropped_too_few, 1);
    assert_eq!(rep.written + rep.ties + rep.dropped_too_few, 200);
    assert_eq!(
        rep.ties, 24,
        "25 tied rows, one of which is the identical pair"
    );
    assert!(rep.to_string().contains("all tied under λ (no pair): 24"));
}

#[test]
fn sft_from_preferences_and_from_sft() {
    let rows = r#"{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}], "responses": [{"text": "worse", "scores": {"h": 1}}, {"text": "better", "scores": {"h": 3}}]}"#;
    let (_d, p) = file("l.jsonl", rows.as_bytes());
    let out = p.with_file_name("sft.jsonl");
    convert_to_file(&p, &out, &to(ConvertTo::Sft)).unwrap();
    let (f, recs) = records(&out);
    assert_eq!(f, Format::Messages);
    let Record::Sft(s) = &recs[0] else { panic!() };
    let roles: Vec<&str> = s.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant"]);
    assert_eq!(s.messages[2].content, "better");

    let alpaca = br#"[{"instruction": "i", "input": "x", "output": "o"}]"#;
    let (_d, p) = file("a.json", alpaca);
    let out = p.with_file_name("sft.jsonl");
    convert_to_file(&p, &out, &to(ConvertTo::Sft)).unwrap();
    assert_eq!(lines(&out)[0]["messages"][0]["content"], "i\nx");
    let e = convert_to_file(&p, &out, &to(ConvertTo::Listwise)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format);
}

#[test]
fn a_failed_conversion_leaves_no_file() {
    let rows = [
        r#"{"prompt": "q", "responses": [{"text": "a", "scores": {"h": 1}}, {"text": "b", "scores": {"h": 0}}]}"#,
        r#"{"prompt": "q", "responses": [{"text": "a", "scores": {"h": "x"}}, {"text": "b", "scores": {"h": 0}}]}"#,
    ];
    let (dir, p) = file("l.jsonl", rows.join("\n").as_bytes());
    let out = dir.path().join("out.jsonl");
    let e = convert_to_file(&p, &out, &to(ConvertTo::Listwise)).unwrap_err();
    assert_eq!((e.kind, e.line), (ErrorKind::Rating, Some(2)));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["l.jsonl"]);
    // With skip_invalid the good line is written and the bad one counted.
    let o = ConvertOptions {
        skip_invalid: true,
        ..to(ConvertTo::Listwise)
    };
    let rep = convert_to_file(&p, &out, &o).unwrap();
    assert_eq!((rep.written, rep.skipped.count), (1, 1));
}

#[test]
fn helpsteer_to_listwise_leaves_out_singletons() {
    let rows = [
        r#"{"prompt": "p1", "response": "a", "helpfulness": 3, "verbosity": 1}"#,
        r#"{"prompt": "p2", "response": "b", "helpfulness": 1, "verbosity": 2}"#,
        r#"{"prompt": "p2", "response": "c", "helpfulness": 4, "verbosity": 0}"#,
    ];
    let (_d, p) = file("hs.jsonl", rows.join("\n").as_bytes());
    let out = p.with_file_name("l.jsonl");
    let rep = convert_to_file(&p, &out, &to(ConvertTo::Listwise)).unwrap();
    assert_eq!((rep.written, rep.dropped_too_few), (1, 1));
    let (_, recs) = records(&out);
    let Record::List(ListRecord { responses, .. }) = &recs[0] else {
        panic!()
    };
    assert_eq!(responses.len(), 2);
}
