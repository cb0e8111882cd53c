//! What the bench measures besides wall time: the process's peak resident memory, this
//! machine's f32 matmul peak (the denominator of MFU), parameter counts and summary statistics.
//!
//! ```text
//! matmul peak  = max over reps of 2·n³ / t   (candle f32 matmul, n = 1024, same thread count)
//! MFU          = model FLOPs per second / matmul peak
//! ```

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use lambda_dpo_model::lora::Target;
use lambda_dpo_model::ModelConfig;
use serde::Serialize;

/// A `kB` field of `/proc/self/status` (`VmHWM`, `VmRSS`) in MiB; `None` off Linux.
pub fn status_mib(field: &str) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) to the current RSS (`echo 5 >
/// /proc/self/clear_refs`, Linux ≥ 4.0), so a later `VmHWM` is the peak of what ran since.
/// Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Starts measuring the steps' own peak: returns the peak so far (`VmHWM`: model loading and
/// setup), then resets the mark and returns the RSS at this point, the steps' baseline. The
/// second is `None` when the reset is not available (then no steps peak can be given).
pub fn start_steps_rss() -> (Option<f64>, Option<f64>) {
    let setup_peak = status_mib("VmHWM");
    let before = if reset_peak_rss() {
        status_mib("VmRSS")
    } else {
        None
    };
    (setup_peak, before)
}

/// Best f32 throughput on `dev` of an `n × n × n` candle matmul over `reps` runs after one warm-up, in
/// FLOP/s (2·n³ per product).
pub fn matmul_peak_flops(n: usize, reps: usize, dev: &Device) -> Result<f64> {
    let a = Tensor::rand(-1f32, 1f32, (n, n), dev)?;
    let b = Tensor::rand(-1f32, 1f32, (n, n), dev)?;
    let mut best = f64::INFINITY;
    for rep in 0..=reps {
        let t = Instant::now();
        let _c = a.matmul(&b)?;
        // Asynchronous devices: wait for the kernel (a no-op on the CPU).
        dev.synchronize()?;
        let s = t.elapsed().as_secs_f64();
        if rep > 0 {
            best = best.min(s);
        }
    }
    Ok(2.0 * (n as f64).powi(3) / best)
}

/// Parameter counts of a model config.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ParamCount {
    /// Every stored parameter (embedding once when tied, biases, norms).
    pub total: usize,
    /// The weights that take part in a matmul per token: the seven projections of every layer
    /// and the LM head (counted even when tied to the embedding: the lookup is free, the head
    /// is not). This is N in the FLOP formulas.
    pub matmul: usize,
}

pub fn param_count(c: &ModelConfig) -> ParamCount {
    let (e, v) = (c.hidden_size, c.vocab_size);
    let proj: usize = Target::ALL
        .iter()
        .map(|t| {
            let (o, i) = t.shape(c);
            o * i
        })
        .sum();
    let d = c.head_dim;
    let mut bias = 0;
    if c.qkv_bias {
        bias += (c.num_heads + 2 * c.num_kv_heads) * d;
    }
    if c.o_bias {
        bias += e;
    }
    if c.mlp_bias {
        bias += 2 * c.intermediate_size + e;
    }
    let per_layer = proj + bias + 2 * e;
    let head = if c.tie_word_embeddings { 0 } else { v * e };
    ParamCount {
        total: v * e + head + c.num_layers * per_layer + e,
        matmul: c.num_layers * proj + v * e,
    }
}

/// Median, minimum and maximum of a sample (milliseconds in the reports).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// `None` for an empty sample.
    pub fn of(xs: &[f64]) -> Option<Self> {
        if xs.is_empty() {
            return None;
        }
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let m = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[m]
        } else {
            0.5 * (v[m - 1] + v[m])
        };
        Some(Self {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

/// The compute dtype's name as the reports write it.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        _ => "f32",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_samples() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Stats::of(&[]).is_none());
    }
}
