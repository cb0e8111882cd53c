//! `load_preferences` / `load_sft` behaviour: de-duplication with merged ratings, dimension
//! selection, the missing-rating policies, truncation (`infer_seqlen` split, keep-start /
//! keep-end, `max_prompt_length`), pre-tokenized passthrough, and templates that break the
//! prefix property.

mod common;

use common::{file, opts, tokenizer};
use lambda_dpo::data::{
    infer_seqlen, load_preferences, load_sft, ErrorKind, LoadOptions, MissingPolicy, Truncation,
};

fn jsonl(rows: &[&str]) -> Vec<u8> {
    rows.join("\n").into_bytes()
}

#[test]
fn identical_responses_merge_with_mean_ratings() {
    let rows = [r#"{"prompt": "q", "responses": [
        {"text": "A", "scores": {"h": 4, "k": null}}, {"text": "B", "scores": {"h": 1, "k": 2}},
        {"text": "A", "scores": {"h": 2, "k": 5}}]}"#
        .replace('\n', "")];
    let (_d, p) = file("d.jsonl", &jsonl(&[&rows[0]]));
    let tok = tokenizer("qwen2");
    let data = load_preferences(&p, &tok, &opts()).unwrap();
    let l = &data.lists[0];
    assert_eq!(l.responses.len(), 2);
    // h: mean(4, 2) = 3; k: only the second copy is rated.
    assert_eq!(
        l.ratings,
        vec![vec![Some(3.0), Some(1.0)], vec![Some(5.0), Some(2.0)]]
    );
    assert_eq!(
        (
            data.report.duplicates_removed,
            data.report.lists_with_duplicates
        ),
        (1, 1)
    );
    let data = load_preferences(
        &p,
        &tok,
        &LoadOptions {
            dedup: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(data.lists[0].responses.len(), 3);
}

#[test]
fn responses_equal_after_rendering_merge_too() {
    // Llama-3's template trims the content: "A" and "  A \n" render to the same tokens.
    let row = r#"{"prompt": "q", "responses": [{"text": "A", "scores": {"h": 5}}, {"text": "  A \n", "scores": {"h": 3}}, {"text": "B", "scores": {"h": 1}}]}"#;
    let (_d, p) = file("d.jsonl", row.as_bytes());
    let llama = load_preferences(&p, &tokenizer("llama"), &opts()).unwrap();
    assert_eq!(llama.lists[0].ratings, vec![vec![Some(4.0), Some(1.0)]]);
    let qwen = load_preferences(&p, &tokenizer("qwen2"), &opts()).unwrap();
    assert_eq!(qwen.lists[0].responses.len(), 3);
}

#[test]
fn dimensions_are_discovered_selected_and_absent_ones_are_missing() {
    let rows = [
        r#"{"prompt": "a", "responses": [{"text": "x", "scores": {"h": 1, "o": 2}}, {"text": "y", "scores": {"h": 2, "o": 1}}]}"#,
        r#"{"prompt": "b", "responses": [{"text": "x", "scores": {"t": 5}}, {"text": "y", "scores": {"t": 4}}]}"#,
    ];
    let (_d, p) = file("d.jsonl", &jsonl(&rows));
    let tok = tokenizer("qwen2");
    let data = load_preferences(&p, &tok, &opts()).unwrap();
    assert_eq!(data.dimensions, ["h", "o", "t"]);
    assert_eq!(
        data.lists[1].ratings,
        vec![
            vec![None, None],
            vec![None, None],
            vec![Some(5.0), Some(4.0)]
        ]
    );
    let sel = LoadOptions {
        dimensions: Some(vec!["t".into(), "h".into()]),
        ..opts()
    };
    let data = load_preferences(&p, &tok, &sel).unwrap();
    assert_eq!(data.dimensions, ["t", "h"]);
    assert_eq!(
        data.lists[0].ratings,
        vec![vec![None, None], vec![Some(1.0), Some(2.0)]]
    );
    // Only `o` selected: the second list has no rating at all → refused under drop-dimension.
    let only_o = LoadOptions {
        dimensions: Some(vec!["o".into()]),
        ..opts()
    };
    let e = load_preferences(&p, &tok, &only_o).unwrap_err();
    assert_eq!((e.kind, e.line), (ErrorKind::MissingRating, Some(2)));
    let skip = LoadOptions {
        skip_invalid: true,
        ..only_o
    };
    assert_eq!(load_preferences(&p, &tok, &skip).unwrap().lists.len(), 1);
}

#[test]
fn missing_default_fills_and_counts() {
    let row = r#"{"prompt": "a", "responses": [{"text": "x", "scores": {"h": "N/A"}}, {"text": "y", "scores": {"h": 3}}, {"text": "z", "scores": {}}]}"#;
    let (_d, p) = file("d.jsonl", row.as_bytes());
    let o = LoadOptions {
        missing: MissingPolicy::Default(1.0),
        ..opts()
    };
    let data = load_preferences(&p, &tokenizer("qwen2"), &o).unwrap();
    assert_eq!(
        data.lists[0].ratings,
        vec![vec![Some(1.0), Some(3.0), Some(1.0)]]
    );
    assert_eq!(data.report.missing_filled, 2);
    assert_eq!(data.report.empty_responses, 0);
}

#[test]
fn truncation_splits_the_budget_like_infer_seqlen() {
    let long_prompt = "word ".repeat(400);
    let long_answer = "answer ".repeat(300);
    let row = serde_json::json!({"prompt": long_prompt, "responses": [
        {"text": long_answer, "scores": {"h": 1}}, {"text": "short", "scores": {"h": 0}}]});
    let (_d, p) = file("d.jsonl", row.to_string().as_bytes());
    let tok = tokenizer("llama");
    let full = load_preferences(
        &p,
        &tok,
        &LoadOptions {
            max_length: 100_000,
            ..opts()
        },
    )
    .unwrap();
    let (pl, rl) = (
        full.lists[0].prompt_ids.len(),
        full.lists[0].responses[0].len(),
    );
    assert!(!full.lists[0].truncated);
    for mode in [Truncation::KeepStart, Truncation::KeepEnd] {
        let o = LoadOptions {
            max_length: 256,
            truncation: mode,
            ..opts()
        };
        let data = load_preferences(&p, &tok, &o).unwrap();
        let l = &data.lists[0];
        let (s, t) = infer_seqlen(pl, rl, 256);
        assert!(l.truncated);
        assert_eq!(data.report.truncated, 1);
        assert_eq!((l.prompt_ids.len(), l.responses[0].len()), (s, t));
        // Responses keep their start; the short one is untouched.
        assert_eq!(&l.responses[0][..], &full.lists[0].responses[0][..t]);
        assert_eq!(l.responses[1], full.lists[0].responses[1]);
        let fp = &full.lists[0].prompt_ids;
        match mode {
            Truncation::KeepStart => assert_eq!(&l.prompt_ids[..], &fp[..s]),
            // Keep-end keeps the generation header at the end of the prompt.
            Truncation::KeepEnd => assert_eq!(&l.prompt_ids[..], &fp[pl - s..]),
        }
    }
    // max_prompt_length first: the prompt is held to 50, then everything fits.
    let o = LoadOptions {
        max_length: 1024,
        max_prompt_length: Some(50),
        ..opts()
    };
    let l = &load_preferences(&p, &tok, &o).unwrap().lists[0];
    assert_eq!((l.prompt_ids.len(), l.responses[0].len()), (50, rl));
}

#[test]
fn pre_tokenized_lists_are_used_as_is() {
    let row = r#"{"prompt_ids": [9, 8, 7], "responses": [{"ids": [1], "scores": {"h": 1}}, {"ids": [2, 3], "scores": {"h": 0}}]}"#;
    let (_d, p) = file("d.jsonl", row.as_bytes());
    let data = load_preferences(&p, &tokenizer("llama"), &opts()).unwrap();
    assert_eq!(data.lists[0].prompt_ids, [9, 8, 7]);
    assert_eq!(data.lists[0].responses, [vec![1], vec![2, 3]]);
}

#[test]
fn helpsteer_singletons_are_reported_not_silently_dropped() {
    let rows = [
        r#"{"prompt": "p1", "response": "a", "helpfulness": 3}"#,
        r#"{"prompt": "p2", "response": "b", "helpfulness": 1}"#,
        r#"{"prompt": "p2", "response": "c", "helpfulness": 4}"#,
    ];
    let (_d, p) = file("hs.jsonl", &jsonl(&rows));
    let data = load_preferences(&p, &tokenizer("qwen2"), &opts()).unwrap();
    assert_eq!(data.lists.len(), 1);
    assert_eq!(data.report.dropped_too_few, 1);
    assert!(data.report.dropped_examples[0].ends_with("hs.jsonl:1"));
    assert!(data.lists[0].source.ends_with("hs.jsonl:2"));
}

#[test]
fn sft_truncation_and_nothing_left_to_train() {
    let long = "hello ".repeat(200);
    let rows = [
        serde_json::json!({"messages": [{"role": "user", "content": long}, {"role": "assistant", "content": "ok"}]}).to_string(),
        serde_json::json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": long}]}).to_string(),
    ];
    let (_d, p) = file("s.jsonl", rows.join("\n").as_bytes());
    let data = load_sft(
        &p,
        &tokenizer("qwen2"),
        &LoadOptions {
            max_length: 64,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(data.records.len(), 1);
    assert_eq!(data.report.dropped_no_target, 1);
    assert_eq!(data.report.truncated, 2);
    let r = &data.records[0];
    assert_eq!(r.ids.len(), 64);
    assert!(r.truncated && r.train_mask[63] && !r.train_mask[0]);
}

#[test]
fn a_template_that_is_not_prefix_stable_is_refused() {
    // Renders the generation prompt differently from a conversation that continues.
    let dir = tempfile::tempdir().unwrap();
    let src = common::model_dir("qwen2");
    std::fs::copy(
        src.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let tpl = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant (thinking): {% endif %}";
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        serde_json::json!({"eos_token": "<|im_end|>", "chat_template": tpl}).to_string(),
    )
    .unwrap();
    let tok = lambda_dpo_model::Tokenizer::from_dir(dir.path()).unwrap();
    let (_d, p) = file(
        "s.jsonl",
        br#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#,
    );
    let e = load_sft(&p, &tok, &opts()).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Template, Some("messages[1]"))
    );
    assert!(
        e.expected
            .contains("is a prefix of the rendering with the response"),
        "{e}"
    );
    let (_d, p) = file(
        "l.jsonl",
        br#"{"prompt": "q", "responses": [{"text": "a", "scores": {"h": 1}}, {"text": "b", "scores": {"h": 0}}]}"#,
    );
    let e = load_preferences(&p, &tok, &opts()).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Template, Some("responses[0]"))
    );
}
