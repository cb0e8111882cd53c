//! The real samples in `../shared/data` (see its SOURCES.md): every reader on its real
//! layout, counts and fields checked, and rendered token boundaries checked against the
//! fixture tokenizers' own chat-template rendering.

mod common;

use common::{opts, shared, tokenizer};
use lambda_dpo::data::{
    inspect, load_preferences, load_sft, Content, ErrorKind, Format, LoadOptions, Prompt,
    ReadOptions, Record, RecordReader,
};
use lambda_dpo_model::Message;

fn lists(path: &std::path::Path) -> (Format, Vec<lambda_dpo::data::ListRecord>) {
    let reader = RecordReader::open(path, &ReadOptions::default()).unwrap();
    let format = reader.format();
    let lists = reader
        .map(|r| match r.unwrap() {
            Record::List(l) => l,
            other => panic!("expected a list, got {other:?}"),
        })
        .collect();
    (format, lists)
}

#[test]
fn ultrafeedback_raw_row_keeps_completion_order_and_ratings() {
    let Some(p) = shared("ultrafeedback/uf_raw_evol_instruct_row0_ratings_only.json") else {
        return;
    };
    let (format, ls) = lists(&p);
    assert_eq!(format, Format::UltraFeedback);
    assert_eq!(ls.len(), 1);
    let l = &ls[0];
    assert_eq!(l.pos.line, 1);
    assert_eq!(l.source.as_deref(), Some("evol_instruct"));
    // completions[].model is not in models[] order: the completions' order is kept.
    let models: Vec<&str> = l
        .responses
        .iter()
        .map(|r| r.model.as_deref().unwrap())
        .collect();
    assert_eq!(
        models,
        ["alpaca-7b", "starchat", "vicuna-33b", "pythia-12b"]
    );
    let dims = l.dims();
    assert_eq!(
        dims,
        [
            "helpfulness",
            "honesty",
            "instruction_following",
            "truthfulness"
        ]
    );
    let r = l.ratings(&dims);
    assert_eq!(r[0], [Some(2.0), Some(5.0), Some(4.0), Some(1.0)]);
    assert_eq!(r[3], [Some(1.0), Some(5.0), Some(3.0), Some(1.0)]);
    assert!(matches!(&l.prompt, Prompt::Text(t) if t.starts_with("Can you write a C++ program")));
}

#[test]
fn ultrafeedback_raw_row_renders_exact_boundaries_llama_and_qwen() {
    let Some(p) = shared("ultrafeedback/uf_raw_evol_instruct_row0_ratings_only.json") else {
        return;
    };
    let (_, ls) = lists(&p);
    let l = &ls[0];
    let Prompt::Text(instruction) = &l.prompt else {
        panic!()
    };
    for (name, eot) in [("llama", "<|eot_id|>"), ("qwen2", "<|im_end|>")] {
        let tok = tokenizer(name);
        let data = load_preferences(
            &p,
            &tok,
            &LoadOptions {
                max_length: 100_000,
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(data.dimensions.len(), 4);
        let rl = &data.lists[0];
        assert_eq!(rl.source, format!("{}:1", p.display()));
        assert!(!rl.truncated);
        let user = vec![Message::new("user", instruction)];
        assert_eq!(
            rl.prompt_ids,
            tok.encode_chat(&user, true, &common::kwargs()).unwrap(),
            "{name}"
        );
        let eot_id = tok.token_to_id(eot).unwrap();
        for (resp, ids) in l.responses.iter().zip(&rl.responses) {
            let Content::Text(text) = &resp.content else {
                panic!()
            };
            // The response ends with exactly one end-of-turn token…
            assert_eq!(ids.last(), Some(&eot_id), "{name}");
            assert_eq!(ids.iter().filter(|&&t| t == eot_id).count(), 1);
            // …and prompt + response is the template's own rendering of the conversation
            // (Qwen adds a "\n" after <|im_end|> that is not trained).
            let mut conv = user.clone();
            conv.push(Message::new("assistant", text));
            let full = tok.encode_chat(&conv, false, &common::kwargs()).unwrap();
            let joined: Vec<u32> = rl.prompt_ids.iter().chain(ids).copied().collect();
            assert_eq!(&full[..joined.len()], &joined[..], "{name}");
            let rest = tok.decode(&full[joined.len()..], false).unwrap();
            assert!(rest.trim().is_empty(), "{name}: {rest:?}");
        }
    }
}

#[test]
fn binarized_pairs_have_scores_ties_and_one_identical_pair() {
    let Some(p) = shared("ultrafeedback/uf_binarized_trl_eval200.jsonl") else {
        return;
    };
    let (format, ls) = lists(&p);
    assert_eq!(format, Format::Trl);
    assert_eq!(ls.len(), 200);
    assert_eq!(ls[0].dims(), ["score"]);
    // Scores come from `metadata.score_chosen` / `metadata.score_rejected`.
    assert_eq!(
        ls[0].ratings(&["score".into()]),
        vec![vec![Some(9.0), Some(7.0)]]
    );
    let ties = ls
        .iter()
        .filter(|l| {
            let r = l.ratings(&["score".into()]);
            r[0][0] == r[0][1]
        })
        .count();
    assert_eq!(ties, 25, "SOURCES.md: 25 of the 200 rows are ties");
    // Row 43 (line 44) has chosen == rejected: de-duplication leaves N = 1 and reports it.
    let tok = tokenizer("qwen2");
    let data = load_preferences(&p, &tok, &opts()).unwrap();
    assert_eq!(data.lists.len(), 199);
    assert_eq!(data.report.dropped_too_few, 1);
    assert_eq!(data.report.duplicates_removed, 1);
    assert_eq!(
        data.report.dropped_examples,
        [format!("{}:44", p.display())]
    );
    assert!(data.report.truncated > 0);
    for l in &data.lists {
        assert!(l.prompt_ids.len() + l.responses.iter().map(Vec::len).max().unwrap() <= 2048);
    }
}

#[test]
fn llamafactory_pairs_keep_system_turns_and_history() {
    let Some(p) = shared("preference/llamafactory_dpo_en_demo.json") else {
        return;
    };
    let (format, ls) = lists(&p);
    assert_eq!(format, Format::ShareGptPairwise);
    assert_eq!(ls.len(), 300);
    let msgs = |l: &lambda_dpo::data::ListRecord| match &l.prompt {
        Prompt::Messages(m) => m.clone(),
        _ => panic!("sharegpt prompts are messages"),
    };
    let system = ls.iter().filter(|l| msgs(l)[0].role == "system").count();
    let multi = ls
        .iter()
        .filter(|l| msgs(l).iter().any(|m| m.role == "assistant"))
        .count();
    assert_eq!((system, multi), (80, 106));
    assert!(ls.iter().all(|l| msgs(l).last().unwrap().role == "user"));
    assert!(ls.iter().all(|l| l.dims() == ["preference"]));
    // Array elements are reported by the line where they start.
    assert_eq!(ls[0].pos.line, 2);
    assert!(ls[1].pos.line > ls[0].pos.line);
    // Rendering with the Llama template: the system turn is placed in the system header.
    let tok = tokenizer("llama");
    let data = load_preferences(&p, &tok, &opts()).unwrap();
    assert_eq!(data.lists.len(), 300);
    assert_eq!(data.dimensions, ["preference"]);
    let i = ls.iter().position(|l| msgs(l)[0].role == "system").unwrap();
    let sys = msgs(&ls[i])[0].content.as_str().unwrap().trim().to_string();
    let prompt = tok.decode(&data.lists[i].prompt_ids, false).unwrap();
    assert!(prompt.contains(&sys[..sys.len().min(40)]));
    assert!(prompt.ends_with("<|start_header_id|>assistant<|end_header_id|>\n\n"));
    assert_eq!(data.lists[i].ratings, vec![vec![Some(1.0), Some(0.0)]]);
}

#[test]
fn hh_transcripts_split_into_the_same_turns_as_the_derived_sft_set() {
    let (Some(p), Some(sft)) = (
        shared("preference/hh_rlhf_harmless_base_test_first100.jsonl"),
        shared("sft/hh_harmless_chosen_as_messages_100.jsonl"),
    ) else {
        return;
    };
    let (format, ls) = lists(&p);
    assert_eq!(format, Format::Hh);
    assert_eq!(ls.len(), 100);
    let reader = RecordReader::open(&sft, &ReadOptions::default()).unwrap();
    assert_eq!(reader.format(), Format::Messages);
    for (l, s) in ls.iter().zip(reader) {
        let Record::Sft(s) = s.unwrap() else { panic!() };
        let Prompt::Messages(prompt) = &l.prompt else {
            panic!()
        };
        let (last, history) = s.messages.split_last().unwrap();
        assert_eq!(prompt, history, "line {}", l.pos.line);
        assert_eq!(
            l.responses[0].content,
            Content::Text(last.content.as_str().unwrap().into())
        );
    }
}

#[test]
fn ultrachat_messages_train_exactly_the_assistant_turn() {
    let Some(p) = shared("sft/uf_binarized_chosen_as_ultrachat_messages_200.jsonl") else {
        return;
    };
    for (name, eot) in [("llama", "<|eot_id|>"), ("qwen2", "<|im_end|>")] {
        let tok = tokenizer(name);
        let data = load_sft(
            &p,
            &tok,
            &LoadOptions {
                max_length: 100_000,
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(data.format, "messages");
        assert_eq!(data.records.len(), 200);
        let reader = RecordReader::open(&p, &ReadOptions::default()).unwrap();
        for (r, rec) in data.records.iter().zip(reader) {
            let Record::Sft(rec) = rec.unwrap() else {
                panic!()
            };
            assert_eq!(r.ids.len(), r.train_mask.len());
            let trained: Vec<u32> = r
                .ids
                .iter()
                .zip(&r.train_mask)
                .filter(|(_, &m)| m)
                .map(|(&t, _)| t)
                .collect();
            // One contiguous trained span at the end (Qwen: all but the final "\n").
            let first = r.train_mask.iter().position(|&m| m).unwrap();
            let last = r.train_mask.iter().rposition(|&m| m).unwrap();
            assert!(r.train_mask[first..=last].iter().all(|&m| m));
            let text = tok.decode(&trained, false).unwrap();
            let answer = rec.messages[1].content.as_str().unwrap();
            let expect = if name == "llama" {
                answer.trim()
            } else {
                answer
            };
            assert_eq!(text, format!("{expect}{eot}"), "{name} {}", r.source);
            // The whole sequence is the template's rendering.
            let full = tok
                .encode_chat(&rec.messages, false, &common::kwargs())
                .unwrap();
            assert_eq!(&full[..r.ids.len()], &r.ids[..]);
        }
    }
}

#[test]
fn hh_multi_turn_sft_masks_every_assistant_turn() {
    let Some(p) = shared("sft/hh_harmless_chosen_as_messages_100.jsonl") else {
        return;
    };
    let tok = tokenizer("llama");
    let data = load_sft(
        &p,
        &tok,
        &LoadOptions {
            max_length: 100_000,
            ..opts()
        },
    )
    .unwrap();
    let reader = RecordReader::open(&p, &ReadOptions::default()).unwrap();
    for (r, rec) in data.records.iter().zip(reader) {
        let Record::Sft(rec) = rec.unwrap() else {
            panic!()
        };
        let turns = rec
            .messages
            .iter()
            .filter(|m| m.role == "assistant")
            .count();
        let spans = r.train_mask.windows(2).filter(|w| !w[0] && w[1]).count();
        assert_eq!(spans, turns, "{}", r.source);
        let eot = tok.token_to_id("<|eot_id|>").unwrap();
        let trained_eots = r
            .ids
            .iter()
            .zip(&r.train_mask)
            .filter(|(&t, &m)| m && t == eot)
            .count();
        assert_eq!(trained_eots, turns);
    }
}

#[test]
fn alpaca_joins_instruction_and_input() {
    let Some(p) = shared("sft/llamafactory_alpaca_en_demo_first200.json") else {
        return;
    };
    let reader = RecordReader::open(&p, &ReadOptions::default()).unwrap();
    assert_eq!(reader.format(), Format::Alpaca);
    let recs: Vec<_> = reader.map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), 200);
    let with_input = recs
        .iter()
        .filter(|r| matches!(r, Record::Sft(s) if s.messages[0].content.as_str().unwrap().contains('\n')))
        .count();
    assert!(with_input >= 75, "{with_input}");
    let Record::Sft(s) = &recs[1] else { panic!() };
    assert_eq!(
        s.messages[0],
        Message::new(
            "user",
            "Transform the following sentence using a synonym: The car sped quickly."
        )
    );
    assert_eq!(
        s.messages[1],
        Message::new("assistant", "The car accelerated rapidly.")
    );
    let data = load_sft(&p, &tokenizer("qwen2"), &opts()).unwrap();
    assert_eq!(data.records.len(), 200);
}

#[test]
fn kto_file_is_recognised_and_refused_for_preferences() {
    let Some(p) = shared("preference/llamafactory_kto_en_demo_first100.json") else {
        return;
    };
    let e = load_preferences(&p, &tokenizer("qwen2"), &opts()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format);
    assert!(e.to_string().contains("unpaired KTO examples"), "{e}");
    let ins = inspect(&p, None, &opts()).unwrap();
    assert_eq!((ins.format.as_str(), ins.items), ("kto", 100));
    assert_eq!(ins.desirable + ins.undesirable, 100);
}

#[test]
fn inspect_real_ultrafeedback_sample() {
    let Some(p) = shared("ultrafeedback/uf_raw_evol_instruct_row0_ratings_only.json") else {
        return;
    };
    let ins = inspect(&p, Some(&tokenizer("llama")), &opts()).unwrap();
    assert_eq!(ins.format, "ultrafeedback");
    assert_eq!(ins.layout, "JSON document");
    assert_eq!(ins.responses_per_list.get(&4), Some(&1));
    let names: Vec<&str> = ins.dimensions.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "helpfulness",
            "honesty",
            "instruction_following",
            "truthfulness"
        ]
    );
    assert_eq!(ins.dimensions[1].histogram, [(1.0, 2), (4.0, 1), (5.0, 1)]);
    let t = ins.tokens.as_ref().unwrap();
    assert_eq!(t.response.count, 4);
    assert!(ins.human().contains("N per list  4: 1"));
}
