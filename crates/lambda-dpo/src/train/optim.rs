//! AdamW over the trainable variables, exactly PyTorch's `torch.optim.AdamW` update (decoupled
//! weight decay applied first, bias corrections folded the same way), plus global-norm gradient
//! clipping as `torch.nn.utils.clip_grad_norm_`. candle has neither clipping nor a serialisable
//! optimizer state; both are needed for exact resume, so they live here.
//!
//! ```text
//! θ ← θ − lr·wd·θ
//! m ← β₁m + (1−β₁)g            v ← β₂v + (1−β₂)g²
//! θ ← θ − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)
//! ```

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::train::error::{TrainError, TrainResult};

/// AdamW hyper-parameters (defaults: PyTorch's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// β₁, decay of the first moment.
    pub beta1: f64,
    /// β₂, decay of the second moment.
    pub beta2: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (PyTorch AdamW default 0.01).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// The optimizer: named variables and their moments. Names are the PEFT keys, so the state
/// file is readable and stable across runs.
#[derive(Debug)]
pub struct AdamW {
    pub config: AdamWConfig,
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Number of updates applied so far (t in the bias corrections).
    pub step: u64,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> TrainResult<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            config,
            vars,
            m,
            v,
            step: 0,
        })
    }

    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// One update with learning rate `lr` from `grads` (one tensor per var, same order).
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> TrainResult<()> {
        let c = self.config;
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        for (i, (_, var)) in self.vars.iter().enumerate() {
            // Everything here is detached: a gradient from `backward()` still records the ops
            // that produced it (and so holds the step's activations), and the moments would chain
            // those graphs across every step — memory growing without bound (regression test
            // `optimizer_state_holds_no_graph`).
            let g = grads[i].detach();
            let mut p = var.as_tensor().detach();
            if c.weight_decay != 0.0 {
                p = (&p * (1.0 - lr * c.weight_decay))?;
            }
            self.m[i] = ((&self.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?.detach();
            self.v[i] = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?.detach();
            let denom = ((self.v[i].sqrt()? / bc2_sqrt)? + c.eps)?;
            let update = (self.m[i].div(&denom)? * (lr / bc1))?;
            var.set(&(p - update)?)?;
        }
        Ok(())
    }

    /// Whether every parameter is finite (a diverged update makes some ±∞ or NaN).
    pub fn params_finite(&self) -> TrainResult<bool> {
        for (_, v) in &self.vars {
            let s: f32 = v.as_tensor().sqr()?.sum_all()?.to_scalar()?;
            if !s.is_finite() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Moments as named tensors (`<key>.exp_avg`, `<key>.exp_avg_sq`) for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.vars.len());
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.push((format!("{name}.exp_avg"), self.m[i].clone()));
            out.push((format!("{name}.exp_avg_sq"), self.v[i].clone()));
        }
        out
    }

    /// Restores moments and step from a checkpoint.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> TrainResult<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (suffix, slot) in [("exp_avg", &mut self.m[i]), ("exp_avg_sq", &mut self.v[i])] {
                let key = format!("{name}.{suffix}");
                let t = tensors.get(&key).ok_or_else(|| {
                    TrainError::Checkpoint(format!("optimizer state has no `{key}`"))
                })?;
                if t.dims() != var.dims() {
                    return Err(TrainError::Checkpoint(format!(
                        "optimizer state `{key}` has shape {:?}, the variable {:?}",
                        t.dims(),
                        var.dims()
                    )));
                }
                *slot = t.to_dtype(var.dtype())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Global L2 norm of `grads`; when above `max_norm`, scales them by `max_norm / (norm + 1e-6)`
/// (PyTorch's `clip_grad_norm_`). Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: Option<f64>) -> TrainResult<f64> {
    let mut total = 0.0f64;
    for g in grads.iter() {
        total += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = total.sqrt();
    if let Some(max) = max_norm {
        let coef = max / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.iter_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Three AdamW steps on f(θ) = Σ θ² / 2 (gradient θ) against numbers from
    /// `torch.optim.AdamW([p], lr=0.1, weight_decay=0.01)` with p = [1, −2, 0.5].
    #[test]
    fn matches_pytorch_adamw_trajectory() {
        let var = Var::from_slice(&[1.0f32, -2.0, 0.5], 3, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(vec![("p".into(), var.clone())], AdamWConfig::default()).unwrap();
        for _ in 0..3 {
            let g = var.as_tensor().copy().unwrap();
            opt.step(&[g], 0.1).unwrap();
        }
        let got: Vec<f32> = var.as_tensor().to_vec1().unwrap();
        // torch 2.15: p = Parameter([1., -2., .5]); o = AdamW([p], lr=0.1, weight_decay=0.01)
        // three times: p.grad = p.detach().clone(); o.step()
        let want = [0.698_911_25_f32, -1.694_944_6, 0.203_712_4];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        assert_eq!(opt.step, 3);
    }

    /// Regression: the moments chained every step's gradient graph (and with it the step's
    /// activations), so a 500-step run of the demo's SFT grew to 13.6 GB.
    #[test]
    fn optimizer_state_holds_no_graph() {
        let var = Var::from_slice(&[1.0f32, -2.0, 0.5], 3, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(vec![("p".into(), var.clone())], AdamWConfig::default()).unwrap();
        for _ in 0..2 {
            // A gradient as backward() returns it: computed from the variable, so it records ops.
            let g = (var.as_tensor() * 2.0).unwrap();
            assert!(g.track_op());
            opt.step(&[g], 0.1).unwrap();
            assert!(!opt.m[0].track_op() && !opt.v[0].track_op());
        }
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let mut g = vec![Tensor::new(&[3.0f32, 4.0], &Device::Cpu).unwrap()];
        let n = clip_grad_norm(&mut g, Some(1.0)).unwrap();
        assert!((n - 5.0).abs() < 1e-9);
        let v: Vec<f32> = g[0].to_vec1().unwrap();
        assert!((v[0] - 0.6).abs() < 1e-5 && (v[1] - 0.8).abs() < 1e-5);
    }
}
