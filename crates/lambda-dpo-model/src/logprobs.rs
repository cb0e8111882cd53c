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
//!
//! [`Model::score_shared`] scores N continuations of one prompt in a single packed forward
//! (prefix sharing): `prompt ++ y_1[..C_1−1] ++ … ++ y_N[..C_N−1]`, each response block at
//! positions restarted after the prompt and attending to the prompt and to itself only.
//!
//! ```text
//! separate: N·(P + C) columns        packed: P + Σ_i (C_i − 1) columns
//! y_i[0]  is predicted by the last prompt column (shared by all N responses)
//! y_i[j]  is predicted by block i's column j−1            (j ≥ 1)
//! ```
//!
//! A response's last token is never an input to anything scored, so it is not run at all.
//!
//! [`Model::score_packed`] runs independent sequences (SFT examples) back to back in one row,
//! positions restarted and attention causal within each, so no padding is computed; with one
//! LoRA dropout seed per sequence ([`Model::score_rows`] does the same for right-padded rows)
//! each sequence draws the masks it would draw alone.

use candle_core::Tensor;

use crate::checkpoint::Checkpointed;
use crate::decoder::{causal_mask, Attention, Model, PackedLayout};
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

/// The rows of a forward's hidden states that are scored, and against what.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    /// Flattened `[B·T]` row of the hidden state that predicts each scored token.
    rows: Vec<u32>,
    /// The token each of those rows is scored on.
    targets: Vec<u32>,
    /// The request each scored token belongs to.
    seq_of: Vec<u32>,
    /// `offsets[s]..offsets[s+1]` are request s's scored tokens.
    offsets: Vec<usize>,
}

/// Everything a scoring forward needs, before any block runs: the input ids, the rotary
/// position and attention pattern of every column, and the scored rows.
pub(crate) struct Plan {
    pub(crate) ids: Tensor, // [B, T]
    pub(crate) positions: Vec<u32>,
    pub(crate) attention: Attention,
    /// One LoRA dropout seed per row of `ids` ([`Model::score_rows`]), or the run's one seed.
    pub(crate) row_seeds: Option<Vec<(usize, u64)>>,
    pub(crate) head: Head,
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
        self.score_rows(requests, lora, None, opts)
    }

    /// [`Model::score`] with one LoRA dropout seed per request: `row_seeds[s]` replaces
    /// `lora.dropout_seed` for request s, whose masks are then exactly those of scoring it
    /// alone with `dropout_seed = Some(row_seeds[s])`. So a batch of independent examples, each
    /// with its own seed, reproduces their one-at-a-time forwards (dropout included) up to
    /// float rounding. `None` is [`Model::score`].
    pub fn score_rows(
        &self,
        requests: &[ScoreRequest<'_>],
        lora: Option<LoraRun<'_>>,
        row_seeds: Option<&[u64]>,
        opts: ScoreOptions,
    ) -> Result<Scored> {
        self.score_plan(self.plan_separate(requests, row_seeds)?, lora, opts)
    }

    /// The forward of a plan with its graph kept, and its scores.
    fn score_plan(
        &self,
        plan: Plan,
        lora: Option<LoraRun<'_>>,
        opts: ScoreOptions,
    ) -> Result<Scored> {
        let hidden = self.run_layers(
            &plan.ids,
            &plan.positions,
            plan.attention,
            plan.row_seeds,
            lora,
        )?; // [B, T, E]
        self.gather_and_score(&hidden, &plan.head, opts)
    }

    /// Scores N continuations of one prompt in one packed forward (see the module docs):
    /// the same [`Scored`] as [`Model::score`] over the requests `prompt ++ continuation_i`
    /// with `start = prompt.len()`, up to float rounding, with the prompt computed once.
    ///
    /// With LoRA dropout on, the prompt's columns get one dropout mask shared by all
    /// continuations (separate forwards draw one per row), so with `dropout > 0` the values are
    /// a different draw from [`Model::score`]'s, not equal to them.
    pub fn score_shared<R: AsRef<[u32]>>(
        &self,
        prompt: &[u32],
        continuations: &[R],
        lora: Option<LoraRun<'_>>,
        opts: ScoreOptions,
    ) -> Result<Scored> {
        self.score_plan(self.plan_shared(prompt, continuations)?, lora, opts)
    }

    /// [`Model::score`] with gradient checkpointing: the forward keeps only each block's input,
    /// and [`Checkpointed::backward`] recomputes one block at a time.
    pub fn score_checkpointed<'a>(
        &'a self,
        requests: &[ScoreRequest<'_>],
        lora: Option<LoraRun<'a>>,
        opts: ScoreOptions,
    ) -> Result<Checkpointed<'a>> {
        self.score_rows_checkpointed(requests, lora, None, opts)
    }

    /// [`Model::score_rows`] with gradient checkpointing (see [`Model::score_checkpointed`]);
    /// the recompute draws the same per-row masks.
    pub fn score_rows_checkpointed<'a>(
        &'a self,
        requests: &[ScoreRequest<'_>],
        lora: Option<LoraRun<'a>>,
        row_seeds: Option<&[u64]>,
        opts: ScoreOptions,
    ) -> Result<Checkpointed<'a>> {
        Checkpointed::forward(self, self.plan_separate(requests, row_seeds)?, lora, opts)
    }

    /// [`Model::score_rows`] with the requests packed into one row instead of right-padded
    /// rows: `ids_0 ++ ids_1 ++ …`, positions restarted at 0 for each, each attending causally
    /// to itself only ([`Attention::Segments`]). The same [`Scored`] up to float rounding,
    /// dropout masks included (`row_seeds[s]` draws request s's masks as if alone), with no
    /// padding computed: `Σ len_s` columns instead of `S · max len_s`.
    pub fn score_packed(
        &self,
        requests: &[ScoreRequest<'_>],
        lora: Option<LoraRun<'_>>,
        row_seeds: Option<&[u64]>,
        opts: ScoreOptions,
    ) -> Result<Scored> {
        self.score_plan(self.plan_packed(requests, row_seeds)?, lora, opts)
    }

    /// [`Model::score_packed`] with gradient checkpointing (see [`Model::score_checkpointed`]).
    pub fn score_packed_checkpointed<'a>(
        &'a self,
        requests: &[ScoreRequest<'_>],
        lora: Option<LoraRun<'a>>,
        row_seeds: Option<&[u64]>,
        opts: ScoreOptions,
    ) -> Result<Checkpointed<'a>> {
        Checkpointed::forward(self, self.plan_packed(requests, row_seeds)?, lora, opts)
    }

    /// The packed row of [`Model::score_packed`]: segment attention, restarted positions.
    fn plan_packed(
        &self,
        requests: &[ScoreRequest<'_>],
        row_seeds: Option<&[u64]>,
    ) -> Result<Plan> {
        // The checks (and the head's targets) of the padded plan; only the layout differs.
        let padded = self.plan_separate(requests, row_seeds)?;
        let t: usize = requests.iter().map(|r| r.ids.len()).sum();
        let mut ids = Vec::with_capacity(t);
        let mut positions = Vec::with_capacity(t);
        let mut segments = Vec::with_capacity(requests.len());
        let mut rows = Vec::with_capacity(padded.head.rows.len());
        for r in requests {
            let start = ids.len();
            ids.extend_from_slice(r.ids);
            positions.extend(0..r.ids.len() as u32);
            segments.push((start, r.ids.len(), causal_mask(r.ids.len(), &self.device)?));
            // Position p−1 of segment s predicts its token p, p = start..len.
            rows.extend((r.start..r.ids.len()).map(|p| (start + p - 1) as u32));
        }
        let row_seeds = row_seeds.map(|seeds| {
            requests
                .iter()
                .zip(seeds)
                .map(|(r, &s)| (r.ids.len(), s))
                .collect()
        });
        Ok(Plan {
            ids: Tensor::from_vec(ids, (1, t), &self.device)?, // [1, T]
            positions,
            attention: Attention::Segments(segments),
            row_seeds,
            head: Head {
                rows,
                ..padded.head
            },
        })
    }

    /// [`Model::score_shared`] with gradient checkpointing (see [`Model::score_checkpointed`]).
    pub fn score_shared_checkpointed<'a, R: AsRef<[u32]>>(
        &'a self,
        prompt: &[u32],
        continuations: &[R],
        lora: Option<LoraRun<'a>>,
        opts: ScoreOptions,
    ) -> Result<Checkpointed<'a>> {
        Checkpointed::forward(self, self.plan_shared(prompt, continuations)?, lora, opts)
    }

    /// The right-padded batch of [`Model::score_rows`], causal attention.
    fn plan_separate(
        &self,
        requests: &[ScoreRequest<'_>],
        row_seeds: Option<&[u64]>,
    ) -> Result<Plan> {
        if requests.is_empty() {
            return Err(ModelError::Input("no sequences to score".into()));
        }
        if let Some(seeds) = row_seeds {
            if seeds.len() != requests.len() {
                return Err(ModelError::Input(format!(
                    "{} dropout seeds for {} sequences; expected one per sequence",
                    seeds.len(),
                    requests.len()
                )));
            }
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
        Ok(Plan {
            ids,
            positions,
            attention: Attention::Mask(causal_mask(t, &self.device)?),
            row_seeds: row_seeds.map(|seeds| seeds.iter().map(|&s| (t, s)).collect()),
            head: Head {
                rows,
                targets,
                seq_of,
                offsets,
            },
        })
    }

    /// The packed prefix-sharing row of [`Model::score_shared`].
    fn plan_shared<R: AsRef<[u32]>>(&self, prompt: &[u32], continuations: &[R]) -> Result<Plan> {
        if continuations.is_empty() {
            return Err(ModelError::Input("no sequences to score".into()));
        }
        let p = prompt.len();
        let vocab = self.config.vocab_size as u32;
        for (i, c) in continuations.iter().enumerate() {
            let c = c.as_ref();
            if p == 0 || c.is_empty() {
                return Err(ModelError::Input(format!(
                    "sequence {i}: completion_start = {p} but the sequence has {} tokens; expected 1 ≤ completion_start < length (the first token has no context to be scored in)",
                    p + c.len()
                )));
            }
            if let Some(bad) = prompt.iter().chain(c).find(|&&t| t >= vocab) {
                return Err(ModelError::Input(format!(
                    "sequence {i}: token id {bad} is outside the vocabulary (size {vocab})"
                )));
            }
        }
        // Block i runs y_i[..C_i−1]: its last token predicts nothing that is scored.
        let layout = PackedLayout {
            prefix: p,
            blocks: continuations.iter().map(|c| c.as_ref().len() - 1).collect(),
        };
        let mut ids = Vec::with_capacity(layout.len());
        ids.extend_from_slice(prompt);
        for c in continuations {
            let c = c.as_ref();
            ids.extend_from_slice(&c[..c.len() - 1]);
        }
        let t = ids.len();
        let ids = Tensor::from_vec(ids, (1, t), &self.device)?; // [1, T]
        let attention = self.packed_attention(&ids, &layout)?;

        // y_i[0] ← the last prompt column (the same row for every i); y_i[j] ← block column j−1.
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        let mut seq_of = Vec::new();
        let mut offsets = vec![0];
        let mut start = p;
        for (s, c) in continuations.iter().enumerate() {
            let c = c.as_ref();
            for (j, &tok) in c.iter().enumerate() {
                rows.push(if j == 0 { p - 1 } else { start + j - 1 } as u32);
                targets.push(tok);
                seq_of.push(s as u32);
            }
            offsets.push(rows.len());
            start += c.len() - 1;
        }
        Ok(Plan {
            ids,
            positions: layout.positions(),
            attention,
            row_seeds: None,
            head: Head {
                rows,
                targets,
                seq_of,
                offsets,
            },
        })
    }

    /// Log-probs of the head's targets from its rows of `hidden: [B, T, E]` (flattened),
    /// summed per sequence: final norm and the chunked lm-head on the gathered rows only.
    pub(crate) fn gather_and_score(
        &self,
        hidden: &Tensor,
        head: &Head,
        opts: ScoreOptions,
    ) -> Result<Scored> {
        let (b, t, e) = hidden.dims3()?;
        let m = head.rows.len();
        let flat = hidden.reshape((b * t, e))?; // [B·T, E]
        let picked = flat.index_select(&Tensor::from_slice(&head.rows, m, &self.device)?, 0)?; // [M, E]
        let normed = self.final_norm(&picked)?; // [M, E]
        let token_logprobs = lm_head_logprobs(
            &normed,
            &self.lm_head,
            &head.targets,
            opts.logit_rows_per_chunk,
            self.fused.lm_head,
        )?; // [M]
        let seq_idx = Tensor::from_slice(&head.seq_of, m, &self.device)?;
        let sums = Tensor::zeros(
            head.offsets.len() - 1,
            candle_core::DType::F32,
            &self.device,
        )?
        .index_add(&seq_idx, &token_logprobs, 0)?; // [S]
        Ok(Scored {
            token_logprobs,
            sums,
            offsets: head.offsets.clone(),
        })
    }
}
