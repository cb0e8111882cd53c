//! The math of λ-DPO as a pure crate: no tensors, no I/O, f64 throughout.
//!
//! - [`loss`]: λ-DPO and the baselines (DPO/cDPO, robust DPO, IPO, SimPO, ORPO, ListMLE,
//!   LiPO-λ, plus an SFT term), each returning the loss, `∂L/∂ℓ_θ(y_i)` for every response, and
//!   logging statistics. The trainer back-propagates `Σ_i g_i ℓ_θ(y_i)` (DESIGN.md §2).
//! - [`targets`]: ratings → `p*(k) = softmax(r_k/T)` → `p^λ`, with a missing-rating policy.
//! - [`sampler`]: where λ comes from (fixed, one-hot cycle, Dirichlet, table, grid), seeded and
//!   serialisable so resumed runs draw the same sequence; [`rng`] is the generator behind it.
//! - [`scheduler`]: the performance-driven λ scheduler (paper App. D) on top of [`linalg`]'s
//!   minimum-norm least squares and [`simplex`]'s grids.
//! - [`lr`]: learning-rate schedules as pure functions of the step.
//! - [`rank`]: orderings with a fixed tie rule and rank-agreement metrics.
//! - [`prefeval`]: per-dimension agreement of implicit rewards with ratings (CE, top-1,
//!   pairwise accuracy, Kendall τ-b) for preference evaluation.
//! - [`pareto`]: evaluation of a λ sweep — Spearman correlation, Pareto front, hypervolume.
//!
//! Everything validates its inputs and returns [`MathError`] rather than NaN.

pub mod error;
pub mod linalg;
pub mod loss;
pub mod lr;
pub mod pareto;
pub mod prefeval;
pub mod rank;
pub mod rng;
pub mod sampler;
pub mod scheduler;
pub mod simplex;
pub mod special;
pub mod targets;

pub use error::{MathError, Result};
pub use loss::{LogpMode, Loss, LossInput, LossOutput, LossStats, Objective, SftTerm};
pub use lr::{LrDecay, LrSchedule};
pub use rng::Rng;
pub use sampler::{LambdaSampler, LambdaSource, TableRow};
pub use scheduler::{CandidateSource, PolyFit, Schedule};
pub use targets::{mixed_target, preference_distribution, MissingPolicy, MixedTarget, Target};
