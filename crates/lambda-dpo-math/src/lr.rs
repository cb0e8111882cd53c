//! Learning-rate schedules as pure functions of the optimizer step: constant, linear and cosine
//! decay, each with linear warmup and a floor (`min_ratio · base_lr`).
//!
//! ```text
//! warmup (step < W):  factor = step / W
//! after:              progress = min(1, (step − W) / max(1, S − W))
//!   constant          factor = 1
//!   linear            factor = m + (1 − m) · (1 − progress)
//!   cosine            factor = m + (1 − m) · ½ (1 + cos(π · progress))
//! lr = base_lr · factor
//! ```
//! `step` counts optimizer steps already taken (the value Hugging Face's `LambdaLR` passes), so
//! with `m = 0` these are exactly transformers' `get_{constant,linear,cosine}_schedule_with_warmup`
//! and with `m > 0` its `cosine_with_min_lr`. Being a function of the step, the schedule needs no
//! state of its own to resume.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::special::check_param;

/// Shape of the decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrDecay {
    /// No decay.
    Constant,
    /// Linear to the floor at the last step.
    Linear,
    /// Half cosine to the floor at the last step (the paper's recipe).
    #[default]
    Cosine,
}

/// A complete learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate (after warmup).
    pub base_lr: f64,
    /// Decay shape.
    pub decay: LrDecay,
    /// Warmup steps W (0 = none).
    pub warmup_steps: u64,
    /// Total optimizer steps S.
    pub total_steps: u64,
    /// Floor m as a fraction of `base_lr`, in [0, 1] (ignored by `Constant`).
    pub min_ratio: f64,
}

/// Warmup steps for a warmup *ratio*, rounded up as transformers' `get_warmup_steps` does.
pub fn warmup_steps_from_ratio(ratio: f64, total_steps: u64) -> u64 {
    (ratio * total_steps as f64).ceil().max(0.0) as u64
}

impl LrSchedule {
    /// Validate the parameters.
    pub fn validate(&self) -> Result<()> {
        check_param(
            "base_lr",
            self.base_lr,
            self.base_lr >= 0.0,
            "a learning rate ≥ 0",
        )?;
        check_param(
            "min_ratio",
            self.min_ratio,
            (0.0..=1.0).contains(&self.min_ratio),
            "a ratio in [0, 1]",
        )
    }

    /// Multiplier of `base_lr` at `step`.
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let m = self.min_ratio;
        match self.decay {
            LrDecay::Constant => 1.0,
            LrDecay::Linear => m + (1.0 - m) * (1.0 - progress),
            LrDecay::Cosine => {
                m + (1.0 - m) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// Learning rate at `step`.
    pub fn lr(&self, step: u64) -> f64 {
        self.base_lr * self.factor(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(decay: LrDecay, min_ratio: f64) -> LrSchedule {
        LrSchedule {
            base_lr: 1.0,
            decay,
            warmup_steps: 10,
            total_steps: 110,
            min_ratio,
        }
    }

    #[test]
    fn warmup_then_decay_to_the_floor() {
        for decay in [LrDecay::Constant, LrDecay::Linear, LrDecay::Cosine] {
            let s = sched(decay, 0.1);
            assert_eq!(s.lr(0), 0.0);
            assert!((s.lr(5) - 0.5).abs() < 1e-15);
            assert_eq!(s.lr(10), 1.0);
        }
        assert!((sched(LrDecay::Linear, 0.0).lr(60) - 0.5).abs() < 1e-15);
        assert!((sched(LrDecay::Cosine, 0.0).lr(60) - 0.5).abs() < 1e-15);
        assert!((sched(LrDecay::Cosine, 0.1).lr(110) - 0.1).abs() < 1e-15);
        assert!((sched(LrDecay::Cosine, 0.1).lr(500) - 0.1).abs() < 1e-15);
        assert_eq!(sched(LrDecay::Constant, 0.1).lr(500), 1.0);
    }

    #[test]
    fn warmup_ratio_rounds_up() {
        assert_eq!(warmup_steps_from_ratio(0.1, 95), 10);
        assert_eq!(warmup_steps_from_ratio(0.0, 95), 0);
    }
}
