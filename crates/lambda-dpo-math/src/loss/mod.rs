//! Preference losses as pure functions of per-response log-probabilities, with exact gradients.
//!
//! Every loss here maps the policy log-probs `ℓ_θ(y_i)` (summed over response tokens), optional
//! reference log-probs, token counts and a [`Target`] to a scalar, and returns `∂L/∂ℓ_θ(y_i)`
//! for every response. The trainer never differentiates through this crate: it back-propagates
//! the surrogate `Σ_i g_i · ℓ_θ(y_i)` with `g` detached, whose gradient is exactly the loss's
//! (DESIGN.md §2). Gradients are therefore always with respect to the *summed* log-prob, even for
//! losses defined on per-token means (`ℓ̄ = ℓ / |y|`, so `∂/∂ℓ = (1/|y|) ∂/∂ℓ̄`).
//!
//! Layout: this file holds the enum, the inputs/outputs, validation and the dispatch; one file
//! per family holds the formulas ([`listwise`], [`pairwise`], [`reference_free`], [`ranking`],
//! [`sft`]). Logging statistics are computed here, outside the formulas.

pub mod listwise;
pub mod pairwise;
pub mod ranking;
pub mod reference_free;
pub mod sft;

use serde::{Deserialize, Serialize};

use crate::error::{MathError, Result};
use crate::rank::top1_agreement;
use crate::special::{
    argmax_first, argmin_last, check_finite, check_len, check_param, check_simplex, kl_from_log,
    log_softmax, SIMPLEX_TOLERANCE,
};
use crate::targets::Target;

pub use sft::SftTerm;

/// How a response's log-probability enters a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogpMode {
    /// `ℓ(y) = Σ_t log π(y_t | …)`: the paper's formulation and DPO's.
    #[default]
    Sum,
    /// `ℓ̄(y) = ℓ(y) / |y|`: per-token mean, what the λ-DPO authors' code uses.
    Mean,
}

/// The preference losses. Each variant carries its own hyper-parameters; the constructors
/// (`Loss::lambda_dpo()`, …) give the documented defaults.
///
/// Notation: `x_i` is `ℓ_θ(y_i)` or `ℓ̄_θ(y_i)` according to the mode, `x^ref_i` likewise for the
/// reference (zeros when no reference is given), `w`/`l` are the target's best and worst
/// response, `Δ = (x_w − x^ref_w) − (x_l − x^ref_l)`, `σ` the logistic function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Loss {
    /// λ-DPO, the listwise softmax cross-entropy of the paper.
    ///
    /// ```text
    /// s_i = β (x_i − x^ref_i)                   implicit reward           (Eq. 7)
    /// P_θ = softmax(s)
    /// L   = − Σ_i p^λ_i log P_θ(i)              (Eq. 10; = Σ_k λ_k L_k, Eq. 22–28)
    /// ∂L/∂s_i = P_θ(i) − p^λ_i                  (Eq. 11 / 16)
    /// ```
    /// Sun et al., "Multi-Preference Lambda-weighted Listwise DPO", arXiv:2506.19780.
    /// The target temperature `T` enters through the [`Target`] (see `targets`).
    /// Defaults: β = 0.1, sum mode.
    LambdaDpo {
        /// β, the KL-regularisation strength.
        #[serde(default = "default_beta")]
        beta: f64,
        /// Sum (paper) or mean (authors' code) log-probs.
        #[serde(default)]
        mode: LogpMode,
    },
    /// DPO with conservative-DPO label smoothing (cDPO; ε = 0 is plain DPO).
    ///
    /// ```text
    /// L = −(1 − ε) log σ(βΔ) − ε log σ(−βΔ)
    /// ```
    /// Rafailov et al. 2023, Eq. 7; cDPO: Mitchell 2023, "A note on DPO with noisy preferences".
    /// Defaults: β = 0.1, ε = 0, sum mode.
    Dpo {
        /// β.
        #[serde(default = "default_beta")]
        beta: f64,
        /// ε ∈ [0, 0.5], the assumed label-flip probability.
        #[serde(default)]
        label_smoothing: f64,
        /// Sum (TRL) or mean (the λ-DPO authors' pairwise baseline) log-probs.
        #[serde(default)]
        mode: LogpMode,
    },
    /// Robust DPO: the unbiased estimator under label noise ε.
    ///
    /// ```text
    /// L = [ −(1 − ε) log σ(βΔ) + ε log σ(−βΔ) ] / (1 − 2ε)
    /// ```
    /// Chowdhury et al. 2024, "Provably Robust DPO", Eq. 8 (TRL `loss_type="robust"`).
    /// Defaults: β = 0.1, ε = 0.1, sum mode.
    RobustDpo {
        /// β.
        #[serde(default = "default_beta")]
        beta: f64,
        /// ε ∈ [0, 0.5).
        #[serde(default = "default_robust_smoothing")]
        label_smoothing: f64,
        /// Sum or mean log-probs.
        #[serde(default)]
        mode: LogpMode,
    },
    /// IPO, the squared loss on per-token mean log-ratios (as TRL computes it).
    ///
    /// ```text
    /// Δ̄ = (ℓ_θ(y_w) − ℓ_ref(y_w)) / |y_w| − (ℓ_θ(y_l) − ℓ_ref(y_l)) / |y_l|
    /// L = (Δ̄ − 1/(2β))²
    /// ```
    /// Azar et al. 2023, "A General Theoretical Paradigm…", Eq. 17 (β is their τ). Default β = 0.1.
    Ipo {
        /// β (τ in the paper).
        #[serde(default = "default_beta")]
        beta: f64,
    },
    /// SimPO: reference-free, length-normalised, with a target margin γ.
    ///
    /// ```text
    /// L = −log σ( β (ℓ̄_θ(y_w) − ℓ̄_θ(y_l)) − γ )
    /// ```
    /// Meng et al. 2024, "SimPO", Eq. 6. Defaults: β = 2.0, γ = 1.0 (γ/β = 0.5, the paper's
    /// Llama-3-Base / Mistral-Base setting). The λ-DPO authors' LLaMA-Factory run used
    /// β = 0.1, γ = 0.5; the formula is the same (TRL CPO `loss_type="simpo"`).
    Simpo {
        /// β, reward scale.
        #[serde(default = "default_simpo_beta")]
        beta: f64,
        /// γ, target reward margin (absolute, not γ/β).
        #[serde(default = "default_simpo_gamma")]
        gamma: f64,
    },
    /// ORPO: NLL of the chosen response plus an odds-ratio term; reference-free.
    ///
    /// ```text
    /// p(y)      = exp(ℓ̄_θ(y))
    /// log odds  = ℓ̄ − log(1 − e^ℓ̄)                 (log1mexp for stability)
    /// L = −ℓ̄_θ(y_w) − λ_or log σ(log odds(y_w) − log odds(y_l))
    /// ```
    /// Hong et al. 2024, "ORPO", Eq. 6–7 (TRL ORPO: `policy_nll_loss − β·logsigmoid(log_odds)`).
    /// Default λ_or = 0.1. Needs `ℓ̄ < 0` for both responses.
    Orpo {
        /// λ_or (TRL's `beta`).
        #[serde(default = "default_beta")]
        lambda_or: f64,
    },
    /// ListMLE: Plackett–Luce likelihood of the target ranking under the implicit rewards.
    ///
    /// ```text
    /// s_i = β (x_i − x^ref_i)
    /// no ties:  L = − Σ_{k<N} [ s_τ(k) − logsumexp_{j≥k} s_τ(j) ]      τ: target order, best first
    /// ties (Breslow):  L = Σ_groups g [ |g| · logsumexp_{j ∈ R_g} s_j − Σ_{i∈g} s_i ]
    ///                  R_g = members of g and of every worse group
    /// ```
    /// Xia et al. 2008, "Listwise approach to learning to rank", Eq. 8. Tie rule: responses whose
    /// target probabilities are equal (within 1e-12) form a group that is ranked as a set — each
    /// member competes against its group and everything below it (Breslow's rule for tied
    /// events in a partial likelihood). Without ties it is exactly ListMLE; it never invents an
    /// order between tied responses. Defaults: β = 0.1, sum mode.
    ListMle {
        /// β.
        #[serde(default = "default_beta")]
        beta: f64,
        /// Sum or mean log-probs.
        #[serde(default)]
        mode: LogpMode,
    },
    /// LiPO-λ: pairwise logistic losses weighted by LambdaRank's |ΔNDCG|-style factors.
    ///
    /// ```text
    /// s_i  = β (x_i − x^ref_i)
    /// L    = − Σ_{ψ_i > ψ_j} Δ_ij log σ(s_i − s_j)
    /// Δ_ij = |G_i − G_j| · |1/D(τ_i) − 1/D(τ_j)|,  G = 2^ψ − 1,  D(τ) = log2(1 + τ)
    /// ```
    /// Liu et al. 2024, "LiPO: Listwise Preference Optimization through Learning-to-Rank",
    /// Eq. 10–11. `ψ` are the target's grades; `τ_i` is the 1-based rank of response i under the
    /// current rewards `s` (ties by index). Δ is piecewise constant in s and treated as a
    /// constant in the gradient, as LambdaRank does. Defaults: β = 0.1, sum mode.
    LipoLambda {
        /// β.
        #[serde(default = "default_beta")]
        beta: f64,
        /// Sum or mean log-probs.
        #[serde(default)]
        mode: LogpMode,
    },
}

// Serde defaults, so a config can write just `{"type": "dpo"}`; they equal the constructors'.
fn default_beta() -> f64 {
    0.1
}
fn default_robust_smoothing() -> f64 {
    0.1
}
fn default_simpo_beta() -> f64 {
    2.0
}
fn default_simpo_gamma() -> f64 {
    1.0
}

impl Loss {
    /// λ-DPO with the paper's defaults (β = 0.1, sum).
    pub fn lambda_dpo() -> Self {
        Loss::LambdaDpo {
            beta: 0.1,
            mode: LogpMode::Sum,
        }
    }
    /// DPO (β = 0.1, ε = 0, sum).
    pub fn dpo() -> Self {
        Loss::Dpo {
            beta: 0.1,
            label_smoothing: 0.0,
            mode: LogpMode::Sum,
        }
    }
    /// Robust DPO (β = 0.1, ε = 0.1, sum).
    pub fn robust_dpo() -> Self {
        Loss::RobustDpo {
            beta: 0.1,
            label_smoothing: 0.1,
            mode: LogpMode::Sum,
        }
    }
    /// IPO (β = 0.1).
    pub fn ipo() -> Self {
        Loss::Ipo { beta: 0.1 }
    }
    /// SimPO (β = 2.0, γ = 1.0).
    pub fn simpo() -> Self {
        Loss::Simpo {
            beta: 2.0,
            gamma: 1.0,
        }
    }
    /// ORPO (λ_or = 0.1).
    pub fn orpo() -> Self {
        Loss::Orpo { lambda_or: 0.1 }
    }
    /// ListMLE (β = 0.1, sum).
    pub fn list_mle() -> Self {
        Loss::ListMle {
            beta: 0.1,
            mode: LogpMode::Sum,
        }
    }
    /// LiPO-λ (β = 0.1, sum).
    pub fn lipo_lambda() -> Self {
        Loss::LipoLambda {
            beta: 0.1,
            mode: LogpMode::Sum,
        }
    }

    /// Short stable name, as used in configs and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::LambdaDpo { .. } => "lambda-dpo",
            Loss::Dpo { .. } => "dpo",
            Loss::RobustDpo { .. } => "robust-dpo",
            Loss::Ipo { .. } => "ipo",
            Loss::Simpo { .. } => "simpo",
            Loss::Orpo { .. } => "orpo",
            Loss::ListMle { .. } => "list-mle",
            Loss::LipoLambda { .. } => "lipo-lambda",
        }
    }

    /// Whether the loss reads reference log-probs (SimPO and ORPO do not).
    pub fn uses_reference(&self) -> bool {
        !matches!(self, Loss::Simpo { .. } | Loss::Orpo { .. })
    }

    /// Whether the loss only looks at the target's best and worst response.
    pub fn is_pairwise(&self) -> bool {
        matches!(
            self,
            Loss::Dpo { .. }
                | Loss::RobustDpo { .. }
                | Loss::Ipo { .. }
                | Loss::Simpo { .. }
                | Loss::Orpo { .. }
        )
    }

    /// Whether any response log-prob enters as a per-token mean (so lengths must be ≥ 1).
    fn uses_mean(&self) -> bool {
        match self {
            Loss::LambdaDpo { mode, .. }
            | Loss::Dpo { mode, .. }
            | Loss::RobustDpo { mode, .. }
            | Loss::ListMle { mode, .. }
            | Loss::LipoLambda { mode, .. } => *mode == LogpMode::Mean,
            Loss::Ipo { .. } | Loss::Simpo { .. } | Loss::Orpo { .. } => true,
        }
    }

    /// Reject hyper-parameters outside their domain.
    pub fn validate(&self) -> Result<()> {
        let beta_ok = |b: f64| check_param("beta", b, b > 0.0, "β > 0");
        match *self {
            Loss::LambdaDpo { beta, .. }
            | Loss::Ipo { beta }
            | Loss::ListMle { beta, .. }
            | Loss::LipoLambda { beta, .. } => beta_ok(beta),
            Loss::Dpo {
                beta,
                label_smoothing: e,
                ..
            } => {
                beta_ok(beta)?;
                check_param(
                    "label_smoothing",
                    e,
                    (0.0..=0.5).contains(&e),
                    "ε ∈ [0, 0.5]",
                )
            }
            Loss::RobustDpo {
                beta,
                label_smoothing: e,
                ..
            } => {
                beta_ok(beta)?;
                check_param(
                    "label_smoothing",
                    e,
                    (0.0..0.5).contains(&e),
                    "ε ∈ [0, 0.5)",
                )
            }
            Loss::Simpo { beta, gamma } => {
                beta_ok(beta)?;
                check_param("gamma", gamma, true, "a finite γ")
            }
            Loss::Orpo { lambda_or } => {
                check_param("lambda_or", lambda_or, lambda_or >= 0.0, "λ_or ≥ 0")
            }
        }
    }

    /// Loss, gradient and statistics for one prompt (no SFT term; see [`Objective`]).
    pub fn compute(&self, input: &LossInput<'_>) -> Result<LossOutput> {
        Objective {
            loss: *self,
            sft: SftTerm::default(),
        }
        .compute(input)
    }
}

/// Everything a loss reads for one prompt with N responses.
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a> {
    /// `ℓ_θ(y_i)`: policy log-prob of each response, summed over its tokens. `[N]`
    pub policy_logps: &'a [f64],
    /// `ℓ_ref(y_i)`, summed. `None` = reference-free (treated as zeros, as the authors' LoRA
    /// runs do); ignored by SimPO and ORPO. `[N]`
    pub reference_logps: Option<&'a [f64]>,
    /// `|y_i|`: number of response tokens scored, for the mean modes. `[N]`
    pub lengths: &'a [usize],
    /// The target (p^λ and grades). `[N]`
    pub target: &'a Target,
}

/// A loss plus an optional SFT/NLL term on the best response (RPO-style regulariser).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// The preference loss.
    pub loss: Loss,
    /// `α · NLL(y_best)`; weight 0 disables it.
    #[serde(default)]
    pub sft: SftTerm,
}

/// Result of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossOutput {
    /// Total loss (preference loss + SFT term).
    pub loss: f64,
    /// `∂L/∂ℓ_θ(y_i)` for every response, with respect to the summed log-prob. `[N]`
    pub grad: Vec<f64>,
    /// Logging statistics.
    pub stats: LossStats,
}

/// Statistics for logging, computed from the implicit rewards and the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossStats {
    /// The preference loss alone.
    pub preference_loss: f64,
    /// The SFT term alone, weight included (0 when disabled).
    pub sft_loss: f64,
    /// Implicit reward of every response, in the loss's own parametrisation: `β(x − x^ref)` for
    /// reference-based losses (IPO: β times the mean log-ratio), `β ℓ̄` for SimPO, `λ_or ℓ̄` for
    /// ORPO (as TRL logs them). `[N]`
    pub rewards: Vec<f64>,
    /// `P_θ = softmax(rewards)`, the model's listwise preference. `[N]`
    pub model_probs: Vec<f64>,
    /// Target's best response (first maximum of p^λ).
    pub chosen: usize,
    /// Target's worst response (last minimum of p^λ).
    pub rejected: usize,
    /// `rewards[chosen]`.
    pub chosen_reward: f64,
    /// `rewards[rejected]`.
    pub rejected_reward: f64,
    /// `chosen_reward − rejected_reward`.
    pub margin: f64,
    /// `chosen_reward > rejected_reward` (TRL's "rewards/accuracies").
    pub reward_accuracy: bool,
    /// The highest-reward response is one of the target's best; ties at the top of the
    /// rewards count fractionally ([`crate::rank::top1_agreement`]), so chance is chance.
    pub top1_agreement: f64,
    /// `KL(p^λ ‖ P_θ)`; for λ-DPO this is the loss minus the target's entropy.
    pub kl_target_model: f64,
}

/// The validated inputs the formula files work on.
pub(crate) struct Prepared<'a> {
    pub n: usize,
    pub policy: &'a [f64],
    /// Reference log-probs, zeros when absent.
    pub reference: Vec<f64>,
    /// Token counts as f64 (≥ 1 whenever a mean mode is used).
    pub lengths: Vec<f64>,
    pub target: &'a Target,
}

impl Prepared<'_> {
    /// `x_i − x^ref_i` in the given mode.
    pub fn log_ratio(&self, i: usize, mode: LogpMode) -> f64 {
        (self.policy[i] - self.reference[i]) * self.scale(i, mode)
    }

    /// `∂x_i/∂ℓ_θ(y_i)`: 1 in sum mode, `1/|y_i|` in mean mode.
    pub fn scale(&self, i: usize, mode: LogpMode) -> f64 {
        match mode {
            LogpMode::Sum => 1.0,
            LogpMode::Mean => 1.0 / self.lengths[i],
        }
    }

    /// Policy log-prob in the given mode (no reference).
    pub fn policy_x(&self, i: usize, mode: LogpMode) -> f64 {
        self.policy[i] * self.scale(i, mode)
    }

    /// The target's best and worst response; an error when the target is constant.
    pub fn pair(&self) -> Result<(usize, usize)> {
        let (w, l) = (
            argmax_first(&self.target.probs),
            argmin_last(&self.target.probs),
        );
        if self.target.probs[w] <= self.target.probs[l] {
            return Err(MathError::NoPreference { n: self.n });
        }
        Ok((w, l))
    }
}

/// What a formula file returns: the loss, `∂L/∂ℓ_θ` and the implicit rewards for the stats.
pub(crate) struct Part {
    pub loss: f64,
    pub grad: Vec<f64>,
    pub rewards: Vec<f64>,
}

impl Objective {
    /// An objective without SFT term.
    pub fn new(loss: Loss) -> Self {
        Self {
            loss,
            sft: SftTerm::default(),
        }
    }

    /// Validate, evaluate the loss (and SFT term), and compute statistics.
    pub fn compute(&self, input: &LossInput<'_>) -> Result<LossOutput> {
        self.loss.validate()?;
        self.sft.validate()?;
        let prepared = prepare(input, self.loss.uses_mean() || self.sft.uses_mean())?;

        let part = match self.loss {
            Loss::LambdaDpo { beta, mode } => listwise::lambda_dpo(&prepared, beta, mode),
            Loss::Dpo {
                beta,
                label_smoothing,
                mode,
            } => pairwise::dpo(&prepared, beta, label_smoothing, mode)?,
            Loss::RobustDpo {
                beta,
                label_smoothing,
                mode,
            } => pairwise::robust_dpo(&prepared, beta, label_smoothing, mode)?,
            Loss::Ipo { beta } => pairwise::ipo(&prepared, beta)?,
            Loss::Simpo { beta, gamma } => reference_free::simpo(&prepared, beta, gamma)?,
            Loss::Orpo { lambda_or } => reference_free::orpo(&prepared, lambda_or)?,
            Loss::ListMle { beta, mode } => ranking::list_mle(&prepared, beta, mode),
            Loss::LipoLambda { beta, mode } => ranking::lipo_lambda(&prepared, beta, mode),
        };

        let mut grad = part.grad;
        let chosen = argmax_first(&prepared.target.probs);
        let sft_loss = self.sft.add_to(&prepared, chosen, &mut grad);
        let stats = stats(&prepared, part.loss, sft_loss, part.rewards);
        Ok(LossOutput {
            loss: part.loss + sft_loss,
            grad,
            stats,
        })
    }
}

/// Shape, finiteness and simplex checks shared by every loss.
fn prepare<'a>(input: &LossInput<'a>, needs_lengths: bool) -> Result<Prepared<'a>> {
    let n = input.policy_logps.len();
    if n < 2 {
        return Err(MathError::TooFewResponses { n });
    }
    check_finite("policy_logps", input.policy_logps)?;
    let reference = match input.reference_logps {
        Some(r) => {
            check_len("reference_logps", r.len(), n, "response")?;
            check_finite("reference_logps", r)?;
            r.to_vec()
        }
        None => vec![0.0; n],
    };
    check_len("lengths", input.lengths.len(), n, "response")?;
    if needs_lengths {
        if let Some(i) = input.lengths.iter().position(|&l| l == 0) {
            return Err(MathError::OutOfDomain {
                what: "lengths",
                index: i,
                value: 0.0,
                expected: "at least one token for a per-token mean",
            });
        }
    }
    check_len("target.probs", input.target.probs.len(), n, "response")?;
    check_len("target.grades", input.target.grades.len(), n, "response")?;
    check_simplex("target.probs", &input.target.probs, SIMPLEX_TOLERANCE)?;
    check_finite("target.grades", &input.target.grades)?;
    Ok(Prepared {
        n,
        policy: input.policy_logps,
        reference,
        lengths: input.lengths.iter().map(|&l| l as f64).collect(),
        target: input.target,
    })
}

/// Logging statistics: model distribution, chosen/rejected rewards, agreement, KL.
fn stats(p: &Prepared<'_>, preference_loss: f64, sft_loss: f64, rewards: Vec<f64>) -> LossStats {
    let log_model = log_softmax(&rewards);
    let chosen = argmax_first(&p.target.probs);
    let rejected = argmin_last(&p.target.probs);
    let (chosen_reward, rejected_reward) = (rewards[chosen], rewards[rejected]);
    LossStats {
        preference_loss,
        sft_loss,
        model_probs: log_model.iter().map(|l| l.exp()).collect(),
        chosen,
        rejected,
        chosen_reward,
        rejected_reward,
        margin: chosen_reward - rejected_reward,
        reward_accuracy: chosen_reward > rejected_reward,
        top1_agreement: top1_agreement(&rewards, &p.target.probs),
        kl_target_model: kl_from_log(&p.target.probs, &log_model),
        rewards,
    }
}
