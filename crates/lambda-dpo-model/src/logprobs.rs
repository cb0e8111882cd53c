//! Per-token and per-sequence log-probabilities of completions, with a graph when the adapter
//! is being trained.
//!
//! ```text
//! ℓ(y | x) = Σ_{t=k}^{n−1} log π(ids_t | ids_<t)        (a request scores ids[k..n], k ≥ 1)
//! ```
//!
//! Logits are computed only at the positions that predict a scored token (the hidden state at
//! t−1 predicts token t), after gathering those rows, so prompt positions never touch the
//! vocabulary matrix; log-softmax is in f32 and chunked (see [`crate::ops::lm_head_logprobs`]).

use candle_core::{Tensor, D};

use crate::decoder::Model;
use crate::error::{ModelError, Result};
use crate::lora::LoraRun;
use crate::ops::lm_head_logprobs;

/// One sequence to score: the tokens `ids[start..]`, each conditioned on everything before it.
#[derive(Debug, Clone, Copy)]
pub struct ScoreRequest<'a> {
    pub ids: &'a [u32],
    pub start: usize,
}

/// Log-probabilities of a batch of requests.
#[derive(Debug, Clone)]
pub struct Scored {
    /// `[M]` f32: every scored token of every request, request after request.
    pub token_logprobs: Tensor,
    /// `[S]` f32: per-request sums (differentiable when the forward had a graph).
    pub sums: Tensor,
    /// `offsets[s]..offsets[s+1]` are request s's entries in `token_logprobs`.
    pub offsets: Vec<usize>,
}

impl Scored {
    /// Number of scored tokens of each request.
    pub fn lengths(&self) -> Vec<usize> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Settings of a scoring pass.
#[derive(Debug, Clone, Copy)]
pub struct ScoreOptions {
    /// Rows of `[rows, V]` logits materialised at once.
    pub logit_rows_per_chunk: usize,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            logit_rows_per_chunk: 256,
        }
    }
}

impl Model {
    /// Scores `requests` in one right-padded forward. With a [`LoraRun`] whose adapter vars are
    /// being trained, `sums` carries the graph back to them.
    pub fn score(
        &self,
        requests: &[ScoreRequest<'_>],
        lora: Option<LoraRun<'_>>,
        opts: ScoreOptions,
    ) -> Result<Scored> {
        if requests.is_empty() {
            return Err(ModelError::Input("no sequences to score".into()));
        }
        let vocab = self.config.vocab_size as u32;
        for (i, r) in requests.iter().enumerate() {
            if r.start == 0 || r.start >= r.ids.len() {
                return Err(ModelError::Input(format!(
                    "sequence {i}: completion_start = {} but the sequence has {} tokens; expected 1 ≤ completion_start < length (the first token has no context to be scored in)",
                    r.start,
                    r.ids.len()
                )));
            }
            if let Some(bad) = r.ids.iter().find(|&&t| t >= vocab) {
                return Err(ModelError::Input(format!(
                    "sequence {i}: token id {bad} is outside the vocabulary (size {vocab})"
                )));
            }
        }
        let b = requests.len();
        let t = requests
            .iter()
            .map(|r| r.ids.len())
            .max()
            .expect("non-empty");
        // Right-padded ids; the pad value is irrelevant (causal attention never looks right).
        let mut ids = vec![0u32; b * t];
        for (row, r) in requests.iter().enumerate() {
            ids[row * t..row * t + r.ids.len()].copy_from_slice(r.ids);
        }
        let ids = Tensor::from_vec(ids, (b, t), &self.device)?; // [B, T]
        let positions: Vec<u32> = (0..t as u32).collect();
        let hidden = self.hidden_states(&ids, &positions, lora)?; // [B, T, E]

        // Rows that predict a scored token: position p−1 predicts ids[p], p = start..len.
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        let mut seq_of = Vec::new();
        let mut offsets = vec![0];
        for (s, r) in requests.iter().enumerate() {
            for p in r.start..r.ids.len() {
                rows.push((s * t + p - 1) as u32);
                targets.push(r.ids[p]);
                seq_of.push(s as u32);
            }
            offsets.push(rows.len());
        }
        let m = rows.len();
        let flat = hidden.reshape((b * t, hidden.dim(D::Minus1)?))?; // [B·T, E]
        let picked = flat.index_select(&Tensor::from_vec(rows, m, &self.device)?, 0)?; // [M, E]
        let normed = self.final_norm(&picked)?; // [M, E]
        let token_logprobs =
            lm_head_logprobs(&normed, &self.lm_head, &targets, opts.logit_rows_per_chunk)?; // [M]
        let seq_idx = Tensor::from_vec(seq_of, m, &self.device)?;
        let sums = Tensor::zeros(b, candle_core::DType::F32, &self.device)?.index_add(
            &seq_idx,
            &token_logprobs,
            0,
        )?; // [S]
        Ok(Scored {
            token_logprobs,
            sums,
            offsets,
        })
    }
}
