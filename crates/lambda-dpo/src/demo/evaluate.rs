//! The demo's evaluation: sample responses from a trained model over a grid of λ, score them
//! with the world's exact reward functions, and summarise each method by what λ buys.
//!
//! For each method and each evaluation λ: the mean true reward per dimension over the eval
//! prompts and samples. From these:
//!
//! ```text
//! uniform-mix reward   = (1/m) Σ_k  reward_k(λ = uniform)
//! hypervolume          = volume dominated by the front of {reward(λ) : λ in the grid}, from 0
//! controllability_k    = Spearman( λ_k , reward_k(λ) ) across the grid
//! ```
//!
//! An unconditioned model never sees λ, so its responses do not depend on it: they are sampled
//! once and scored for every λ (honest, and m·|grid| times cheaper); its controllability is 0
//! by construction (a constant series has no rank correlation; reported as 0 with a flag).

use lambda_dpo_math::pareto::{hypervolume, pareto_front, spearman};
use lambda_dpo_math::simplex::simplex_grid;
use lambda_dpo_model::generate::{
    generate, row_seed, GenerateOptions, Prompt as GenPrompt, SamplingConfig,
};
use lambda_dpo_model::{Adapter, Message, Model, Tokenizer};
use serde::Serialize;

use super::DemoError;
use crate::train::conditioning::{conditioned_messages, quantize_lambda, Conditioning};
use crate::world::{Prompt, World};

/// What one method achieved.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    pub method: String,
    pub label: String,
    pub conditioned: bool,
    /// The evaluation λs (the simplex grid, then uniform).
    pub lambdas: Vec<Vec<f64>>,
    /// `rewards[g][k]`: mean true reward of dimension k at λ_g.
    pub rewards: Vec<Vec<f64>>,
    /// Per dimension: mean reward at uniform λ.
    pub uniform_rewards: Vec<f64>,
    pub uniform_mix_reward: f64,
    pub hypervolume: f64,
    /// Mean correctness of the answer over every sampled response (the gate of every reward:
    /// `World::answer_share`).
    pub accuracy: f64,
    /// Per dimension; `None` where the reward did not vary over the grid.
    pub controllability: Vec<Option<f64>>,
    /// Indices into `lambdas` of the non-dominated reward vectors.
    pub front: Vec<usize>,
    pub responses_sampled: usize,
    /// A few (λ, prompt, response) examples for the report.
    pub examples: Vec<(Vec<f64>, String, String)>,
}

/// Sampling settings of the evaluation.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    pub grid_step: f64,
    pub prompts: usize,
    pub samples_per_prompt: usize,
    pub temperature: f64,
    pub max_new_tokens: usize,
    pub seed: u64,
    pub batch_size: usize,
    /// The model's end-of-turn / eos ids.
    pub stop_token_ids: Vec<u32>,
}

/// The evaluation λs: the simplex grid, then uniform λ (the last entry).
pub fn eval_lambdas(dims: usize, step: f64) -> Result<Vec<Vec<f64>>, DemoError> {
    let mut grid = simplex_grid(dims, step)?;
    let uniform = vec![1.0 / dims as f64; dims];
    grid.retain(|l| l.iter().zip(&uniform).any(|(a, b)| (a - b).abs() > 1e-9));
    grid.push(uniform);
    Ok(grid)
}

/// Samples and scores one model. `adapter = None` evaluates the model itself (the SFT model).
/// `conditioning` says how λ reaches it: rendered into the prompt, set in an SVD-LoRA adapter,
/// or not at all (then one λ slot is sampled and scored for every λ).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_method(
    world: &World,
    model: &Model,
    adapter: Option<&Adapter>,
    tokenizer: &Tokenizer,
    conditioning: Conditioning,
    (key, label): (&str, &str),
    settings: &EvalSettings,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<MethodResult, DemoError> {
    let dims: Vec<String> = world.dimensions().iter().map(|d| d.to_string()).collect();
    let lambdas = eval_lambdas(dims.len(), settings.grid_step)?;
    let prompts: Vec<&Prompt> = world.eval_prompts().iter().take(settings.prompts).collect();
    let conditioned = conditioning != Conditioning::None;
    // One job per (λ, prompt, sample); unconditioned models use one λ slot for all.
    let slots = if conditioned { lambdas.len() } else { 1 };
    let mut jobs: Vec<(usize, usize, Vec<u32>)> = Vec::new();
    for (g, lambda) in lambdas.iter().enumerate().take(slots) {
        for (p, prompt) in prompts.iter().enumerate() {
            let mut msgs = vec![Message::new("user", &prompt.text)];
            if conditioning == Conditioning::Prompt {
                msgs = conditioned_messages(&msgs, &dims, &quantize_lambda(lambda));
            }
            let text = tokenizer.render_chat(&msgs, true, &Default::default())?;
            let ids = tokenizer.encode(&text, false)?;
            for _ in 0..settings.samples_per_prompt {
                jobs.push((g, p, ids.clone()));
            }
        }
    }
    // sums[slot][k], counts[slot]
    let mut sums = vec![vec![0.0; dims.len()]; slots];
    let mut counts = vec![0usize; slots];
    let mut correct = 0.0;
    let mut examples = Vec::new();
    let total = jobs.len();
    let opts = GenerateOptions {
        max_new_tokens: settings.max_new_tokens,
        sampling: SamplingConfig {
            temperature: settings.temperature,
            ..SamplingConfig::default()
        },
        stop_token_ids: settings.stop_token_ids.clone(),
        stop_strings: Vec::new(),
    };
    let batch = settings.batch_size.max(1);
    let mut done = 0;
    // Batches never mix λ slots: an SVD-LoRA adapter runs at one λ per forward.
    let batches = jobs
        .chunk_by(|x, y| x.0 == y.0)
        .flat_map(|slot| slot.chunks(batch));
    for chunk in batches {
        // Each response has its own seed (job index), so results do not depend on batching.
        let prompts_b: Vec<GenPrompt<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, _, ids))| GenPrompt {
                ids,
                seed: row_seed(settings.seed, (done + i) as u64),
            })
            .collect();
        let at_lambda = match (conditioning, adapter) {
            (Conditioning::SvdLora, Some(a)) => Some(a.with_lambda(&lambdas[chunk[0].0])?),
            _ => None,
        };
        let outs = generate(
            model,
            tokenizer,
            at_lambda.as_ref().or(adapter),
            &prompts_b,
            &opts,
        )?;
        for ((g, p, _), out) in chunk.iter().zip(outs) {
            let r = world.rewards(prompts[*p], &out.text);
            correct += world.answer_share(prompts[*p], &out.text);
            for (s, v) in sums[*g].iter_mut().zip(&r) {
                *s += v;
            }
            counts[*g] += 1;
            if *p == 0 && examples.len() < 8 && (conditioned || examples.is_empty()) {
                examples.push((lambdas[*g].clone(), prompts[*p].text.clone(), out.text));
            }
        }
        done += chunk.len();
        on_batch(done, total);
    }
    let per_slot: Vec<Vec<f64>> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| s.iter().map(|v| v / c.max(1) as f64).collect())
        .collect();
    let rewards: Vec<Vec<f64>> = (0..lambdas.len())
        .map(|g| per_slot[if conditioned { g } else { 0 }].clone())
        .collect();
    let accuracy = correct / total.max(1) as f64;
    summarise(
        (key, label, conditioned),
        lambdas,
        rewards,
        (total, accuracy),
        examples,
    )
}

/// The summary numbers of a method from its reward table.
/// `(key, label, conditioned)` name the method; `(responses_sampled, accuracy)` are its
/// sampling totals.
pub fn summarise(
    (key, label, conditioned): (&str, &str, bool),
    lambdas: Vec<Vec<f64>>,
    rewards: Vec<Vec<f64>>,
    (responses_sampled, accuracy): (usize, f64),
    examples: Vec<(Vec<f64>, String, String)>,
) -> Result<MethodResult, DemoError> {
    let m = lambdas[0].len();
    let uniform_rewards = rewards.last().expect("uniform λ is last").clone();
    let uniform_mix_reward = uniform_rewards.iter().sum::<f64>() / m as f64;
    // The front and the controllability are over the grid (without the extra uniform point).
    let grid = lambdas.len() - 1;
    let hv = hypervolume(&rewards[..grid], &vec![0.0; m])?;
    let front = pareto_front(&rewards[..grid])?;
    let controllability = (0..m)
        .map(|k| {
            let x: Vec<f64> = lambdas[..grid].iter().map(|l| l[k]).collect();
            let y: Vec<f64> = rewards[..grid].iter().map(|r| r[k]).collect();
            spearman(&x, &y).ok().flatten()
        })
        .collect();
    Ok(MethodResult {
        method: key.into(),
        label: label.into(),
        conditioned,
        lambdas,
        rewards,
        uniform_rewards,
        uniform_mix_reward,
        hypervolume: hv,
        accuracy,
        controllability,
        front,
        responses_sampled,
        examples,
    })
}
