//! The SFT/NLL regulariser that can be added to any preference loss (RPO; LLaMA-Factory's
//! `pref_ftx`): `α · NLL(y_best)`, where `y_best` is the target's best response.
//!
//! ```text
//! mean mode:  L_sft = −α ℓ_θ(y_best) / |y_best|     ∂/∂ℓ_θ(y_best) = −α / |y_best|
//! sum mode:   L_sft = −α ℓ_θ(y_best)                ∂/∂ℓ_θ(y_best) = −α
//! ```
//! Mean is the default: it is what TRL's `rpo_alpha` and LLaMA-Factory's `pref_ftx` use, and it
//! keeps α comparable across response lengths.

use serde::{Deserialize, Serialize};

use super::{LogpMode, Prepared};
use crate::error::Result;
use crate::special::check_param;

/// `α · NLL(y_best)`; the default (α = 0) adds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SftTerm {
    /// α ≥ 0, the weight of the NLL term.
    pub weight: f64,
    /// Per-token mean (default) or summed NLL.
    pub mode: LogpMode,
}

impl Default for SftTerm {
    fn default() -> Self {
        Self {
            weight: 0.0,
            mode: LogpMode::Mean,
        }
    }
}

impl SftTerm {
    /// Reject a negative or non-finite weight.
    pub fn validate(&self) -> Result<()> {
        check_param("sft.weight", self.weight, self.weight >= 0.0, "α ≥ 0")
    }

    pub(crate) fn uses_mean(&self) -> bool {
        self.weight > 0.0 && self.mode == LogpMode::Mean
    }

    /// Add the term's gradient into `grad` and return its value (0 when disabled).
    pub(crate) fn add_to(&self, p: &Prepared<'_>, best: usize, grad: &mut [f64]) -> f64 {
        if self.weight == 0.0 {
            return 0.0;
        }
        let scale = p.scale(best, self.mode);
        grad[best] -= self.weight * scale;
        -self.weight * p.policy[best] * scale
    }
}
