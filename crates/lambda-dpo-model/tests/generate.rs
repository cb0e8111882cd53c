//! Generation: the KV-cached forward against the full uncached forward, batching, sampling,
//! stop conditions, and greedy decoding against transformers' `model.generate` (the reference
//! ids in `fixtures/{llama,qwen2}/greedy.json` come from `fixtures/generate_greedy.py`).

mod common;

use candle_core::{DType, Tensor};
use common::{adapter, fixture, model};
use lambda_dpo_model::generate::last_logits_uncached;
use lambda_dpo_model::{
    generate, row_seed, stop_token_ids, Adapter, FinishReason, GenerateOptions, Generation,
    KvCache, Model, Prompt, SamplingConfig, Tokenizer,
};
use serde::Deserialize;

const NAMES: [&str; 2] = ["llama", "qwen2"];

#[derive(Debug, Deserialize)]
struct Greedy {
    max_new_tokens: usize,
    eos_token_id: Vec<u32>,
    cases: Vec<GreedyCase>,
}

#[derive(Debug, Deserialize)]
struct GreedyCase {
    prompt_ids: Vec<u32>,
    base: Vec<u32>,
    adapter: Vec<u32>,
}

fn greedy_fixture(name: &str) -> Greedy {
    let text = std::fs::read_to_string(fixture(name).join("greedy.json")).expect("greedy.json");
    serde_json::from_str(&text).expect("greedy.json parses")
}

fn tokenizer(name: &str) -> Tokenizer {
    Tokenizer::from_dir(&fixture(name).join("model")).expect("fixture tokenizer loads")
}

/// The prompts of the parity fixture: lengths 1 to ~70, so a batch of them is left-padded.
fn prompt_ids(name: &str) -> Vec<Vec<u32>> {
    greedy_fixture(name)
        .cases
        .into_iter()
        .map(|c| c.prompt_ids)
        .collect()
}

fn prompts(ids: &[Vec<u32>], seed: u64) -> Vec<Prompt<'_>> {
    ids.iter()
        .enumerate()
        .map(|(i, ids)| Prompt {
            ids,
            seed: row_seed(seed, i as u64),
        })
        .collect()
}

fn sampled(temperature: f64, top_k: Option<usize>, top_p: f64, n: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: n,
        sampling: SamplingConfig {
            temperature,
            top_k,
            top_p,
        },
        ..Default::default()
    }
}

fn greedy(n: usize) -> GenerateOptions {
    sampled(0.0, None, 1.0, n)
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Greedy decoding driven by hand through `forward_cached`, for a left-padded batch; every
/// step's logits are checked against a full uncached forward of the row's whole sequence.
fn check_cached_against_uncached(m: &Model, adapter: Option<&Adapter>, rows: &[Vec<u32>]) {
    let steps = 8;
    let b = rows.len();
    let p = rows.iter().map(Vec::len).max().unwrap();
    let pads: Vec<usize> = rows.iter().map(|r| p - r.len()).collect();
    let mut cache = KvCache::new(m, b, p + steps).unwrap();
    let mut ids = vec![0u32; b * p];
    let mut pos = vec![0u32; b * p];
    let mut mask = vec![0f32; b * p * p];
    for (r, row) in rows.iter().enumerate() {
        ids[r * p + pads[r]..(r + 1) * p].copy_from_slice(row);
        for c in 0..p {
            pos[r * p + c] = c.saturating_sub(pads[r]) as u32;
            for j in 0..p {
                if j > c || (j < pads[r] && j != c) {
                    mask[(r * p + c) * p + j] = f32::NEG_INFINITY;
                }
            }
        }
    }
    let ids = Tensor::from_vec(ids, (b, p), &m.device).unwrap();
    let mask = Tensor::from_vec(mask, (b, 1, p, p), &m.device).unwrap();
    let mut logits: Vec<Vec<f32>> = m
        .forward_cached(&ids, &pos, Some(&mask), &mut cache, adapter)
        .unwrap()
        .to_vec2()
        .unwrap();
    let mut seqs: Vec<Vec<u32>> = rows.to_vec();
    for _ in 0..steps {
        let mut next = Vec::new();
        for (r, seq) in seqs.iter_mut().enumerate() {
            let reference = last_logits_uncached(m, seq, adapter).unwrap();
            let diff = max_abs(&logits[r], &reference);
            assert!(
                diff < 1e-4,
                "row {r} at length {}: logits differ by {diff}",
                seq.len()
            );
            let tok = argmax(&logits[r]);
            assert_eq!(tok, argmax(&reference), "row {r} at length {}", seq.len());
            seq.push(tok);
            next.push(tok);
        }
        let start = cache.len();
        let pos: Vec<u32> = pads.iter().map(|&pad| (start - pad) as u32).collect();
        let s = start + 1;
        let mut mask = vec![0f32; b * s];
        for (r, &pad) in pads.iter().enumerate() {
            for j in 0..pad {
                mask[r * s + j] = f32::NEG_INFINITY;
            }
        }
        let mask = Tensor::from_vec(mask, (b, 1, 1, s), &m.device).unwrap();
        let ids = Tensor::from_vec(next, (b, 1), &m.device).unwrap();
        logits = m
            .forward_cached(&ids, &pos, Some(&mask), &mut cache, adapter)
            .unwrap()
            .to_vec2()
            .unwrap();
    }
}

#[test]
fn kv_cached_decoding_matches_the_uncached_forward() {
    for name in NAMES {
        let m = model(name, DType::F32);
        let a = adapter(name, &m);
        let rows = prompt_ids(name);
        for ad in [None, Some(&a)] {
            // One row without padding (the mask-free path) and the padded batch.
            let single = &rows[1];
            let n = single.len();
            let mut cache = KvCache::new(&m, 1, n + 4).unwrap();
            let ids = Tensor::from_vec(single.clone(), (1, n), &m.device).unwrap();
            let pos: Vec<u32> = (0..n as u32).collect();
            let mut seq = single.clone();
            let mut l = m.forward_cached(&ids, &pos, None, &mut cache, ad).unwrap();
            for _ in 0..4 {
                let cached: Vec<f32> = l.squeeze(0).unwrap().to_vec1().unwrap();
                let reference = last_logits_uncached(&m, &seq, ad).unwrap();
                assert!(max_abs(&cached, &reference) < 1e-4, "{name}");
                let tok = argmax(&cached);
                seq.push(tok);
                let ids = Tensor::from_vec(vec![tok], (1, 1), &m.device).unwrap();
                let p = [(seq.len() - 1) as u32];
                l = m.forward_cached(&ids, &p, None, &mut cache, ad).unwrap();
            }
            check_cached_against_uncached(&m, ad, &rows);
        }
    }
}

#[test]
fn greedy_decoding_matches_transformers_generate() {
    for name in NAMES {
        let m = model(name, DType::F32);
        let a = adapter(name, &m);
        let tok = tokenizer(name);
        let g = greedy_fixture(name);
        // transformers stops at generation_config.eos_token_id; so do our defaults (plus the
        // tokenizer's eos, which is one of them for both fixtures).
        let stops = stop_token_ids(&fixture(name).join("model"), &m.config, &tok).unwrap();
        for id in &g.eos_token_id {
            assert!(stops.contains(id), "{name}: {stops:?}");
        }
        let opts = GenerateOptions {
            stop_token_ids: g.eos_token_id.clone(),
            ..greedy(g.max_new_tokens)
        };
        let ids: Vec<Vec<u32>> = g.cases.iter().map(|c| c.prompt_ids.clone()).collect();
        for (ad, label) in [(None, "base"), (Some(&a), "adapter")] {
            // All prompts in one left-padded batch, and one at a time.
            let batched = generate(&m, &tok, ad, &prompts(&ids, 0), &opts).unwrap();
            for (k, case) in g.cases.iter().enumerate() {
                let expected = if ad.is_some() {
                    &case.adapter
                } else {
                    &case.base
                };
                assert_eq!(
                    &batched[k].ids, expected,
                    "{name} {label} case {k} (batched)"
                );
                let single = generate(&m, &tok, ad, &prompts(&ids[k..k + 1], 0), &opts).unwrap();
                assert_eq!(&single[0].ids, expected, "{name} {label} case {k} (alone)");
            }
        }
    }
}

#[test]
fn default_stop_ids_come_from_generation_config_and_the_tokenizer() {
    let expect = [("llama", vec![801, 804]), ("qwen2", vec![702])];
    for (name, ids) in expect {
        let m = model(name, DType::F32);
        let got =
            stop_token_ids(&fixture(name).join("model"), &m.config, &tokenizer(name)).unwrap();
        assert_eq!(got, ids, "{name}");
    }
}

/// Sorts by nothing: compares every field of each row.
fn assert_same(a: &[Generation], b: &[Generation], what: &str) {
    assert_eq!(a.len(), b.len());
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x, y, "{what}: row {k}");
    }
}

#[test]
fn batched_generation_equals_one_prompt_at_a_time() {
    for name in NAMES {
        let m = model(name, DType::F32);
        let a = adapter(name, &m);
        let tok = tokenizer(name);
        let ids = prompt_ids(name);
        // Stop ids that some rows hit early, so rows finish at different steps and leave the
        // batch while others continue: a token of each greedy path, and (for the near-uniform
        // samples of a random model) a tenth of the vocabulary.
        let mut stops = greedy_fixture(name)
            .cases
            .iter()
            .map(|c| c.base[2])
            .collect::<Vec<_>>();
        stops.extend(0..80);
        let settings = [
            greedy(10),
            sampled(0.9, Some(40), 0.95, 10),
            sampled(1.3, None, 1.0, 10),
        ];
        for base in settings {
            let opts = GenerateOptions {
                stop_token_ids: stops.clone(),
                ..base
            };
            for ad in [None, Some(&a)] {
                let batched = generate(&m, &tok, ad, &prompts(&ids, 3), &opts).unwrap();
                assert!(
                    batched
                        .iter()
                        .any(|g| g.finish_reason == FinishReason::StopToken),
                    "{name}: some row should stop early"
                );
                let ps = prompts(&ids, 3);
                let alone: Vec<Generation> = ps
                    .iter()
                    .map(|p| generate(&m, &tok, ad, std::slice::from_ref(p), &opts).unwrap())
                    .map(|mut v| v.remove(0))
                    .collect();
                assert_same(&batched, &alone, &format!("{name} {:?}", opts.sampling));
                // Order inside the batch does not matter either.
                let mut rev = ps.clone();
                rev.reverse();
                let mut reversed = generate(&m, &tok, ad, &rev, &opts).unwrap();
                reversed.reverse();
                assert_same(&batched, &reversed, &format!("{name} reversed"));
            }
        }
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_seeds_matter() {
    for name in NAMES {
        let m = model(name, DType::F32);
        let tok = tokenizer(name);
        let ids = prompt_ids(name);
        let opts = sampled(1.0, None, 1.0, 12);
        let first = generate(&m, &tok, None, &prompts(&ids, 11), &opts).unwrap();
        let again = generate(&m, &tok, None, &prompts(&ids, 11), &opts).unwrap();
        assert_same(&first, &again, name);
        let other = generate(&m, &tok, None, &prompts(&ids, 12), &opts).unwrap();
        let differing = first
            .iter()
            .zip(&other)
            .filter(|(a, b)| a.ids != b.ids)
            .count();
        assert!(
            differing >= ids.len() - 1,
            "{name}: only {differing} rows differ"
        );
        // A random tiny model is near uniform at T = 1: sampling must leave the greedy path.
        let greedy_out = generate(&m, &tok, None, &prompts(&ids, 0), &greedy(12)).unwrap();
        assert!(first.iter().zip(&greedy_out).any(|(a, b)| a.ids != b.ids));
    }
}

#[test]
fn top_k_one_is_greedy_and_tiny_top_p_is_greedy() {
    for name in NAMES {
        let m = model(name, DType::F32);
        let a = adapter(name, &m);
        let tok = tokenizer(name);
        let ids = prompt_ids(name);
        let g = generate(&m, &tok, Some(&a), &prompts(&ids, 0), &greedy(12)).unwrap();
        for opts in [sampled(1.0, Some(1), 1.0, 12), sampled(0.7, None, 1e-6, 12)] {
            for seed in [1, 2] {
                let s = generate(&m, &tok, Some(&a), &prompts(&ids, seed), &opts).unwrap();
                assert_same(&g, &s, &format!("{name} {:?}", opts.sampling));
            }
        }
    }
}

#[test]
fn stop_tokens_end_a_row_and_stay_out_of_the_text() {
    let name = "llama";
    let m = model(name, DType::F32);
    let tok = tokenizer(name);
    let ids = prompt_ids(name);
    let free = generate(&m, &tok, None, &prompts(&ids[..1], 0), &greedy(12)).unwrap();
    assert_eq!(free[0].finish_reason, FinishReason::Length);
    assert_eq!(free[0].ids.len(), 12);
    assert_eq!(free[0].text, tok.decode(&free[0].ids, true).unwrap());
    // Stop at the third generated token: it is kept in ids and left out of the text.
    let stop = free[0].ids[2];
    let first = free[0].ids.iter().position(|&t| t == stop).unwrap();
    let opts = GenerateOptions {
        stop_token_ids: vec![stop],
        ..greedy(12)
    };
    let cut = generate(&m, &tok, None, &prompts(&ids[..1], 0), &opts).unwrap();
    assert_eq!(cut[0].finish_reason, FinishReason::StopToken);
    assert_eq!(cut[0].ids, free[0].ids[..=first].to_vec());
    assert_eq!(
        cut[0].text,
        tok.decode(&free[0].ids[..first], true).unwrap()
    );
}

#[test]
fn stop_strings_cut_the_text_before_them() {
    for name in NAMES {
        let m = model(name, DType::F32);
        let tok = tokenizer(name);
        let ids = prompt_ids(name);
        let free = generate(&m, &tok, None, &prompts(&ids, 0), &greedy(12)).unwrap();
        // A stop string taken from the middle of one row's text (a few characters that start
        // after its first character, so the cut text is non-trivial).
        let (row, text) = free
            .iter()
            .enumerate()
            .map(|(i, g)| (i, g.text.clone()))
            .find(|(_, t)| t.chars().count() >= 8)
            .expect("some row has text");
        let chars: Vec<char> = text.chars().collect();
        let stop: String = chars[4..7].iter().collect();
        let at = text.find(&stop).unwrap();
        let opts = GenerateOptions {
            stop_strings: vec!["never-generated-xyz".into(), stop.clone()],
            ..greedy(12)
        };
        let cut = generate(&m, &tok, None, &prompts(&ids, 0), &opts).unwrap();
        assert_eq!(cut[row].finish_reason, FinishReason::StopString, "{name}");
        assert_eq!(cut[row].text, text[..at], "{name}");
        // The ids end at the token that completed the stop string.
        let n = cut[row].ids.len();
        assert_eq!(cut[row].ids, free[row].ids[..n].to_vec());
        assert!(tok.decode(&cut[row].ids, true).unwrap().contains(&stop));
        assert!(!tok
            .decode(&cut[row].ids[..n - 1], true)
            .unwrap()
            .contains(&stop));
        // Rows that never produce the string are untouched.
        for (k, (a, b)) in cut.iter().zip(&free).enumerate() {
            if !b.text.contains(&stop) {
                assert_eq!(a, b, "{name} row {k}");
            }
        }
    }
}

#[test]
fn zero_new_tokens_and_bad_requests() {
    let m = model("qwen2", DType::F32);
    let tok = tokenizer("qwen2");
    let ids = prompt_ids("qwen2");
    let none = generate(&m, &tok, None, &prompts(&ids, 0), &greedy(0)).unwrap();
    assert!(none
        .iter()
        .all(|g| g.ids.is_empty() && g.finish_reason == FinishReason::Length));
    let empty: Vec<u32> = Vec::new();
    let too_big = vec![1u32, 768];
    let err = |p: &[u32], o: &GenerateOptions| {
        generate(&m, &tok, None, &[Prompt { ids: p, seed: 0 }], o)
            .unwrap_err()
            .to_string()
    };
    assert!(err(&empty, &greedy(4)).contains("no tokens"));
    assert!(err(&too_big, &greedy(4)).contains("outside the vocabulary"));
    assert!(err(&ids[0], &sampled(-1.0, None, 1.0, 4)).contains("temperature"));
    assert!(err(&ids[0], &sampled(1.0, None, 0.0, 4)).contains("top_p"));
    assert!(err(&ids[0], &sampled(1.0, Some(0), 1.0, 4)).contains("top_k"));
    let o = GenerateOptions {
        stop_strings: vec![String::new()],
        ..greedy(4)
    };
    assert!(err(&ids[0], &o).contains("empty"));
    assert!(generate(&m, &tok, None, &[], &greedy(4)).is_err());
}

#[test]
fn bf16_generation_runs_and_mostly_agrees_with_f32() {
    let name = "qwen2";
    let tok = tokenizer(name);
    let ids = prompt_ids(name);
    let m32 = model(name, DType::F32);
    let m16 = model(name, DType::BF16);
    let a = adapter(name, &m16);
    let g16 = generate(&m16, &tok, Some(&a), &prompts(&ids, 0), &greedy(6)).unwrap();
    let g32 = generate(&m32, &tok, Some(&a), &prompts(&ids, 0), &greedy(6)).unwrap();
    assert!(g16.iter().all(|g| g.ids.len() == 6));
    // bf16 rounding may flip a near tie later on; the first token should agree for most rows.
    let agree = g16
        .iter()
        .zip(&g32)
        .filter(|(a, b)| a.ids[0] == b.ids[0])
        .count();
    assert!(agree * 2 > ids.len(), "only {agree} first tokens agree");
}
