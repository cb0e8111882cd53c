//! Rotary position embeddings, computed exactly as transformers does.
//!
//! transformers computes `inv_freq` and the angle table in float32 even for a float64 or bf16
//! model (`inv_freq_expanded.float() @ position_ids.float()`, autocast disabled), so we do the
//! same arithmetic in f32 and only cast the final cos/sin to the compute dtype. The rotation
//! itself is composed from differentiable ops (`narrow`, `cat`, `mul`) — candle's fused
//! `rotary_emb::rope*` kernels have no backward (DESIGN.md §3 item 1).

use candle_core::{DType, Device, Tensor, D};

use crate::config::{ModelConfig, RopeScaling};
use crate::error::Result;

/// Inverse frequencies, one per pair of dimensions (`head_dim / 2` values).
pub fn inv_freq(cfg: &ModelConfig) -> Vec<f32> {
    let dim = cfg.head_dim;
    let base = cfg.rope_theta as f32;
    let plain: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
        .collect();
    match cfg.rope_scaling {
        RopeScaling::Default => plain,
        RopeScaling::Linear { factor } => plain.iter().map(|f| f / factor as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            // transformers `_compute_llama3_parameters`: long wavelengths are divided by
            // `factor`, short ones kept, the band between interpolated smoothly.
            let (factor, low, high) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
            );
            let old_ctx = original_max_position_embeddings as f32;
            let low_freq_wavelen = old_ctx / low;
            let high_freq_wavelen = old_ctx / high;
            plain
                .iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        f
                    };
                    // `~(w < high) & ~(w > low)` in transformers; the values are finite.
                    let is_medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
                    if is_medium {
                        let smooth = (old_ctx / wavelen - low) / (high - low);
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    } else {
                        scaled
                    }
                })
                .collect()
        }
    }
}

/// cos/sin tables for the given positions: two `[P, head_dim]` tensors in `dtype`.
/// The angle for position p and pair i is `inv_freq[i] · p`, duplicated across the two
/// halves (`emb = cat(freqs, freqs)` in transformers).
pub fn cos_sin(
    inv_freq: &[f32],
    positions: &[u32],
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = inv_freq.len();
    let mut cos = Vec::with_capacity(positions.len() * half * 2);
    let mut sin = Vec::with_capacity(positions.len() * half * 2);
    for &p in positions {
        let angles: Vec<f32> = inv_freq.iter().map(|&f| f * p as f32).collect();
        for _ in 0..2 {
            cos.extend(angles.iter().map(|a| a.cos()));
            sin.extend(angles.iter().map(|a| a.sin()));
        }
    }
    let shape = (positions.len(), half * 2);
    let cos = Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?;
    Ok((cos, sin))
}

/// Applies the rotation to `x: [B, H, T, d]` with `cos`, `sin` broadcastable to it
/// (`[T, d]` when all rows share positions, `[B, 1, T, d]` otherwise).
/// `x·cos + rotate_half(x)·sin`, `rotate_half(x) = cat(−x₂, x₁)`.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}
