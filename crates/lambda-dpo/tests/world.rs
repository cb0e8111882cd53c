//! The synthetic world: exact rewards on hand-written (and garbage) responses, the trade-off
//! property of its candidate lists, its files loading with the project's own readers and
//! loaders, the tokenizer round trip and chat template, and determinism.
//!
//! `world_check_folder` (ignored) writes a folder and our renders for `world_check.py`, which
//! checks them against transformers.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use lambda_dpo::data::{
    load_preferences, load_sft, LoadOptions, Prompt as DataPrompt, RecordReader,
};
use lambda_dpo::world::facts::{Attribute, CAPITALS, COUNTRIES};
use lambda_dpo::world::rewards::rating;
use lambda_dpo::world::{render_lambda, Split, TinyLlama, World, WorldConfig, DIMENSIONS};
use lambda_dpo_math::rng::Rng;
use lambda_dpo_model::{Message, Model, ScoreOptions, ScoreRequest, Tokenizer};

fn world() -> World {
    World::new(WorldConfig::default())
}

/// A tiny model folder (smaller than the default shape, to keep the test fast).
fn model_dir(w: &World) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let shape = TinyLlama {
        hidden: 32,
        layers: 2,
        heads: 2,
        kv_heads: 1,
        intermediate: 64,
        ..TinyLlama::default()
    };
    w.write_tiny_llama(&dir, &shape, 7).unwrap();
    (tmp, dir)
}

fn prompt(w: &World, attr: Attribute, entity: &str) -> lambda_dpo::world::Prompt {
    w.all_prompts()
        .iter()
        .find(|p| p.attribute == attr && p.entity == entity && p.template == 0)
        .unwrap()
        .clone()
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
}

#[test]
fn render_lambda_is_the_trainers_line() {
    assert_eq!(
        render_lambda(
            &["helpfulness", "honesty", "truthfulness"],
            &[0.25, 0.5, 0.25]
        ),
        "Preference weights: helpfulness=0.25, honesty=0.50, truthfulness=0.25."
    );
    assert_eq!(
        render_lambda(&DIMENSIONS, &[0.0, 1.0, 0.0, 0.0]),
        "Preference weights: brevity=0.00, politeness=1.00, detail=0.00, caution=0.00."
    );
    // Off-grid λ is put on the 0.01 grid and still sums to 1, as the trainer renders it.
    assert_eq!(
        render_lambda(&["a", "b", "c"], &[1.0 / 3.0; 3]),
        "Preference weights: a=0.34, b=0.33, c=0.33."
    );
}

#[test]
fn fact_words_are_unique_and_disjoint_from_the_grammar() {
    let w = World::new(WorldConfig {
        entities: 40,
        ..WorldConfig::default()
    });
    let mut seen = std::collections::HashSet::new();
    for word in COUNTRIES.iter().chain(CAPITALS.iter()) {
        assert!(seen.insert(word.to_lowercase()), "{word} twice");
    }
    for attr in [Attribute::Flag, Attribute::Export, Attribute::Animal] {
        for v in w.facts().values(attr) {
            assert!(seen.insert(v.to_string()), "{v} twice");
        }
    }
    // No word of the grammar itself is a fact word (or a country), so words name facts only
    // where a fact is stated.
    use lambda_dpo::world::grammar as g;
    let varnia = w.facts().entity("Varnia").unwrap();
    let mut skeleton: Vec<String> = g::OPENINGS
        .iter()
        .chain(&g::CLOSINGS)
        .chain(&g::CAUTIONS)
        .map(|s| s.to_string())
        .collect();
    for attr in Attribute::ALL {
        skeleton.extend(g::question_templates(attr).iter().map(|t| g::fill(t, "")));
        skeleton.push(g::sentence(varnia, attr, "").replace("Varnia", ""));
        skeleton.push(g::detail_sentence(attr, ""));
    }
    skeleton.extend(g::FACT_TEMPLATES.iter().map(|t| g::fill(t, "")));
    skeleton.push(render_lambda(&DIMENSIONS, &[0.25; 4]));
    for text in &skeleton {
        for word in lambda_dpo::world::rewards::words(text) {
            assert!(
                !seen.contains(&word),
                "grammar word {word} is a fact word ({text:?})"
            );
        }
    }
    let p = prompt(&w, Attribute::Capital, "Varnia");
    assert_eq!(w.all_prompts().len(), 40 * 8);
    assert_eq!(p.text, "What is the capital of Varnia?");
}

#[test]
fn rewards_are_exact_on_hand_written_responses() {
    let w = world();
    let varnia = w.facts().entity("Varnia").unwrap().clone();
    assert_eq!(varnia.capital, "Olm");
    let (flag, export, animal) = (varnia.flag, varnia.export, varnia.animal);
    let wrong_flag = ["red", "blue"].into_iter().find(|c| *c != flag).unwrap();
    let q = prompt(&w, Attribute::Capital, "Varnia");
    // h(n) = H_n / H_4.
    let h = |n: usize| [0.0, 1.0, 1.5, 11.0 / 6.0, 25.0 / 12.0][n] / (25.0 / 12.0);
    let ans = "The capital of Varnia is Olm.";
    let cases: Vec<(String, [f64; 4])> = vec![
        (ans.into(), [1.0, 0.0, 0.0, 0.0]),
        ("Olm.".into(), [1.0, 0.0, 0.0, 0.0]),
        ("olm".into(), [1.0, 0.0, 0.0, 0.0]),
        // A missing answer is worth nothing on any dimension; a wrong one is scored as any
        // answer (truth is accuracy, not a dimension).
        ("The capital of Varnia is Kel. Great question!".into(), [h(3), h(1), 0.0, 0.0]),
        ("Great question! Happy to help.".into(), [0.0; 4]),
        // Hedging between two capitals earns a share of everything.
        ("Olm or Kel. I may be wrong about this.".into(), [0.5 * h(3), 0.0, 0.0, 0.5 * h(1)]),
        (
            format!("Great question! {ans} Its flag is {flag}. I hope this helps!"),
            [h(1), h(2), h(1), 0.0],
        ),
        (
            format!("{ans} Its flag is {flag}. It exports {export}. Its national animal is the {animal}."),
            [h(1), 0.0, h(3), 0.0],
        ),
        (
            format!("{ans} I may be wrong about this. Please check an official source. Facts can change over time. Sources sometimes disagree."),
            [0.0, 0.0, 0.0, 1.0],
        ),
        // A wrong detail is no detail but still a sentence; the same caution twice is one.
        (
            format!("Thank you for asking. {ans} Its flag is {wrong_flag}. Sources sometimes disagree. Sources sometimes disagree."),
            [h(0), h(1), 0.0, h(1)],
        ),
        // Two different flag colours: neither counts as a detail.
        (format!("{ans} Its flag is {flag} or {wrong_flag}."), [h(3), 0.0, 0.0, 0.0]),
        // All four politeness phrases.
        (
            format!("Great question! Happy to help. {ans} I hope this helps! Thank you for asking."),
            [0.0, 1.0, 0.0, 0.0],
        ),
        // Garbage and the empty string.
        (String::new(), [0.0; 4]),
        ("   \n\t ".into(), [0.0; 4]),
        ("%%% ### ???".into(), [0.0; 4]),
        ("ÖLM Ölm olmm".into(), [0.0; 4]),
        ("<|eot_id|>Olm<|eot_id|>".into(), [1.0, 0.0, 0.0, 0.0]),
        (["Olm."; 40].join(" "), [0.0; 4]),
    ];
    for (text, want) in cases {
        let got = w.rewards(&q, &text);
        assert!(close(&got, &want), "{text:?}: got {got:?}, want {want:?}");
    }
    assert_eq!(w.answer_share(&q, "Olm or Kel."), 0.5);
    assert_eq!(w.answer_share(&q, "Kel. Great question!"), 0.0);
    // Other attributes: the answer is the value, the capital is a detail there.
    let qf = prompt(&w, Attribute::Flag, "Varnia");
    assert!(close(
        &w.rewards(
            &qf,
            &format!("The flag of Varnia is {flag}. Its capital is Olm.")
        ),
        &[h(3), 0.0, h(1), 0.0]
    ));
    assert_eq!(w.rewards(&qf, "Olm."), vec![0.0; 4]);
    // An unknown country never panics; it has no true details and no true answer.
    let mut ghost = q.clone();
    ghost.entity = "Atlantis".into();
    assert!(close(
        &w.rewards(&ghost, &format!("Olm. Its flag is {flag}.")),
        &[h(3), 0.0, 0.0, 0.0]
    ));
    assert_eq!(w.answer_share(&ghost, "Olm."), 0.0);
    assert_eq!(
        (rating(0.0), rating(0.5), rating(0.874), rating(1.0)),
        (1, 3, 4, 5)
    );
}

#[test]
fn rewards_are_in_the_unit_interval_for_random_text() {
    let w = world();
    let mut rng = Rng::seed_from_u64(3);
    let alphabet: Vec<char> = "Olm Kel  .!?,'\n\tÖß漢🦀abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .collect();
    let words = w.corpus()[..200].join(" ");
    let words: Vec<&str> = words.split(' ').collect();
    for i in 0..2000 {
        let n = rng.below(60) as usize;
        let text: String = if i % 2 == 0 {
            (0..n)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect()
        } else {
            (0..n)
                .map(|_| words[rng.below(words.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        };
        let p = &w.all_prompts()[i % w.all_prompts().len()];
        let r = w.rewards(p, &text);
        assert_eq!(r.len(), 4);
        assert!(
            r.iter().all(|x| (0.0..=1.0).contains(x)),
            "{text:?} → {r:?}"
        );
    }
}

#[test]
fn candidate_lists_trade_off_between_dimensions() {
    let w = world();
    let prompts = w.train_prompts();
    let m = DIMENSIONS.len();
    let argmax = |rw: &[Vec<f64>], k: usize| -> usize {
        // First index among ties.
        (0..rw.len()).fold(0, |b, i| if rw[i][k] > rw[b][k] { i } else { b })
    };
    let (mut differs, mut no_universal_best) = (0, 0);
    for p in prompts {
        let cands = w.candidates(p);
        assert_eq!(cands.len(), 4);
        let rw: Vec<Vec<f64>> = cands.iter().map(|(_, t)| w.rewards(p, t)).collect();
        let winners: Vec<usize> = (0..m).map(|k| argmax(&rw, k)).collect();
        if winners.iter().any(|&x| x != winners[0]) {
            differs += 1;
        }
        // No candidate is at the top of every dimension.
        let best_everywhere =
            (0..rw.len()).any(|i| (0..m).all(|k| rw.iter().all(|r| r[k] <= rw[i][k])));
        if !best_everywhere {
            no_universal_best += 1;
        }
        // Responses are distinct (the loader would merge copies).
        let mut texts: Vec<&String> = cands.iter().map(|(_, t)| t).collect();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), cands.len(), "{:?}", cands);
    }
    assert!(
        differs * 10 >= prompts.len() * 9,
        "{differs}/{}",
        prompts.len()
    );
    assert!(
        no_universal_best * 10 >= prompts.len() * 9,
        "{no_universal_best}/{}",
        prompts.len()
    );
    // Over the whole grammar, each dimension has a different best response.
    for p in prompts.iter().take(20) {
        let mut best: Vec<String> = (0..m)
            .map(|k| {
                let mut l = vec![0.0; m];
                l[k] = 1.0;
                w.oracle(p, &l).0
            })
            .collect();
        best.sort();
        best.dedup();
        assert_eq!(best.len(), m, "{}: {best:?}", p.id);
    }
}

/// The property the demo's controllability rests on: the best response at a λ of the 0.25
/// grid spends 4·λ_k sentences on dimension k, so its reward on k is h(4·λ_k) whatever the
/// other weights (detail tops out at three facts), and the oracle's controllability is ~1.
#[test]
fn the_best_response_spends_four_lambda_k_sentences_on_dimension_k() {
    use lambda_dpo::world::rewards::units_reward;
    let w = world();
    let grid = lambda_dpo_math::simplex::simplex_grid(4, 0.25).unwrap();
    assert_eq!(grid.len(), 35);
    let mut mean = vec![vec![0.0; 4]; grid.len()];
    for p in w.eval_prompts() {
        for (g, l) in grid.iter().enumerate() {
            let (text, r) = w.oracle(p, l);
            for k in 0..4 {
                let mut units = (4.0 * l[k]).round() as usize;
                if k == 2 {
                    units = units.min(3);
                }
                // At λ_detail = 1 the fourth sentence is worth nothing to anyone: the shorter
                // response wins the tie and brevity keeps it.
                let want = if k == 0 && l[2] == 1.0 {
                    units_reward(1)
                } else {
                    units_reward(units)
                };
                assert!(
                    (r[k] - want).abs() < 1e-12,
                    "{}: λ {l:?} → {text:?} {r:?}",
                    p.id
                );
                mean[g][k] += r[k];
            }
        }
    }
    for k in 0..4 {
        let x: Vec<f64> = grid.iter().map(|l| l[k]).collect();
        let y: Vec<f64> = mean.iter().map(|r| r[k]).collect();
        let rho = lambda_dpo_math::pareto::spearman(&x, &y).unwrap().unwrap();
        assert!(rho > 0.97, "dimension {k}: {rho}");
    }
}

#[test]
fn splits_are_disjoint_and_sized() {
    let w = world();
    assert_eq!((w.train_prompts().len(), w.eval_prompts().len()), (96, 24));
    let ids: std::collections::HashSet<&str> =
        w.train_prompts().iter().map(|p| p.id.as_str()).collect();
    assert!(w
        .eval_prompts()
        .iter()
        .all(|p| !ids.contains(p.id.as_str())));
    // Over-asking is clamped to the prompts that exist.
    let big = World::new(WorldConfig {
        train_prompts: 1000,
        eval_prompts: 1000,
        entities: 3,
        ..WorldConfig::default()
    });
    assert_eq!(
        (big.train_prompts().len(), big.eval_prompts().len()),
        (24, 0)
    );
}

#[test]
fn ultrafeedback_file_loads_with_the_project_reader() {
    let w = world();
    let (tmp, dir) = model_dir(&w);
    let tok = Tokenizer::from_dir(&dir).unwrap();
    for (split, n_prompts) in [(Split::Train, 96), (Split::Eval, 24)] {
        let path = tmp.path().join("uf.jsonl");
        assert_eq!(w.write_ultrafeedback(&path, split).unwrap(), n_prompts);
        let data = load_preferences(&path, &tok, &LoadOptions::default()).unwrap();
        assert_eq!(data.format, "ultrafeedback");
        assert_eq!(data.dimensions, DIMENSIONS);
        assert_eq!(data.lists.len(), n_prompts);
        assert_eq!(data.report.duplicates_removed, 0);
        // The raw records: ratings are 1 + round(4·reward) of the world's exact rewards.
        let reader = RecordReader::open(&path, &Default::default()).unwrap();
        for (rec, p) in reader.zip(w.prompts(split)) {
            let lambda_dpo::data::Record::List(l) = rec.unwrap() else {
                panic!("not a list")
            };
            assert!(matches!(&l.prompt, DataPrompt::Text(t) if *t == p.text));
            assert_eq!(l.responses.len(), 4);
            let dims: Vec<String> = DIMENSIONS.iter().map(|d| d.to_string()).collect();
            let ratings = l.ratings(&dims); // [m][N]
            for (i, resp) in l.responses.iter().enumerate() {
                let lambda_dpo::data::Content::Text(text) = &resp.content else {
                    panic!()
                };
                let want: Vec<Option<f64>> = w
                    .rewards(p, text)
                    .iter()
                    .map(|&r| Some(f64::from(rating(r))))
                    .collect();
                let got: Vec<Option<f64>> = ratings.iter().map(|r| r[i]).collect();
                assert_eq!(got, want, "{text}");
            }
        }
        for l in &data.lists {
            assert_eq!(l.responses.len(), 4);
            assert!(!l.truncated);
            assert!(
                l.prompt_ids.len() <= 28,
                "prompt of {} tokens",
                l.prompt_ids.len()
            );
            assert!(l.responses.iter().all(|r| r.len() <= 40));
        }
    }
}

#[test]
fn sft_file_loads_with_the_project_reader() {
    let w = world();
    let (tmp, dir) = model_dir(&w);
    let tok = Tokenizer::from_dir(&dir).unwrap();
    let path = tmp.path().join("sft.jsonl");
    let n = w.write_sft(&path, Split::Train, 3).unwrap();
    // 3 free + 20 λ-conditioned per train prompt, 16 copies of 2 fact statements per country.
    assert_eq!(n, 96 * (3 + 20) + 24 * 2 * 16);
    let data = load_sft(&path, &tok, &LoadOptions::default()).unwrap();
    assert_eq!(data.records.len(), n);
    assert!(data.records.iter().all(|r| r.train_mask.iter().any(|&m| m)));
    let n_eval = w.write_sft(&path, Split::Eval, 2).unwrap();
    assert_eq!(n_eval, 24 * (2 + 20));
    assert_eq!(
        load_sft(&path, &tok, &LoadOptions::default())
            .unwrap()
            .records
            .len(),
        n_eval
    );
    // The free SFT responses cover the attribute space: every dimension takes ≥ 4 values.
    let mut levels = vec![std::collections::BTreeSet::new(); 4];
    for p in w.train_prompts() {
        for (_, t) in w.sft_responses(p, 3) {
            for (k, r) in w.rewards(p, &t).into_iter().enumerate() {
                levels[k].insert((r * 100.0).round() as i64);
            }
        }
    }
    assert!(levels.iter().all(|l| l.len() >= 4), "{levels:?}");
    // The conditioned demonstrations: λ on the 0.25 grid, the answer as good under λ as the
    // best the grammar can write, and the λ line rendered as the trainer does.
    for p in w.train_prompts().iter().take(10) {
        for (lambda, text) in w.conditioned_demos(p, 4) {
            assert!((lambda.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert!(lambda
                .iter()
                .all(|l| (4.0 * l - (4.0 * l).round()).abs() < 1e-9));
            let best = w.scalarized(p, &w.oracle(p, &lambda).0, &lambda);
            assert!(
                (w.scalarized(p, &text, &lambda) - best).abs() < 1e-12,
                "{text}"
            );
        }
    }
    let text = std::fs::read_to_string(tmp.path().join("sft.jsonl")).unwrap();
    let system = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["messages"][0]["role"] == "system")
        .count();
    assert_eq!(system, 24 * 20); // 20 conditioned demonstrations per eval prompt
}

#[test]
fn tokenizer_round_trips_and_renders_the_chat_template() {
    let w = world();
    let (_tmp, dir) = model_dir(&w);
    let tok = Tokenizer::from_dir(&dir).unwrap();
    assert!(
        (512..=1024).contains(&tok.vocab_size()),
        "{}",
        tok.vocab_size()
    );
    for text in w.corpus() {
        let ids = tok.encode(&text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
    }
    // Compact: a question is ≤ 12 tokens, a λ line ≤ 30.
    for p in w.all_prompts() {
        assert!(
            tok.encode(&p.text, false).unwrap().len() <= 12,
            "{}",
            p.text
        );
    }
    let line = render_lambda(&DIMENSIONS, &[0.1, 0.2, 0.3, 0.4]);
    assert!(tok.encode(&line, false).unwrap().len() <= 30, "{line}");
    // `tokenizer(text)` adds BOS.
    let with_bos = tok.encode("Olm.", true).unwrap();
    assert_eq!(with_bos[0], tok.token_to_id("<|begin_of_text|>").unwrap());

    let none = serde_json::Map::new();
    let user = Message::new("user", "What is the capital of Varnia?");
    let s = tok
        .render_chat(std::slice::from_ref(&user), true, &none)
        .unwrap();
    assert_eq!(
        s,
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of Varnia?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    let msgs = [
        Message::new("system", &line),
        user,
        Message::new("assistant", " Olm. "),
    ];
    let s = tok.render_chat(&msgs, false, &none).unwrap();
    assert_eq!(
        s,
        format!("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{line}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of Varnia?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nOlm.<|eot_id|>")
    );
    let ids = tok.encode(&s, false).unwrap();
    let eot = tok.token_to_id("<|eot_id|>").unwrap();
    assert_eq!(ids.iter().filter(|&&i| i == eot).count(), 3);
    assert_eq!(tok.decode(&ids, false).unwrap(), s);
}

#[test]
fn tiny_model_loads_and_scores_finite_logprobs() {
    let w = world();
    let (_tmp, dir) = model_dir(&w);
    let model = Model::load(&dir, DType::F32, &Device::Cpu).unwrap();
    let tok = Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(model.config.vocab_size, tok.vocab_size());
    assert!(model.config.tie_word_embeddings);
    assert_eq!(
        model.config.eos_token_ids,
        [
            tok.token_to_id("<|eot_id|>").unwrap(),
            tok.token_to_id("<|end_of_text|>").unwrap()
        ]
    );
    let msgs = [
        Message::new("user", "What is the capital of Varnia?"),
        Message::new("assistant", "Olm."),
    ];
    let ids = tok.encode_chat(&msgs, false, &Default::default()).unwrap();
    let prompt = tok
        .encode_chat(&msgs[..1], true, &Default::default())
        .unwrap();
    let scored = model
        .score(
            &[ScoreRequest {
                ids: &ids,
                start: prompt.len(),
            }],
            None,
            ScoreOptions::default(),
        )
        .unwrap();
    let sums: Vec<f32> = scored.sums.to_vec1().unwrap();
    assert!(sums[0].is_finite() && sums[0] < 0.0, "{sums:?}");
    // Random init: each token costs about ln V nats.
    let per_token = -sums[0] / (ids.len() - prompt.len()) as f32;
    let ln_v = (tok.vocab_size() as f32).ln();
    assert!(
        (per_token - ln_v).abs() < 1.0,
        "{per_token} vs ln V = {ln_v}"
    );
}

fn read_dir_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn same_seed_gives_byte_identical_files() {
    let write = |seed: u64| {
        let w = World::new(WorldConfig {
            seed,
            ..WorldConfig::default()
        });
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        w.write_ultrafeedback(&d.join("uf_train.jsonl"), Split::Train)
            .unwrap();
        w.write_ultrafeedback(&d.join("uf_eval.jsonl"), Split::Eval)
            .unwrap();
        w.write_sft(&d.join("sft.jsonl"), Split::Train, 4).unwrap();
        w.write_tokenizer(&d.join("tok")).unwrap();
        let shape = TinyLlama {
            hidden: 32,
            layers: 1,
            heads: 2,
            kv_heads: 2,
            intermediate: 48,
            ..TinyLlama::default()
        };
        w.write_tiny_llama(&d.join("model"), &shape, seed).unwrap();
        let mut all = read_dir_bytes(d);
        all.retain(|(n, _)| n.ends_with(".jsonl"));
        all.extend(read_dir_bytes(&d.join("tok")));
        all.extend(read_dir_bytes(&d.join("model")));
        all
    };
    let (a, b, c) = (write(5), write(5), write(6));
    assert_eq!(a.len(), 3 + 3 + 5);
    for ((na, ba), (nb, bb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(
            ba == bb,
            "{na} differs between two writes with the same seed"
        );
    }
    let differs = |name: &str| {
        a.iter().find(|(n, _)| n == name).unwrap().1 != c.iter().find(|(n, _)| n == name).unwrap().1
    };
    assert!(differs("uf_train.jsonl") && differs("model.safetensors"));
}

/// Writes a default-shape folder and our renders for `tests/world_check.py`:
/// `WORLD_CHECK_DIR=/tmp/world cargo test --workspace --test world -- --ignored world_check_folder`
#[test]
#[ignore]
fn world_check_folder() {
    let Some(root) = std::env::var_os("WORLD_CHECK_DIR") else {
        panic!("set WORLD_CHECK_DIR");
    };
    let root = PathBuf::from(root);
    let w = world();
    let dir = root.join("model");
    w.write_tiny_llama(&dir, &TinyLlama::default(), 0).unwrap();
    let tok = Tokenizer::from_dir(&dir).unwrap();
    let model = Model::load(&dir, DType::F32, &Device::Cpu).unwrap();
    let line = render_lambda(&DIMENSIONS, &[0.1, 0.2, 0.3, 0.4]);
    let mut cases = Vec::new();
    for (i, p) in w.train_prompts().iter().take(4).enumerate() {
        let (_, answer) = &w.candidates(p)[0];
        let mut msgs = vec![
            Message::new("user", &p.text),
            Message::new("assistant", answer),
        ];
        if i % 2 == 1 {
            msgs.insert(0, Message::new("system", &line));
        }
        let n_prompt = msgs.len() - 1;
        let text = tok.render_chat(&msgs, false, &Default::default()).unwrap();
        let prompt_text = tok
            .render_chat(&msgs[..n_prompt], true, &Default::default())
            .unwrap();
        let ids = tok.encode(&text, false).unwrap();
        let start = tok.encode(&prompt_text, false).unwrap().len();
        let scored = model
            .score(
                &[ScoreRequest { ids: &ids, start }],
                None,
                ScoreOptions::default(),
            )
            .unwrap();
        let logp: Vec<f32> = scored.sums.to_vec1().unwrap();
        cases.push(serde_json::json!({
            "messages": msgs,
            "text": text,
            "prompt_text": prompt_text,
            "ids": ids,
            "start": start,
            "logp": logp[0],
        }));
    }
    let corpus: Vec<String> = w.corpus().into_iter().step_by(50).collect();
    let corpus_ids: Vec<Vec<u32>> = corpus
        .iter()
        .map(|t| tok.encode(t, false).unwrap())
        .collect();
    let out = serde_json::json!({"cases": cases, "corpus": corpus, "corpus_ids": corpus_ids});
    std::fs::write(
        root.join("expected.json"),
        serde_json::to_string_pretty(&out).unwrap(),
    )
    .unwrap();
    w.write_ultrafeedback(&root.join("uf_train.jsonl"), Split::Train)
        .unwrap();
    w.write_sft(&root.join("sft_train.jsonl"), Split::Train, 4)
        .unwrap();
}
