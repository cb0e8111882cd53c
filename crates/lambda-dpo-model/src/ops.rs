//! Differentiable building blocks that candle lacks or gets wrong for training.
//!
//! - [`frozen_linear`]: `x·Wᵀ` whose backward returns only `∂L/∂x`. candle's own matmul
//!   backward also materialises `∂L/∂W` for every frozen base weight (DESIGN.md §3 item 2),
//!   which costs a full copy of the model in gradient memory and a third of backward FLOPs.
//! - [`rms_norm`], [`softmax_last_dim`]: composed from ops that have a backward, statistics in
//!   f32 (candle's fused `rms_norm`/`softmax_last_dim` silently drop gradients).
//! - [`lm_head_logprobs`]: `log softmax(h·Eᵀ)[target]` per row, computed in vocabulary chunks,
//!   whose backward recomputes the logits chunk by chunk, so the `[M, V]` logits are never kept
//!   alive by the graph (they are the memory peak of preference training, DESIGN.md §3 item 6).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Storage, Tensor, D};

use crate::error::Result;

/// `y = x·Wᵀ` for a frozen `W: [out, in]`; `x: [..., in]` → `[..., out]`.
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let k = *dims.last().expect("linear input has at least one dim");
    let m: usize = dims[..dims.len() - 1].iter().product();
    let (n, _) = w.dims2()?;
    let x2 = x.reshape((m, k))?.contiguous()?; // [M, in]
    let y = if w.is_variable() {
        // Full fine-tuning: the weight is trained, so candle's own matmul (with ∂L/∂W).
        x2.matmul(&w.t()?)?
    } else if x2.track_op() {
        // `w.detach()`: a frozen weight must never be walked by backprop (the op returns no
        // gradient for it, and candle panics on a tracked input left without one).
        x2.apply_op2(&w.detach(), FrozenMatmul)?
    } else {
        // No graph to build: the plain kernel is the same computation.
        x2.matmul(&w.t()?)?
    };
    let mut out = dims;
    *out.last_mut().expect("non-empty") = n;
    Ok(y.reshape(out)?)
}

/// `[M, K] × [N, K]ᵀ` with a gradient for the left argument only.
struct FrozenMatmul;

impl CustomOp2 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (n, k2) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("frozen-matmul: inner dims differ ({k} vs {k2})");
        }
        // Wᵀ as a strided view: the kernel reads it column-major, no copy.
        let wt = l2.transpose(0, 1)?;
        let out = s1.matmul(s2, (1, m, n, k), l1, &wt)?;
        Ok((out, Shape::from((m, n))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (n, _) = l2.shape().dims2()?;
        let wt = l2.transpose(0, 1)?;
        let out = s1.matmul(s2, (1, m, n, k), l1, &wt)?;
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // ∂L/∂x = g·W; W is frozen, so no second gradient.
        Ok((Some(grad.matmul(w)?), None))
    }
}

/// RMSNorm as transformers computes it: statistics in f32, the weight applied after casting
/// back (`weight * (x·rsqrt(mean(x²)+ε)).to(input_dtype)`).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = xf.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)?;
    Ok(normed.broadcast_mul(weight)?)
}

/// Softmax over the last dim in f32. The row maximum is detached: softmax is invariant to it,
/// so the gradient is exact without back-propagating through `max`.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let xf = x.to_dtype(DType::F32)?;
    let max = xf.max_keepdim(D::Minus1)?.detach();
    let e = xf.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&sum)?)
}

/// Log-probabilities `log softmax(h·Eᵀ)[t]` for each row of `hidden: [M, H]` and its target
/// token, in f32, `[M]`. `rows_per_chunk` bounds the transient `[chunk, V]` logits. `fused`
/// runs each chunk's log-softmax (and its gradient) as one row kernel on the CPU
/// ([`crate::kernels::log_softmax_pick`]) instead of composed whole-chunk tensor ops.
pub fn lm_head_logprobs(
    hidden: &Tensor,
    lm_head: &Tensor,
    targets: &[u32],
    rows_per_chunk: usize,
    fused: bool,
) -> Result<Tensor> {
    let (m, _) = hidden.dims2()?;
    let fused = fused && hidden.device().is_cpu();
    let values = lm_head_values(&hidden.detach(), lm_head, targets, rows_per_chunk, fused)?; // [M] f32
    if !hidden.track_op() && !lm_head.is_variable() {
        return Ok(values);
    }
    let op = LmHeadLogprobs {
        targets: targets.to_vec(),
        values: values.clone(),
        rows_per_chunk,
        fused,
    };
    let out = hidden.apply_op2(lm_head, op)?;
    debug_assert_eq!(out.dims1()?, m);
    Ok(out)
}

/// The forward computation of [`lm_head_logprobs`], chunk by chunk, no graph.
fn lm_head_values(
    hidden: &Tensor,
    lm_head: &Tensor,
    targets: &[u32],
    rows_per_chunk: usize,
    fused: bool,
) -> candle_core::Result<Tensor> {
    let (m, _) = hidden.dims2()?;
    let dev = hidden.device();
    let mut parts = Vec::new();
    let mut start = 0;
    while start < m {
        let len = rows_per_chunk.min(m - start);
        let h = hidden.narrow(0, start, len)?;
        let logits = h.matmul(&lm_head.t()?)?.to_dtype(DType::F32)?; // [c, V]
        if fused {
            parts.push(crate::kernels::log_softmax_pick(
                &logits,
                &targets[start..start + len],
            )?); // [c]
            start += len;
            continue;
        }
        let tgt = Tensor::from_slice(&targets[start..start + len], (len, 1), dev)?;
        let picked = logits.gather(&tgt, 1)?.squeeze(1)?; // [c]
        let max = logits.max_keepdim(1)?; // [c, 1]
        let lse = logits
            .broadcast_sub(&max)?
            .exp()?
            .sum_keepdim(1)?
            .log()?
            .add(&max)?
            .squeeze(1)?;
        parts.push((picked - lse)?);
        start += len;
    }
    Tensor::cat(&parts, 0)
}

/// CustomOp carrying the precomputed values of [`lm_head_values`]; its backward recomputes
/// each chunk's softmax: `∂/∂h = g·(onehot(t) − softmax(h·Eᵀ))·E`.
struct LmHeadLogprobs {
    targets: Vec<u32>,
    values: Tensor,
    rows_per_chunk: usize,
    fused: bool,
}

impl CustomOp2 for LmHeadLogprobs {
    fn name(&self) -> &'static str {
        "lm-head-logprobs"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (storage, layout) = self.values.storage_and_layout();
        match &*storage {
            Storage::Cpu(s) if layout.is_contiguous() && layout.start_offset() == 0 => {
                Ok((s.clone(), layout.shape().clone()))
            }
            _ => candle_core::bail!("lm-head-logprobs: values must be a contiguous CPU tensor"),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (storage, layout) = self.values.storage_and_layout();
        match &*storage {
            Storage::Cuda(s) if layout.is_contiguous() && layout.start_offset() == 0 => {
                Ok((s.try_clone(layout)?, layout.shape().clone()))
            }
            _ => candle_core::bail!("lm-head-logprobs: values must be a contiguous CUDA tensor"),
        }
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        lm_head: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (m, _) = hidden.dims2()?;
        let dev = hidden.device();
        let vocab = lm_head.dim(0)?;
        // Full fine-tuning trains the vocabulary matrix too: ∂/∂E = Σ_chunks dlogitsᵀ·h.
        let train_head = lm_head.is_variable();
        let mut d_head: Option<Tensor> = None;
        let mut parts = Vec::new();
        let mut start = 0;
        while start < m {
            let len = self.rows_per_chunk.min(m - start);
            let h = hidden.narrow(0, start, len)?;
            let logits = h.matmul(&lm_head.t()?)?.to_dtype(DType::F32)?; // [c, V]
            let targets = &self.targets[start..start + len];
            let g = grad.narrow(0, start, len)?.to_dtype(DType::F32)?; // [c]
            let dlogits = if self.fused {
                crate::kernels::log_softmax_pick_grad(&logits, targets, &g)? // [c, V]
            } else {
                let max = logits.max_keepdim(1)?;
                let e = logits.broadcast_sub(&max)?.exp()?;
                let p = e.broadcast_div(&e.sum_keepdim(1)?)?; // [c, V]
                let tgt = Tensor::from_slice(targets, len, dev)?;
                let onehot = one_hot(&tgt, vocab, dev)?; // [c, V]
                (onehot - p)?.broadcast_mul(&g.unsqueeze(1)?)? // [c, V]
            };
            let dlogits = dlogits.to_dtype(lm_head.dtype())?; // [c, V]
            parts.push(dlogits.matmul(lm_head)?); // [c, H]
            if train_head {
                let dw = dlogits.t()?.matmul(&h.to_dtype(lm_head.dtype())?)?; // [V, H]
                d_head = Some(match d_head {
                    Some(acc) => (acc + dw)?,
                    None => dw,
                });
            }
            start += len;
        }
        Ok((
            Some(Tensor::cat(&parts, 0)?.to_dtype(hidden.dtype())?),
            d_head,
        ))
    }
}

fn one_hot(
    targets: &Tensor,
    depth: usize,
    dev: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let n = targets.dims1()?;
    let ones = Tensor::ones((n, 1), DType::F32, dev)?;
    Tensor::zeros((n, depth), DType::F32, dev)?.scatter_add(&targets.unsqueeze(1)?, &ones, 1)
}
