//! Log-likelihood of each request of an item, and whether greedy decoding would produce the
//! continuation (lm-eval's `is_greedy`), from one right-padded forward per item.
//!
//! ```text
//! ll        = Σ_{p=start}^{n−1} log softmax(logits_{p−1})[ids_p]      (f32, as lm-eval)
//! is_greedy = ∀p ≥ start: argmax(logits_{p−1}) = ids_p
//! ```
//!
//! Padding is on the right, so causal attention keeps every row's result independent of the
//! others; the log-probabilities are the model crate's (`ops::lm_head_logprobs`, the same
//! path as `Model::score`).

use candle_core::{DType, Tensor, D};
use lambda_dpo_model::ops::lm_head_logprobs;
use lambda_dpo_model::Model;

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

/// Scores the requests of one item in one forward.
pub fn score_item(
    model: &Model,
    requests: &[EncodedRequest],
    max_length: usize,
) -> Result<Vec<RequestScore>> {
    let inputs = requests
        .iter()
        .map(|r| r.model_input(max_length))
        .collect::<Result<Vec<_>>>()?;
    let b = inputs.len();
    // The last token is only a target: the model sees ids[..n-1].
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
    let e = hidden.dim(D::Minus1)?;
    let m = rows.len();
    let picked = hidden
        .reshape((b * t, e))?
        .index_select(&Tensor::from_vec(rows, m, dev)?, 0)?; // [M, E]
    let normed = model.final_norm(&picked)?; // [M, E]
    let logp: Vec<f32> = lm_head_logprobs(&normed, &model.lm_head, &targets, 256)?.to_vec1()?; // [M]
    let argmax: Vec<u32> = normed
        .matmul(&model.lm_head.t()?)?
        .to_dtype(DType::F32)?
        .argmax(D::Minus1)?
        .to_vec1()?; // [M]
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
