//! One preference list through the model: policy log-probs with a graph, reference log-probs,
//! the loss and `∂L/∂ℓ` from the math crate, and the surrogate backward (DESIGN.md §2).
//!
//! ```text
//! g_i = ∂L/∂ℓ_θ(y_i)            (math crate, exact, f64)
//! surrogate = scale · Σ_i g_i · ℓ_θ(y_i)      (g detached)  ⇒  ∇_θ surrogate = scale · ∇_θ L
//! ```
//!
//! With `chunk_size < N` the list is processed in two passes (GradCache): first every chunk
//! without keeping its graph to get all ℓ_θ and hence g, then each chunk again with a graph,
//! back-propagating its share of the surrogate — peak memory is one chunk's activations. LoRA
//! dropout masks are a pure function of (seed, chunk), so both passes see identical masks and the
//! result equals the one-pass gradient.
//!
//! With `prefix_sharing` every forward (policy, and a reference computed here) runs the prompt
//! once and the chunk's responses after it in one packed sequence ([`Model::score_shared`]);
//! the values equal separate forwards up to float rounding. With `chunk_size < N` each chunk is
//! its own packed forward, so the prompt is run once per chunk and per pass.
//!
//! With `gradient_checkpointing` the policy forwards keep only every decoder block's input
//! ([`Model::score_checkpointed`]), and the backward of each chunk recomputes one block at a time
//! from the top ([`lambda_dpo_model::checkpoint`]): peak memory is one block's activations plus
//! L + 1 hidden states per chunk, for one more forward of every block. The same dropout masks,
//! the same gradients up to float rounding; composes with `chunk_size` and `prefix_sharing`.

use candle_core::{DType, Tensor, Var};
use lambda_dpo_math::{LossInput, LossOutput, Objective, Target};
use lambda_dpo_model::grads::{add_grads, backward_grads, dense_grads};
use lambda_dpo_model::{Adapter, Checkpointed, LoraRun, Model, ScoreOptions, ScoreRequest};

use crate::train::error::TrainResult;

/// Where the reference log-probs `ℓ_ref` come from for one list.
#[derive(Debug, Clone, Copy)]
pub enum Reference<'a> {
    /// The same model with the adapter disabled (no second copy of the weights).
    DisabledAdapter,
    /// A separate model (e.g. the SFT model), run without adapter.
    Model(&'a Model),
    /// Precomputed values (the reference cache), one per response.
    Given(&'a [f64]),
    /// Reference-free: `ℓ_ref = 0` (the authors' LoRA runs; SimPO/ORPO ignore it anyway).
    None,
}

/// One preference list: a prompt and N responses (token ids), and its target.
#[derive(Debug, Clone, Copy)]
pub struct ListInput<'a> {
    pub prompt: &'a [u32],
    pub responses: &'a [Vec<u32>],
    pub target: &'a Target,
}

/// Settings of one list step.
#[derive(Debug, Clone, Copy)]
pub struct StepOptions {
    /// Responses per forward; `≥ N` is the one-pass path.
    pub chunk_size: usize,
    /// LoRA dropout seed for this list (`None`: no dropout, e.g. evaluation).
    pub dropout_seed: Option<u64>,
    /// Multiplies the gradient (1 / gradient-accumulation steps).
    pub grad_scale: f64,
    /// `false` for evaluation: loss and statistics only, no graph kept, no gradients.
    pub backward: bool,
    pub score: ScoreOptions,
    /// Run the prompt once per forward, with the responses packed after it (block attention,
    /// restarted positions) instead of once per response (`train.prefix_sharing`).
    pub prefix_sharing: bool,
    /// Keep only each decoder block's input in the policy forward and recompute the blocks one
    /// at a time in the backward (`train.gradient_checkpointing`).
    pub gradient_checkpointing: bool,
}

/// What one list produced.
#[derive(Debug)]
pub struct ListStep {
    pub output: LossOutput,
    pub policy_logps: Vec<f64>,
    pub reference_logps: Option<Vec<f64>>,
    pub lengths: Vec<usize>,
    /// `scale · ∂L/∂v` for every trainable var, in order (empty when `backward` was off).
    pub grads: Vec<Tensor>,
}

/// Loss, statistics and gradients of one list (see the module docs), with respect to the
/// adapter's variables.
pub fn list_step(
    model: &Model,
    adapter: &Adapter,
    objective: &Objective,
    list: ListInput<'_>,
    reference: Reference<'_>,
    opts: StepOptions,
) -> TrainResult<ListStep> {
    list_step_for(
        model,
        adapter,
        &adapter.vars(),
        objective,
        list,
        reference,
        opts,
    )
}

/// [`list_step`] with gradients for the given variables (full fine-tuning passes the model's
/// own weights and an empty adapter).
pub fn list_step_for(
    model: &Model,
    adapter: &Adapter,
    trainable: &[Var],
    objective: &Objective,
    list: ListInput<'_>,
    reference: Reference<'_>,
    opts: StepOptions,
) -> TrainResult<ListStep> {
    let forward = Forward::new(list, opts);
    let n = list.responses.len();
    let lengths: Vec<usize> = list.responses.iter().map(Vec::len).collect();
    let chunk = opts.chunk_size.max(1);
    let chunks: Vec<std::ops::Range<usize>> = (0..n)
        .step_by(chunk)
        .map(|s| s..(s + chunk).min(n))
        .collect();
    // Dropout seed per chunk, so pass 1 and pass 2 apply the same masks.
    let run = |c: usize| LoraRun {
        adapter,
        dropout_seed: opts
            .dropout_seed
            .map(|s| s ^ (c as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)),
    };

    // Pass 1 (or the only pass): policy log-probs, keeping the graph (or, checkpointed, the
    // stored block inputs) only when one chunk.
    let keep = chunks.len() == 1 && opts.backward;
    let mut policy = Vec::with_capacity(n);
    let mut kept: Option<Kept<'_>> = None;
    for (c, r) in chunks.iter().enumerate() {
        let out = if opts.gradient_checkpointing {
            Kept::Checkpointed(Box::new(forward.checkpointed(model, r, Some(run(c)))?))
        } else {
            Kept::Graph(forward.sums(model, r, Some(run(c)))?)
        };
        policy.extend(to_f64(out.sums())?);
        if keep {
            kept = Some(out);
        }
    }
    let reference_logps = match reference {
        Reference::DisabledAdapter => Some(reference_logps(model, &chunks, &forward)?),
        Reference::Model(m) => Some(reference_logps(m, &chunks, &forward)?),
        Reference::Given(v) => Some(v.to_vec()),
        Reference::None => None,
    };
    let output = objective.compute(&LossInput {
        policy_logps: &policy,
        reference_logps: reference_logps.as_deref(),
        lengths: &lengths,
        target: list.target,
    })?;

    if !opts.backward {
        return Ok(ListStep {
            output,
            policy_logps: policy,
            reference_logps,
            lengths,
            grads: Vec::new(),
        });
    }
    // Surrogate backward, chunk by chunk.
    let vars = trainable;
    let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
    for (c, r) in chunks.iter().enumerate() {
        let out = match kept.take() {
            Some(k) => k,
            None if opts.gradient_checkpointing => {
                Kept::Checkpointed(Box::new(forward.checkpointed(model, r, Some(run(c)))?))
            }
            None => Kept::Graph(forward.sums(model, r, Some(run(c)))?),
        };
        let g: Vec<f32> = output.grad[r.clone()]
            .iter()
            .map(|&g| (g * opts.grad_scale) as f32)
            .collect();
        let g = Tensor::from_vec(g, r.len(), out.sums().device())?; // [K], constant
        let chunk_grads = match out {
            Kept::Graph(sums) => backward_grads(&(sums * g)?.sum_all()?, vars)?,
            // The same surrogate, recomputed from the top hidden state of the stored forward.
            Kept::Checkpointed(ck) => ck.backward(|s| (&s.sums * &g)?.sum_all(), vars)?,
        };
        add_grads(&mut grads, chunk_grads)?;
    }
    let grads = dense_grads(grads, vars)?;
    Ok(ListStep {
        output,
        policy_logps: policy,
        reference_logps,
        lengths,
        grads,
    })
}

/// A policy forward kept for the backward: its graph, or its checkpointed block inputs.
enum Kept<'a> {
    Graph(Tensor), // [K] sums with the graph
    Checkpointed(Box<Checkpointed<'a>>),
}

impl Kept<'_> {
    /// The summed log-probs `[K]`.
    fn sums(&self) -> &Tensor {
        match self {
            Kept::Graph(s) => s,
            Kept::Checkpointed(c) => &c.scored().sums,
        }
    }
}

/// The forward of one list's responses: separate rows `prompt ++ y_i`, or one packed sequence.
struct Forward<'a> {
    list: ListInput<'a>,
    /// `prompt ++ y_i` per response; empty with prefix sharing (never needed).
    ids: Vec<Vec<u32>>,
    opts: StepOptions,
}

impl<'a> Forward<'a> {
    fn new(list: ListInput<'a>, opts: StepOptions) -> Self {
        let ids = if opts.prefix_sharing {
            Vec::new()
        } else {
            list.responses
                .iter()
                .map(|r| list.prompt.iter().chain(r).copied().collect())
                .collect()
        };
        Self { list, ids, opts }
    }

    /// Summed log-probs `[K]` of the responses in `r`.
    fn sums(
        &self,
        model: &Model,
        r: &std::ops::Range<usize>,
        lora: Option<LoraRun<'_>>,
    ) -> TrainResult<Tensor> {
        let (prompt, score) = (self.list.prompt, self.opts.score);
        let scored = if self.opts.prefix_sharing {
            model.score_shared(prompt, &self.list.responses[r.clone()], lora, score)?
        } else {
            model.score(&self.requests(r), lora, score)?
        };
        Ok(scored.sums)
    }

    /// The policy forward of the responses in `r` with gradient checkpointing.
    fn checkpointed<'m>(
        &self,
        model: &'m Model,
        r: &std::ops::Range<usize>,
        lora: Option<LoraRun<'m>>,
    ) -> TrainResult<Checkpointed<'m>> {
        let (prompt, score) = (self.list.prompt, self.opts.score);
        Ok(if self.opts.prefix_sharing {
            model.score_shared_checkpointed(prompt, &self.list.responses[r.clone()], lora, score)?
        } else {
            model.score_checkpointed(&self.requests(r), lora, score)?
        })
    }

    /// The separate rows `prompt ++ y_i` of the responses in `r`.
    fn requests(&self, r: &std::ops::Range<usize>) -> Vec<ScoreRequest<'_>> {
        self.ids[r.clone()]
            .iter()
            .map(|ids| ScoreRequest {
                ids,
                start: self.list.prompt.len(),
            })
            .collect()
    }
}

/// Reference log-probs without adapter (no graph: the base weights are not variables).
fn reference_logps(
    model: &Model,
    chunks: &[std::ops::Range<usize>],
    forward: &Forward<'_>,
) -> TrainResult<Vec<f64>> {
    let mut out = Vec::new();
    for r in chunks {
        out.extend(to_f64(&forward.sums(model, r, None)?)?);
    }
    Ok(out)
}

fn to_f64(t: &Tensor) -> TrainResult<Vec<f64>> {
    Ok(t.detach().to_dtype(DType::F64)?.to_vec1()?)
}
