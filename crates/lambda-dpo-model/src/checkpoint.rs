//! Gradient checkpointing per decoder block: a training forward that keeps only each block's
//! input, and a backward that recomputes the blocks one at a time from the top.
//!
//! ```text
//! forward   x₀ = embed(ids);  x_ℓ = block_ℓ(x_{ℓ−1})  ℓ = 1..L     (no graph; keep x₀ … x_{L−1}, x_L)
//! head      S = loss(head(x_L))   with x_L a fresh Var             ⇒ G_L = ∂S/∂x_L
//! block ℓ   s_ℓ = Σ block_ℓ(x_{ℓ−1}) ⊙ G_ℓ   with x_{ℓ−1} a fresh Var ⇒ G_{ℓ−1} = ∂S/∂x_{ℓ−1}
//! embedding only when the embeddings are trained (full fine-tuning): Σ embed(ids) ⊙ G₀
//! ```
//!
//! `∂s_ℓ/∂θ_ℓ = G_ℓᵀ ∂x_ℓ/∂θ_ℓ` is exactly block ℓ's share of `∂S/∂θ` (chain rule with the
//! downstream gradient held constant), so the summed gradients equal one backward through the
//! whole graph, up to the order of float additions. Peak memory is one block's activations plus
//! the L + 1 stored `[B, T, E]` hidden states, instead of every block's activations at once,
//! for one more forward of every block. The recomputed block is `Model::block`, the same body
//! as the ordinary forward, with the same [`LoraRun`]: dropout masks are a pure function of
//! (seed, layer, projection, shape), so the recompute draws the masks of the forward.
//!
//! What does not live here: which requests are scored (the plans of [`crate::logprobs`]) and the
//! loss (the caller's closure, e.g. the trainer's `Σ g_i ℓ_i` surrogate).

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::decoder::{Model, Positional};
use crate::error::Result;
use crate::grads::accumulate;
use crate::logprobs::{Plan, ScoreOptions, Scored};
use crate::lora::LoraRun;

/// A scoring forward run with gradient checkpointing ([`Model::score_checkpointed`],
/// [`Model::score_shared_checkpointed`]): the log-probs (no graph) and what
/// [`Checkpointed::backward`] needs to recompute them block by block.
#[derive(Debug)]
pub struct Checkpointed<'a> {
    model: &'a Model,
    lora: Option<LoraRun<'a>>,
    plan_ids: Tensor, // [B, T]
    head: crate::logprobs::Head,
    opts: ScoreOptions,
    pos: Positional,
    /// Input of block ℓ (`x_{ℓ−1}`, detached), ℓ = 0..L: `L × [B, T, E]`.
    inputs: Vec<Tensor>,
    /// Output of the last block (`x_L`, detached): `[B, T, E]`.
    top: Tensor,
    scored: Scored,
}

impl<'a> Checkpointed<'a> {
    /// Runs the forward block by block, detaching every block's output so no graph outlives
    /// its block, and scores the top hidden state.
    pub(crate) fn forward(
        model: &'a Model,
        plan: Plan,
        lora: Option<LoraRun<'a>>,
        opts: ScoreOptions,
    ) -> Result<Self> {
        let pos = model.positional(&plan.ids, &plan.positions, plan.attention, plan.row_seeds)?;
        let mut x = model.embed(&plan.ids)?.detach(); // [B, T, E]
        let mut inputs = Vec::with_capacity(model.layers.len());
        for i in 0..model.layers.len() {
            let y = model.block(i, &x, &pos, lora)?.detach(); // [B, T, E]
            inputs.push(std::mem::replace(&mut x, y));
        }
        let s = model.gather_and_score(&x, &plan.head, opts)?;
        let scored = Scored {
            token_logprobs: s.token_logprobs.detach(),
            sums: s.sums.detach(),
            offsets: s.offsets,
        };
        Ok(Self {
            model,
            lora,
            plan_ids: plan.ids,
            head: plan.head,
            opts,
            pos,
            inputs,
            top: x,
            scored,
        })
    }

    /// The log-probs of the forward (no graph).
    pub fn scored(&self) -> &Scored {
        &self.scored
    }

    /// `∂S/∂v` for every `v` in `vars` (in order; `None` where S does not depend on it), where
    /// `S = loss(scored)` and `scored` is recomputed with a graph from the top hidden state.
    /// The gradients are detached. Consumes the stored hidden states as it goes down.
    pub fn backward(
        mut self,
        loss: impl FnOnce(&Scored) -> candle_core::Result<Tensor>,
        vars: &[Var],
    ) -> Result<Vec<Option<Tensor>>> {
        let model = self.model;
        let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
        // The head: final norm and lm-head over the scored rows, then the caller's loss.
        let top = Var::from_tensor(&self.top)?;
        let scored = model.gather_and_score(top.as_tensor(), &self.head, self.opts)?;
        let store = loss(&scored)?.backward()?;
        drop(scored);
        let mut g = input_grad(&store, &top, &mut grads, vars)?; // G_L [B, T, E]
        drop(top);
        // Blocks L..1: rebuild block ℓ's graph only, from its stored input.
        for i in (0..model.layers.len()).rev() {
            let x_in = self.inputs.pop().expect("one stored input per block");
            let x = Var::from_tensor(&x_in)?;
            drop(x_in);
            let y = model.block(i, x.as_tensor(), &self.pos, self.lora)?; // [B, T, E]
            let store = (y * &g)?.sum_all()?.backward()?;
            g = input_grad(&store, &x, &mut grads, vars)?; // G_{ℓ−1}
        }
        // The embedding has a gradient only when it is trained (full fine-tuning).
        if model.embed_tokens.is_variable() {
            let store = (model.embed(&self.plan_ids)? * &g)?.sum_all()?.backward()?;
            accumulate(&store, &mut grads, vars)?;
        }
        Ok(grads)
    }
}

/// Adds this stage's gradients of `vars` into `grads` and returns `∂/∂x` (detached; zeros when
/// the stage did not depend on `x`).
fn input_grad(
    store: &GradStore,
    x: &Var,
    grads: &mut [Option<Tensor>],
    vars: &[Var],
) -> Result<Tensor> {
    accumulate(store, grads, vars)?;
    Ok(match store.get(x.as_tensor()) {
        Some(g) => g.detach(),
        None => x.as_tensor().zeros_like()?,
    })
}
