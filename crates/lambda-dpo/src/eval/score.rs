//! Log-likelihood of each request, and whether greedy decoding would produce the
//! continuation (lm-eval's `is_greedy`).
//!
//! ```text
//! ll        = Σ_{p=start}^{n−1} log softmax(logits_{p−1})[ids_p]      (f32, as lm-eval)
//! is_greedy = ∀p ≥ start: argmax(logits_{p−1}) = ids_p
//! ```
//!
//! Two forwards compute it, with the same per-request results up to f32 rounding:
//!
//! ```text
//! padded  (score_item, score_batch)  every request its own row, right-padded to the longest:
//!                                    B rows × max(P + C) − 1 columns
//! shared  (score_item_shared)        one row: context ++ c_1[..C_1−1] ++ … ++ c_N[..C_N−1]
//!                                    (lambda-dpo-model's packed prefix-sharing forward):
//!                                    P + Σ (C_i − 1) columns, the context run once
//! ```
//!
//! The shared forward applies when every request of an item feeds the model the same context
//! tokens, *after* lm-eval's left truncation to `max_length` ([`shared_context`]). Truncation
//! cuts `len(context) + len(continuation) − max_length − 1` tokens, so continuations of
//! different lengths leave different contexts once anything is cut; WSC273 has one context per
//! choice and a shared continuation. Those items take the padded forward.
//!
//! Padding is on the right, so causal attention keeps every row's result independent of the
//! others. The log-probabilities are computed as lambda-dpo-model's `ops::lm_head_logprobs`
//! computes them (f32 logits of the gathered rows, chunk by chunk, the fused log-softmax row
//! kernel on the CPU), and the argmax for `is_greedy` comes from the same logits.

use candle_core::{DType, Tensor, D};
use lambda_dpo_model::{kernels, Model, PackedLayout};

use super::error::Result;
use super::requests::EncodedRequest;

/// What lm-eval records per log-likelihood request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestScore {
    pub ll: f32,
    pub is_greedy: bool,
    /// Tokens cut on the left to fit `max_length`.
    pub truncated_tokens: usize,
}

/// Rows of `[rows, V]` logits materialised at once.
const LOGIT_ROWS_PER_CHUNK: usize = 256;

/// One request as the model sees it ([`EncodedRequest::model_input`]): `ids` (the scored last
/// token included), the index of the first scored token, the tokens cut on the left.
type Input = (Vec<u32>, usize, usize);

fn inputs_of(requests: &[EncodedRequest], max_length: usize) -> Result<Vec<Input>> {
    requests.iter().map(|r| r.model_input(max_length)).collect()
}

/// Scores the requests of one item in one padded forward (one row per request).
pub fn score_item(
    model: &Model,
    requests: &[EncodedRequest],
    max_length: usize,
) -> Result<Vec<RequestScore>> {
    let inputs = inputs_of(requests, max_length)?;
    score_padded(model, &inputs)
}

/// Scores the requests of several items in one padded forward (one row per request, all items'
/// rows together); the result is per item, in order.
pub fn score_batch(
    model: &Model,
    items: &[&[EncodedRequest]],
    max_length: usize,
) -> Result<Vec<Vec<RequestScore>>> {
    let mut inputs = Vec::new();
    for reqs in items {
        inputs.extend(inputs_of(reqs, max_length)?);
    }
    let mut flat = score_padded(model, &inputs)?.into_iter();
    Ok(items
        .iter()
        .map(|reqs| flat.by_ref().take(reqs.len()).collect())
        .collect())
}

/// The context tokens all requests of an item feed the model, when they are the same after
/// left truncation to `max_length` and there are at least two requests (so that sharing saves
/// something); `None` otherwise. Errors as [`EncodedRequest::model_input`].
pub fn shared_context(requests: &[EncodedRequest], max_length: usize) -> Result<Option<Vec<u32>>> {
    if requests.len() < 2 {
        return Ok(None);
    }
    let inputs = inputs_of(requests, max_length)?;
    Ok(shared_prefix(&inputs).map(<[u32]>::to_vec))
}

fn shared_prefix(inputs: &[Input]) -> Option<&[u32]> {
    let (first, rest) = inputs.split_first()?;
    let ctx = &first.0[..first.1];
    rest.iter()
        .all(|(ids, start, _)| &ids[..*start] == ctx)
        .then_some(ctx)
}

/// Scores the requests of one item with the context run once (the packed prefix-sharing
/// forward) when [`shared_context`] finds one, else with [`score_item`]'s padded forward.
/// Either way the result means the same as [`score_item`]'s, up to f32 rounding.
pub fn score_item_shared(
    model: &Model,
    requests: &[EncodedRequest],
    max_length: usize,
) -> Result<Vec<RequestScore>> {
    let inputs = inputs_of(requests, max_length)?;
    match shared_prefix(&inputs) {
        Some(ctx) if inputs.len() >= 2 => score_packed(model, ctx, &inputs),
        _ => score_padded(model, &inputs),
    }
}

/// One packed row: `ctx ++ c_1[..C_1−1] ++ …`, positions restarted after the context, each
/// block attending to the context and to itself (`Model::hidden_states_packed`).
fn score_packed(model: &Model, ctx: &[u32], inputs: &[Input]) -> Result<Vec<RequestScore>> {
    let p = ctx.len();
    let conts: Vec<&[u32]> = inputs
        .iter()
        .map(|(ids, start, _)| &ids[*start..])
        .collect();
    // A continuation's last token is only a target: block i runs c_i[..C_i−1].
    let layout = PackedLayout {
        prefix: p,
        blocks: conts.iter().map(|c| c.len() - 1).collect(),
    };
    let mut ids = Vec::with_capacity(layout.len());
    ids.extend_from_slice(ctx);
    for c in &conts {
        ids.extend_from_slice(&c[..c.len() - 1]);
    }
    let t = ids.len();
    let ids = Tensor::from_vec(ids, (1, t), &model.device)?; // [1, T]
    let hidden = model.hidden_states_packed(&ids, &layout, None)?; // [1, T, E]
                                                                   // c_i[0] ← the last context column (shared); c_i[j] ← block i's column j−1.
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let mut offsets = vec![0];
    let mut block = p;
    for c in &conts {
        for (j, &id) in c.iter().enumerate() {
            rows.push(if j == 0 { p - 1 } else { block + j - 1 } as u32);
            targets.push(id);
        }
        offsets.push(rows.len());
        block += c.len() - 1;
    }
    finish(model, &hidden, rows, &targets, &offsets, inputs)
}

/// One row per request, right-padded to the longest; the last token of each is only a target.
fn score_padded(model: &Model, inputs: &[Input]) -> Result<Vec<RequestScore>> {
    let b = inputs.len();
    let t = inputs
        .iter()
        .map(|(ids, _, _)| ids.len() - 1)
        .max()
        .unwrap_or(0);
    if b == 0 || t == 0 {
        return Ok(Vec::new());
    }
    let mut flat = vec![0u32; b * t];
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let mut offsets = vec![0usize];
    for (s, (ids, start, _)) in inputs.iter().enumerate() {
        let n = ids.len() - 1;
        flat[s * t..s * t + n].copy_from_slice(&ids[..n]);
        for (p, &id) in ids.iter().enumerate().skip(*start) {
            rows.push((s * t + p - 1) as u32);
            targets.push(id);
        }
        offsets.push(rows.len());
    }
    let dev = &model.device;
    let ids = Tensor::from_vec(flat, (b, t), dev)?; // [B, T]
    let positions: Vec<u32> = (0..t as u32).collect();
    let hidden = model.hidden_states(&ids, &positions, None)?; // [B, T, E]
    finish(model, &hidden, rows, &targets, &offsets, inputs)
}

/// Final norm and lm-head on the gathered `rows` of `hidden: [B, T, E]`: per request the sum
/// of the targets' log-probabilities and whether each target is the argmax.
fn finish(
    model: &Model,
    hidden: &Tensor,
    rows: Vec<u32>,
    targets: &[u32],
    offsets: &[usize],
    inputs: &[Input],
) -> Result<Vec<RequestScore>> {
    let (b, t, e) = hidden.dims3()?;
    let m = rows.len();
    let dev = &model.device;
    let picked = hidden
        .reshape((b * t, e))?
        .index_select(&Tensor::from_vec(rows, m, dev)?, 0)?; // [M, E]
    let normed = model.final_norm(&picked)?; // [M, E]
    let head_t = model.lm_head.t()?; // [E, V]
                                     // As ops::lm_head_logprobs: the fused row kernel on the CPU unless turned off.
    let fused = model.fused.lm_head && dev.is_cpu();
    let mut logp = Vec::with_capacity(m);
    let mut argmax = Vec::with_capacity(m);
    let mut start = 0;
    while start < m {
        let len = LOGIT_ROWS_PER_CHUNK.min(m - start);
        let logits = normed
            .narrow(0, start, len)?
            .matmul(&head_t)?
            .to_dtype(DType::F32)?; // [c, V]
        let tgt = &targets[start..start + len];
        let values = if fused {
            kernels::log_softmax_pick(&logits, tgt)? // [c]
        } else {
            let tgt = Tensor::from_slice(tgt, (len, 1), dev)?;
            let picked = logits.gather(&tgt, 1)?.squeeze(1)?; // [c]
            let max = logits.max_keepdim(1)?; // [c, 1]
            let lse = logits
                .broadcast_sub(&max)?
                .exp()?
                .sum_keepdim(1)?
                .log()?
                .add(&max)?
                .squeeze(1)?; // [c]
            (picked - lse)?
        };
        logp.extend(values.to_vec1::<f32>()?);
        argmax.extend(logits.argmax(D::Minus1)?.to_vec1::<u32>()?);
        start += len;
    }
    Ok(inputs
        .iter()
        .enumerate()
        .map(|(s, (_, _, cut))| {
            let span = offsets[s]..offsets[s + 1];
            RequestScore {
                ll: logp[span.clone()]
                    .iter()
                    .map(|&x| f64::from(x))
                    .sum::<f64>() as f32,
                is_greedy: span.clone().all(|i| argmax[i] == targets[i]),
                truncated_tokens: *cut,
            }
        })
        .collect())
}
