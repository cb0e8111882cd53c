//! Text generation: batched, KV-cached decoding with greedy or seeded sampling.
//!
//! What lives here: the decoding loop ([`generate`]), the sampling rules (temperature, top-k,
//! top-p, as transformers applies them), stop conditions (stop token ids, stop strings) and the
//! stop ids a model folder declares ([`stop_token_ids`]). What does not: the cached forward
//! itself ([`Model::forward_cached`] in `decoder.rs`), chat rendering (the caller turns messages
//! into prompt ids), and combining adapters (`soup.rs`).
//!
//! ```text
//! prefill   ids [B, P] left-padded, row b starts at column pad_b = P − len_b
//!           position(b, c) = c − pad_b;  key j visible to query i  ⇔  pad_b ≤ j ≤ i  (or j = i)
//! step n    ids [B', 1] = the last sampled token of every unfinished row, one cache column more
//! choose    greedy: argmax (first maximum)          — temperature 0
//!           sample: l/T → keep l ≥ k-th largest → keep the smallest top set with Σp ≥ top_p
//!                   → draw u ~ U[0,1) from the row's own SplitMix64
//! finish    stop token (kept in `ids`) | stop string in the decoded text (text cut before it)
//!           | max_new_tokens
//! ```
//!
//! A finished row leaves the batch (its cache rows are dropped), and each row samples from its
//! own RNG with one draw per step, so a row's result does not depend on which other rows share
//! its batch: batched generation gives the same tokens as one prompt at a time (the logits agree
//! to float rounding; the matrix kernels may sum in a different order for another batch shape).

use std::path::Path;

use candle_core::Tensor;
use serde::Deserialize;
use serde_json::Value;

use crate::config::ModelConfig;
use crate::decoder::{KvCache, Model};
use crate::error::{ModelError, Result};
use crate::lora::{Adapter, SplitMix64};
use crate::tokenizer::Tokenizer;

/// How the next token is chosen from the logits. `temperature = 0` is greedy decoding
/// (transformers `do_sample=False`); otherwise the warpers run in transformers' order:
/// temperature, then top-k, then top-p, and at least one token always survives.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Softmax temperature T ≥ 0; 0 = greedy (default).
    pub temperature: f64,
    /// Keep only tokens whose logit is at least the k-th largest (ties at the k-th value are
    /// all kept, as `TopKLogitsWarper` does). `None`: no top-k filter.
    pub top_k: Option<usize>,
    /// Nucleus: keep the most probable tokens whose cumulative probability reaches `top_p`
    /// (`TopPLogitsWarper`, on the top-k survivors). 1.0 = no filter (default).
    pub top_p: f64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: 1.0,
        }
    }
}

impl SamplingConfig {
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(ModelError::Input(format!(
                "temperature = {}; expected a finite value ≥ 0 (0 = greedy)",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(ModelError::Input(
                "top_k = 0; expected ≥ 1 (or no top-k filter)".into(),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::Input(format!(
                "top_p = {}; expected 0 < top_p ≤ 1 (1 = no nucleus filter)",
                self.top_p
            )));
        }
        Ok(())
    }
}

/// Settings of one generation call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Most tokens generated per prompt (the stop token, if reached, counts as one).
    pub max_new_tokens: usize,
    pub sampling: SamplingConfig,
    /// Token ids that end a row when sampled (the model's eos ids and the chat template's
    /// end-of-turn token; see [`stop_token_ids`]). The stop token is kept in
    /// [`Generation::ids`] and left out of [`Generation::text`].
    pub stop_token_ids: Vec<u32>,
    /// Strings that end a row when they appear in its decoded text; the text is cut before the
    /// earliest one.
    pub stop_strings: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            sampling: SamplingConfig::default(),
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
        }
    }
}

/// One prompt to continue: its token ids (already rendered and tokenized) and the seed of its
/// own sampling RNG (unused when greedy). Use [`row_seed`] to derive per-prompt seeds from one
/// run seed so that results do not depend on batching or order.
#[derive(Debug, Clone, Copy)]
pub struct Prompt<'a> {
    pub ids: &'a [u32],
    pub seed: u64,
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A token of [`GenerateOptions::stop_token_ids`] was generated.
    StopToken,
    /// A [`GenerateOptions::stop_strings`] entry appeared in the decoded text.
    StopString,
    /// `max_new_tokens` tokens were generated.
    Length,
}

impl FinishReason {
    /// `stop_token`, `stop_string` or `length` (the CLI's `finish_reason` field).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::StopToken => "stop_token",
            FinishReason::StopString => "stop_string",
            FinishReason::Length => "length",
        }
    }
}

/// The result for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Every generated token, including a final stop token.
    pub ids: Vec<u32>,
    /// The generated tokens decoded with special tokens skipped, without a final stop token,
    /// and cut before a stop string.
    pub text: String,
    pub finish_reason: FinishReason,
}

/// A per-prompt seed from a run seed and the prompt's index in its input: rows sample
/// independently, and a prompt's result does not depend on the batch it lands in.
pub fn row_seed(seed: u64, index: u64) -> u64 {
    let mut rng = SplitMix64(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.next_u64()
}

/// The stop token ids a model folder declares: `eos_token_id` of `generation_config.json`
/// (what `model.generate` uses; `config.json`'s when that file is absent), plus the tokenizer's
/// `eos_token` (the chat template's end-of-turn token, e.g. `<|eot_id|>`, `<|im_end|>`, which
/// some checkpoints leave out of the configs). Deduplicated, in that order.
pub fn stop_token_ids(
    model_dir: &Path,
    config: &ModelConfig,
    tokenizer: &Tokenizer,
) -> Result<Vec<u32>> {
    let path = model_dir.join("generation_config.json");
    let mut ids = if path.is_file() {
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let raw: HfGenerationConfig =
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: path.clone(),
                source,
            })?;
        match raw.eos_token_id {
            Some(v) => token_ids(&v).ok_or_else(|| ModelError::Config {
                path: path.clone(),
                field: "eos_token_id".into(),
                message: format!("expected a token id or a list of token ids, found {v}"),
            })?,
            None => config.eos_token_ids.clone(),
        }
    } else {
        config.eos_token_ids.clone()
    };
    if let Some(id) = tokenizer
        .eos_token
        .as_deref()
        .and_then(|t| tokenizer.token_to_id(t))
    {
        ids.push(id);
    }
    let mut seen = Vec::with_capacity(ids.len());
    ids.retain(|id| {
        let new = !seen.contains(id);
        seen.push(*id);
        new
    });
    Ok(ids)
}

/// `generation_config.json` (the one field read here).
#[derive(Debug, Deserialize)]
struct HfGenerationConfig {
    #[serde(default)]
    eos_token_id: Option<Value>,
}

/// An integer, a list of integers, or null (no ids).
fn token_ids(v: &Value) -> Option<Vec<u32>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Number(n) => n.as_u64().map(|x| vec![x as u32]),
        Value::Array(a) => a.iter().map(|x| x.as_u64().map(|x| x as u32)).collect(),
        _ => None,
    }
}

/// Generates a continuation of every prompt, all in one batch (see the module doc).
pub fn generate(
    model: &Model,
    tokenizer: &Tokenizer,
    adapter: Option<&Adapter>,
    prompts: &[Prompt<'_>],
    opts: &GenerateOptions,
) -> Result<Vec<Generation>> {
    generate_with_progress(model, tokenizer, adapter, prompts, opts, &mut |_| {})
}

/// [`generate`], calling `on_tokens(n)` after every decoding step with the number of tokens
/// that step produced (for progress bars and tokens/s).
pub fn generate_with_progress(
    model: &Model,
    tokenizer: &Tokenizer,
    adapter: Option<&Adapter>,
    prompts: &[Prompt<'_>],
    opts: &GenerateOptions,
    on_tokens: &mut dyn FnMut(usize),
) -> Result<Vec<Generation>> {
    opts.sampling.validate()?;
    if prompts.is_empty() {
        return Err(ModelError::Input("no prompts to generate from".into()));
    }
    if let Some(i) = opts.stop_strings.iter().position(|s| s.is_empty()) {
        return Err(ModelError::Input(format!(
            "stop string {i} is empty; it would stop every row before its first token"
        )));
    }
    let vocab = model.config.vocab_size as u32;
    for (i, p) in prompts.iter().enumerate() {
        if p.ids.is_empty() {
            return Err(ModelError::Input(format!(
                "prompt {i} has no tokens; the first generated token needs context"
            )));
        }
        if let Some(bad) = p.ids.iter().find(|&&t| t >= vocab) {
            return Err(ModelError::Input(format!(
                "prompt {i}: token id {bad} is outside the vocabulary (size {vocab})"
            )));
        }
    }
    if opts.max_new_tokens == 0 {
        return Ok(prompts
            .iter()
            .map(|_| Generation {
                ids: Vec::new(),
                text: String::new(),
                finish_reason: FinishReason::Length,
            })
            .collect());
    }

    let b = prompts.len();
    let p = prompts
        .iter()
        .map(|q| q.ids.len())
        .max()
        .expect("non-empty");
    let dev = &model.device;
    // The last sampled token is never fed back, so P + max_new_tokens − 1 columns suffice.
    let mut cache = KvCache::new(model, b, p + opts.max_new_tokens - 1)?;
    let mut active: Vec<Row> = prompts
        .iter()
        .enumerate()
        .map(|(index, q)| Row {
            index,
            pad: p - q.ids.len(),
            rng: SplitMix64(q.seed),
            ids: Vec::new(),
        })
        .collect();

    // Prefill: left-padded prompts, so every row's last prompt token is column P − 1 and its
    // logits are the last column's. The pad id is irrelevant: pad keys are masked out.
    let mut ids = vec![0u32; b * p];
    let mut positions = vec![0u32; b * p];
    for (row, q) in active.iter().zip(prompts) {
        let r = row.index;
        ids[r * p + row.pad..(r + 1) * p].copy_from_slice(q.ids);
        for c in row.pad..p {
            positions[r * p + c] = (c - row.pad) as u32;
        }
    }
    let ids = Tensor::from_vec(ids, (b, p), dev)?; // [B, P]
    let mask = padding_mask(&active, p, 0, dev)?; // [B, 1, P, P] or None
    let mut logits = model.forward_cached(&ids, &positions, mask.as_ref(), &mut cache, adapter)?; // [B, V]

    let mut results: Vec<Option<Generation>> = vec![None; b];
    loop {
        let rows: Vec<Vec<f32>> = logits.to_vec2()?; // [B', V]
        let mut keep = Vec::with_capacity(active.len());
        for (j, row) in active.iter_mut().enumerate() {
            let tok = choose_token(&rows[j], &opts.sampling, &mut row.rng)?;
            row.ids.push(tok);
            match finish(row, tokenizer, opts)? {
                Some(done) => results[row.index] = Some(done),
                None => keep.push(j),
            }
        }
        on_tokens(active.len());
        if keep.is_empty() {
            break;
        }
        if keep.len() < active.len() {
            // Finished rows leave the batch: they cost nothing more and cannot influence the
            // others (the survivors' cache rows are copied unchanged).
            cache.select_rows(&keep)?;
            let mut kept = keep.iter().peekable();
            let mut j = 0;
            active.retain(|_| {
                let stay = kept.peek() == Some(&&j);
                if stay {
                    kept.next();
                }
                j += 1;
                stay
            });
        }
        let start = cache.len();
        let last: Vec<u32> = active
            .iter()
            .map(|r| *r.ids.last().expect("one token"))
            .collect();
        let positions: Vec<u32> = active.iter().map(|r| (start - r.pad) as u32).collect();
        let n = active.len();
        let ids = Tensor::from_vec(last, (n, 1), dev)?; // [B', 1]
        let mask = padding_mask(&active, 1, start, dev)?; // [B', 1, 1, S] or None
        logits = model.forward_cached(&ids, &positions, mask.as_ref(), &mut cache, adapter)?;
        // [B', V]
    }
    Ok(results
        .into_iter()
        .map(|g| g.expect("every row finishes"))
        .collect())
}

/// Decoding state of one prompt.
#[derive(Debug)]
struct Row {
    /// Position of the prompt in the caller's slice.
    index: usize,
    /// Left-padding columns in front of the prompt.
    pad: usize,
    rng: SplitMix64,
    ids: Vec<u32>,
}

/// Additive mask `[B, 1, T, S]` (S = offset + T) for left-padded rows: query i (at column
/// offset + i) sees key j iff `pad ≤ j ≤ offset + i`, and always itself, so that the queries
/// of pad columns have one finite score and never turn into NaN (their outputs are never
/// read). `None` when no row is padded: plain causal attention is then exact.
fn padding_mask(
    rows: &[Row],
    t: usize,
    offset: usize,
    dev: &candle_core::Device,
) -> Result<Option<Tensor>> {
    if rows.iter().all(|r| r.pad == 0) {
        return Ok(None);
    }
    let s = offset + t;
    let mut v = vec![0f32; rows.len() * t * s];
    for (b, row) in rows.iter().enumerate() {
        for i in 0..t {
            let q = offset + i;
            for j in 0..s {
                if j > q || (j < row.pad && j != q) {
                    v[(b * t + i) * s + j] = f32::NEG_INFINITY;
                }
            }
        }
    }
    Ok(Some(Tensor::from_vec(v, (rows.len(), 1, t, s), dev)?))
}

/// Whether `row` is finished after its latest token, and its result if so.
fn finish(row: &Row, tokenizer: &Tokenizer, opts: &GenerateOptions) -> Result<Option<Generation>> {
    let last = *row.ids.last().expect("one token");
    if opts.stop_token_ids.contains(&last) {
        let text = tokenizer.decode(&row.ids[..row.ids.len() - 1], true)?;
        return Ok(Some(done(row, text, FinishReason::StopToken)));
    }
    if !opts.stop_strings.is_empty() {
        // Decoding the whole row each step is O(n²) in characters but trivial next to a
        // forward, and it is the only exact way: a stop string may span token boundaries.
        let text = tokenizer.decode(&row.ids, true)?;
        let first = opts
            .stop_strings
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min();
        if let Some(cut) = first {
            return Ok(Some(done(
                row,
                text[..cut].to_string(),
                FinishReason::StopString,
            )));
        }
        if row.ids.len() >= opts.max_new_tokens {
            return Ok(Some(done(row, text, FinishReason::Length)));
        }
        return Ok(None);
    }
    if row.ids.len() >= opts.max_new_tokens {
        let text = tokenizer.decode(&row.ids, true)?;
        return Ok(Some(done(row, text, FinishReason::Length)));
    }
    Ok(None)
}

fn done(row: &Row, text: String, finish_reason: FinishReason) -> Generation {
    Generation {
        ids: row.ids.clone(),
        text,
        finish_reason,
    }
}

/// Picks the next token from one row of logits `[V]` (see [`SamplingConfig`]).
fn choose_token(logits: &[f32], cfg: &SamplingConfig, rng: &mut SplitMix64) -> Result<u32> {
    if logits.iter().any(|x| x.is_nan()) {
        return Err(ModelError::Input(
            "the model produced NaN logits; nothing can be sampled\nhint: check the weights (and try --dtype f32)".into(),
        ));
    }
    if cfg.is_greedy() {
        // First maximum, as torch.argmax.
        let mut best = 0;
        for (i, &x) in logits.iter().enumerate() {
            if x > logits[best] {
                best = i;
            }
        }
        return Ok(best as u32);
    }
    // TemperatureLogitsWarper: scores / T (in f32, as transformers).
    let t = cfg.temperature as f32;
    let scaled: Vec<f32> = logits.iter().map(|&x| x / t).collect();
    // TopKLogitsWarper: remove scores < the k-th largest, so ties with it survive.
    let mut cand: Vec<u32> = match cfg.top_k {
        Some(k) if k < scaled.len() => {
            let mut order: Vec<u32> = (0..scaled.len() as u32).collect();
            order.select_nth_unstable_by(k - 1, |&a, &b| {
                scaled[b as usize].total_cmp(&scaled[a as usize])
            });
            let kth = scaled[order[k - 1] as usize];
            (0..scaled.len() as u32)
                .filter(|&i| scaled[i as usize] >= kth)
                .collect()
        }
        _ => (0..scaled.len() as u32)
            .filter(|&i| scaled[i as usize] > f32::NEG_INFINITY)
            .collect(),
    };
    if cand.is_empty() {
        return Err(ModelError::Input(
            "every logit is −∞; nothing can be sampled".into(),
        ));
    }
    // Softmax over the survivors, in f64.
    let max = cand
        .iter()
        .map(|&i| scaled[i as usize])
        .fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut weight: Vec<f64> = cand
        .iter()
        .map(|&i| (scaled[i as usize] as f64 - max).exp())
        .collect();
    let total: f64 = weight.iter().sum();
    if cfg.top_p < 1.0 {
        // TopPLogitsWarper: sort ascending, drop the prefix whose cumulative probability is
        // ≤ 1 − top_p, always keep the most probable token.
        let mut order: Vec<usize> = (0..cand.len()).collect();
        order.sort_by(|&a, &b| weight[a].total_cmp(&weight[b]).then(cand[b].cmp(&cand[a])));
        let mut drop = vec![false; cand.len()];
        let mut cum = 0.0;
        for &o in &order[..order.len() - 1] {
            cum += weight[o] / total;
            if cum <= 1.0 - cfg.top_p {
                drop[o] = true;
            } else {
                break;
            }
        }
        let mut k = 0;
        cand.retain(|_| {
            k += 1;
            !drop[k - 1]
        });
        let mut k = 0;
        weight.retain(|_| {
            k += 1;
            !drop[k - 1]
        });
    }
    // Inverse-CDF draw over the survivors in token-id order: one u per step, so the stream of
    // draws of a row is fixed by its seed alone.
    let total: f64 = weight.iter().sum();
    let u = rng.next_f64() * total;
    let mut cum = 0.0;
    for (&tok, &w) in cand.iter().zip(&weight) {
        cum += w;
        if u < cum {
            return Ok(tok);
        }
    }
    Ok(*cand.last().expect("non-empty"))
}

/// Greedy logits helper for tests and tools: the f32 logits of the last position of one
/// sequence by a full, uncached forward (`hidden_states` → final norm → lm head), `[V]`.
pub fn last_logits_uncached(
    model: &Model,
    ids: &[u32],
    adapter: Option<&Adapter>,
) -> Result<Vec<f32>> {
    let t = ids.len();
    if t == 0 {
        return Err(ModelError::Input("no tokens".into()));
    }
    let x = Tensor::from_slice(ids, (1, t), &model.device)?; // [1, T]
    let positions: Vec<u32> = (0..t as u32).collect();
    let lora = adapter.map(|adapter| crate::lora::LoraRun {
        adapter,
        dropout_seed: None,
    });
    let h = model.hidden_states(&x, &positions, lora)?.detach(); // [1, T, E]
    let last = h.narrow(1, t - 1, 1)?.squeeze(1)?; // [1, E]
    let logits = model
        .final_norm(&last)?
        .matmul(&model.lm_head.t()?)?
        .to_dtype(candle_core::DType::F32)?; // [1, V]
    Ok(logits.squeeze(0)?.to_vec1()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(t: f64, k: Option<usize>, p: f64) -> SamplingConfig {
        SamplingConfig {
            temperature: t,
            top_k: k,
            top_p: p,
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut rng = SplitMix64(0);
        let l = [0.0, 2.0, 1.0, 2.0];
        assert_eq!(choose_token(&l, &cfg(0.0, None, 1.0), &mut rng).unwrap(), 1);
    }

    #[test]
    fn top_k_keeps_ties_and_top_p_keeps_the_nucleus() {
        // Probabilities ∝ e^x; top-k 2 with a tie at the 2nd value keeps three tokens.
        let l = [3.0, 1.0, 1.0, -5.0];
        let mut seen = [false; 4];
        let mut rng = SplitMix64(7);
        for _ in 0..2000 {
            let t = choose_token(&l, &cfg(1.0, Some(2), 1.0), &mut rng).unwrap();
            seen[t as usize] = true;
        }
        assert_eq!(seen, [true, true, true, false]);
        // top_p = 0.5: token 0 alone has p ≈ 0.78 ≥ 0.5, so it is the whole nucleus.
        for _ in 0..200 {
            assert_eq!(choose_token(&l, &cfg(1.0, None, 0.5), &mut rng).unwrap(), 0);
        }
    }

    #[test]
    fn sampling_frequencies_follow_the_softmax() {
        let l = [0.0f32, (2.0f32).ln(), (5.0f32).ln()]; // p = 1/8, 2/8, 5/8
        let mut counts = [0usize; 3];
        let mut rng = SplitMix64(42);
        let n = 40_000;
        for _ in 0..n {
            counts[choose_token(&l, &cfg(1.0, None, 1.0), &mut rng).unwrap() as usize] += 1;
        }
        for (c, p) in counts.iter().zip([0.125, 0.25, 0.625]) {
            assert!((*c as f64 / n as f64 - p).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn invalid_settings_are_rejected() {
        assert!(cfg(-1.0, None, 1.0).validate().is_err());
        assert!(cfg(1.0, Some(0), 1.0).validate().is_err());
        assert!(cfg(1.0, None, 0.0).validate().is_err());
        assert!(cfg(1.0, None, 1.5).validate().is_err());
        assert!(cfg(f64::NAN, None, 1.0).validate().is_err());
    }
}
