//! Fused CPU kernels *with* a backward, for the decoder's elementwise and row-wise ops.
//!
//! candle's autograd keeps every intermediate of a composed op alive until backward and runs
//! one small kernel per node there; for RMSNorm, softmax, SwiGLU and RoPE that is most of
//! the step's memory traffic and allocations outside the matmuls. Each op here is one
//! `CustomOp` whose forward is one pass over its rows (rayon over rows) and whose `bwd`
//! is one more pass, computed from what the graph already holds (the op's inputs and output):
//!
//! ```text
//! rms_norm     y = w ⊙ x / s,  s = √(mean(x²)+ε)      dx = (w⊙g)/s − x·Σ(w⊙g⊙x)/(n s³)
//!                                                     dw = Σ_rows g ⊙ x / s   (only if w trains)
//! swiglu       y = silu(a) ⊙ b                        da = g ⊙ b ⊙ σ(a)(1 + a(1 − σ(a)))
//!                                                     db = g ⊙ silu(a)
//! softmax      y = softmax(c·x + m) (last dim)        dx = c · y ⊙ (g − Σ g⊙y)   (m: no grad)
//! rope         y = x⊙cos + rotate_half(x)⊙sin         dx₁ = g₁cos₁ + g₂sin₂, dx₂ = g₂cos₂ − g₁sin₁
//! dropout      y = x ⊙ mask (mask drawn on the fly)    dx = g ⊙ mask (drawn again)
//! ```
//!
//! The kernels are f32 on CPU only; [`supported`] says when they apply, and the decoder falls
//! back to the composed versions ([`crate::ops::rms_norm`], [`crate::ops::softmax_last_dim`],
//! [`crate::rope::apply`], `silu(a) * b`) for every other dtype or device. Those composed
//! versions stay the reference of `tests/fused_ops.rs`. Also here: the per-row log-softmax
//! kernels of [`crate::ops::lm_head_logprobs`] (forward and gradient of its recomputed logit
//! chunks). What does not live here: matmuls ([`crate::ops`]).

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Storage, Tensor,
};
use rayon::prelude::*;

use crate::error::Result;

/// Which fused kernels the decoder uses. All on by default; the environment variable
/// `LAMBDA_DPO_FUSED` overrides it when the model is loaded: `0`/`off`/`none` turns all off,
/// a comma list (`rms_norm,swiglu,softmax,rope,lm_head,dropout`) turns on just those (for benchmarking one
/// op at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedOps {
    pub rms_norm: bool,
    pub swiglu: bool,
    pub softmax: bool,
    pub rope: bool,
    /// The row kernels of the LM-head log-softmax ([`log_softmax_pick`] and its gradient).
    pub lm_head: bool,
    /// LoRA dropout with its mask drawn inside the op ([`dropout`]).
    pub dropout: bool,
}

impl FusedOps {
    pub const ALL: Self = Self {
        rms_norm: true,
        swiglu: true,
        softmax: true,
        rope: true,
        lm_head: true,
        dropout: true,
    };
    pub const NONE: Self = Self {
        rms_norm: false,
        swiglu: false,
        softmax: false,
        rope: false,
        lm_head: false,
        dropout: false,
    };

    /// [`FusedOps::ALL`] unless `LAMBDA_DPO_FUSED` says otherwise.
    pub fn from_env() -> Self {
        match std::env::var("LAMBDA_DPO_FUSED") {
            Ok(v) => Self::parse(&v),
            Err(_) => Self::ALL,
        }
    }

    /// `1`/`on`/`all`/empty → all, `0`/`off`/`none` → none, else a comma list of op names
    /// (unknown names are ignored).
    pub fn parse(v: &str) -> Self {
        let v = v.trim().to_ascii_lowercase();
        match v.as_str() {
            "" | "1" | "on" | "all" | "true" => Self::ALL,
            "0" | "off" | "none" | "false" => Self::NONE,
            list => {
                let has = |name: &str| list.split(',').any(|s| s.trim() == name);
                Self {
                    rms_norm: has("rms_norm"),
                    swiglu: has("swiglu"),
                    softmax: has("softmax"),
                    rope: has("rope"),
                    lm_head: has("lm_head"),
                    dropout: has("dropout"),
                }
            }
        }
    }
}

impl Default for FusedOps {
    fn default() -> Self {
        Self::ALL
    }
}

/// Whether the fused kernels can run on these tensors: all f32, all on the CPU.
pub fn supported(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.dtype() == DType::F32 && t.device().is_cpu())
}

/// Rows per rayon task: enough elements per task (≈16k) that scheduling is noise.
fn min_rows(row_len: usize) -> usize {
    (16 * 1024 / row_len.max(1)).max(1)
}

fn bad(op: &str, what: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{op}: {what}"))
}

/// The f32 elements of a contiguous CPU layout.
fn slice<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| bad(op, "input is not contiguous"))?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

/// Runs `f` on the f32 elements of `t` (made contiguous first).
fn with_f32<R>(op: &str, t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => Ok(f(slice(op, c, l)?)),
        _ => Err(bad(op, "expected a CPU tensor")),
    }
}

/// Element offset of row `r` of a `[..., n]` layout whose last stride is 1 (other strides
/// arbitrary, 0 for broadcast dims): `start + Σ_k idx_k · stride_k` over the leading dims.
struct RowIndex {
    start: usize,
    dims: Vec<usize>,
    strides: Vec<usize>,
}

impl RowIndex {
    fn new(op: &str, l: &Layout) -> candle_core::Result<Self> {
        let dims = l.dims();
        let stride = l.stride();
        if dims.is_empty() || (dims[dims.len() - 1] > 1 && stride[dims.len() - 1] != 1) {
            return Err(bad(op, "last dim must be contiguous"));
        }
        let k = dims.len() - 1;
        Ok(Self {
            start: l.start_offset(),
            dims: dims[..k].to_vec(),
            strides: stride[..k].to_vec(),
        })
    }

    fn offset(&self, mut r: usize) -> usize {
        let mut off = self.start;
        for (d, s) in self.dims.iter().zip(&self.strides).rev() {
            off += (r % d) * s;
            r /= d;
        }
        off
    }
}

fn cpu_tensor(
    v: Vec<f32>,
    shape: &Shape,
    dev: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    Tensor::from_vec(v, shape.clone(), dev)
}

// ------------------------------------------------------------------------------------------
// RMSNorm

/// `y = w ⊙ x / √(mean(x²) + ε)` over the last dim; `x: [..., n]`, `w: [n]`, both f32.
/// Gradients for x always, for w only when w is tracked (full fine-tuning).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    Ok(x.apply_op2(&w, RmsNorm { eps: eps as f32 })?)
}

struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s1, l1)?;
        let w = slice(self.name(), s2, l2)?;
        let n = *l1
            .dims()
            .last()
            .ok_or_else(|| bad(self.name(), "scalar input"))?;
        if w.len() != n {
            return Err(bad(
                self.name(),
                &format!("weight has {} values, rows {n}", w.len()),
            ));
        }
        let mut out = vec![0f32; x.len()];
        if n > 0 {
            let eps = self.eps;
            out.par_chunks_mut(n)
                .with_min_len(min_rows(n))
                .zip(x.par_chunks(n))
                .for_each(|(y, x)| {
                    let ss: f32 = x.iter().map(|v| v * v).sum();
                    let s = (ss / n as f32 + eps).sqrt();
                    for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                        *y = (x / s) * w;
                    }
                });
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let n = x.dim(candle_core::D::Minus1)?;
        let train_w = w.track_op();
        let eps = self.eps;
        let (dx, dw) = with_f32(name, x, |x| {
            with_f32(name, w, |w| {
                with_f32(name, grad, |g| {
                    let mut dx = vec![0f32; x.len()];
                    if n == 0 {
                        return (dx, vec![0f32; w.len()]);
                    }
                    dx.par_chunks_mut(n)
                        .with_min_len(min_rows(n))
                        .zip(x.par_chunks(n).zip(g.par_chunks(n)))
                        .for_each(|(dx, (x, g))| {
                            let ss: f32 = x.iter().map(|v| v * v).sum();
                            let r = 1.0 / (ss / n as f32 + eps).sqrt();
                            let dot: f32 =
                                x.iter().zip(g).zip(w).map(|((x, g), w)| x * g * w).sum();
                            let c = dot * r * r * r / n as f32;
                            for (((d, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                                *d = r * w * g - c * x;
                            }
                        });
                    let dw = if train_w {
                        // Σ over rows of g ⊙ x / s, reduced per thread then summed.
                        x.par_chunks(n)
                            .zip(g.par_chunks(n))
                            .with_min_len(min_rows(n))
                            .fold(
                                || vec![0f32; n],
                                |mut acc, (x, g)| {
                                    let ss: f32 = x.iter().map(|v| v * v).sum();
                                    let r = 1.0 / (ss / n as f32 + eps).sqrt();
                                    for ((a, &x), &g) in acc.iter_mut().zip(x).zip(g) {
                                        *a += g * x * r;
                                    }
                                    acc
                                },
                            )
                            .reduce(
                                || vec![0f32; n],
                                |mut a, b| {
                                    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                                    a
                                },
                            )
                    } else {
                        Vec::new()
                    };
                    (dx, dw)
                })
            })
        })???;
        let dx = cpu_tensor(dx, x.shape(), x.device())?;
        let dw = if train_w {
            Some(cpu_tensor(dw, w.shape(), w.device())?)
        } else {
            None
        };
        Ok((Some(dx), dw))
    }
}

// ------------------------------------------------------------------------------------------
// SwiGLU

/// `silu(a) ⊙ b` for two f32 tensors of the same shape, with gradients for both.
pub fn swiglu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dims() != b.dims() {
        return Err(crate::error::ModelError::Input(format!(
            "swiglu: gate {:?} and up {:?} differ",
            a.dims(),
            b.dims()
        )));
    }
    let a = a.contiguous()?;
    let b = b.contiguous()?;
    Ok(a.apply_op2(&b, Swiglu)?)
}

struct Swiglu;

/// Elements per rayon task of the elementwise kernels.
const ELEM_CHUNK: usize = 16 * 1024;

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let a = slice(self.name(), s1, l1)?;
        let b = slice(self.name(), s2, l2)?;
        let mut out = vec![0f32; a.len()];
        out.par_chunks_mut(ELEM_CHUNK)
            .zip(a.par_chunks(ELEM_CHUNK).zip(b.par_chunks(ELEM_CHUNK)))
            .for_each(|(y, (a, b))| {
                for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                    *y = a / (1.0 + (-a).exp()) * b;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let (da, db) = with_f32(name, a, |a| {
            with_f32(name, b, |b| {
                with_f32(name, grad, |g| {
                    let mut da = vec![0f32; a.len()];
                    let mut db = vec![0f32; a.len()];
                    da.par_chunks_mut(ELEM_CHUNK)
                        .zip(db.par_chunks_mut(ELEM_CHUNK))
                        .zip(a.par_chunks(ELEM_CHUNK))
                        .zip(b.par_chunks(ELEM_CHUNK).zip(g.par_chunks(ELEM_CHUNK)))
                        .for_each(|(((da, db), a), (b, g))| {
                            for i in 0..a.len() {
                                let sig = 1.0 / (1.0 + (-a[i]).exp());
                                let silu = a[i] * sig;
                                da[i] = g[i] * b[i] * (sig * (1.0 + a[i] * (1.0 - sig)));
                                db[i] = g[i] * silu;
                            }
                        });
                    (da, db)
                })
            })
        })???;
        Ok((
            Some(cpu_tensor(da, a.shape(), a.device())?),
            Some(cpu_tensor(db, b.shape(), b.device())?),
        ))
    }
}

// ------------------------------------------------------------------------------------------
// Softmax

/// `softmax(scale · x + mask)` over the last dim, f32: `x: [..., S]`, `mask` additive (0 or
/// −∞) and broadcastable to x (no gradient). Masked entries get exactly 0; a row masked
/// entirely gives 0 everywhere (the composed version gives NaN there).
pub fn scaled_masked_softmax(x: &Tensor, scale: f64, mask: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    // The mask's own last dim must be contiguous; its leading dims may broadcast (stride 0).
    let mask = mask.contiguous()?.broadcast_as(x.shape())?;
    Ok(x.apply_op2(
        &mask,
        Softmax {
            scale: scale as f32,
        },
    )?)
}

struct Softmax {
    scale: f32,
}

impl CustomOp2 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s1, l1)?;
        let mask_all = s2.as_slice::<f32>()?;
        let rows = RowIndex::new(self.name(), l2)?;
        let n = *l1
            .dims()
            .last()
            .ok_or_else(|| bad(self.name(), "scalar input"))?;
        let mut out = vec![0f32; x.len()];
        if n > 0 {
            let scale = self.scale;
            out.par_chunks_mut(n)
                .with_min_len(min_rows(n))
                .zip(x.par_chunks(n))
                .enumerate()
                .for_each(|(r, (y, x))| {
                    let off = rows.offset(r);
                    let m = &mask_all[off..off + n];
                    let mut max = f32::NEG_INFINITY;
                    for ((y, &x), &m) in y.iter_mut().zip(x).zip(m) {
                        *y = x * scale + m;
                        max = max.max(*y);
                    }
                    if max == f32::NEG_INFINITY {
                        y.fill(0.0);
                        return;
                    }
                    let mut sum = 0f32;
                    for y in y.iter_mut() {
                        *y = (*y - max).exp();
                        sum += *y;
                    }
                    for y in y.iter_mut() {
                        *y /= sum;
                    }
                });
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let n = x.dim(candle_core::D::Minus1)?;
        let scale = self.scale;
        let dx = with_f32(name, res, |y| {
            with_f32(name, grad, |g| {
                let mut dx = vec![0f32; y.len()];
                if n > 0 {
                    dx.par_chunks_mut(n)
                        .with_min_len(min_rows(n))
                        .zip(y.par_chunks(n).zip(g.par_chunks(n)))
                        .for_each(|(dx, (y, g))| {
                            let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                            for ((d, &y), &g) in dx.iter_mut().zip(y).zip(g) {
                                *d = scale * y * (g - dot);
                            }
                        });
                }
                dx
            })
        })??;
        Ok((Some(cpu_tensor(dx, x.shape(), x.device())?), None))
    }
}

// ------------------------------------------------------------------------------------------
// RoPE

/// `x ⊙ cos + rotate_half(x) ⊙ sin`, `rotate_half(x) = cat(−x₂, x₁)` over the last dim (d even),
/// f32: `x: [..., T, d]`, `cos`, `sin` broadcastable to x (no gradient; transformers' tables,
/// whatever the scaling that made them).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let d = x.dim(candle_core::D::Minus1)?;
    if d % 2 != 0 {
        return Err(crate::error::ModelError::Input(format!(
            "rope: head dim {d} is odd"
        )));
    }
    let cos = cos.contiguous()?.broadcast_as(x.shape())?;
    let sin = sin.contiguous()?.broadcast_as(x.shape())?;
    Ok(x.apply_op3(&cos, &sin, Rope)?)
}

struct Rope;

/// One row of the rotation, forward (`sign = 1`) or its transpose (`sign = −1`, the backward):
/// forward `y₁ = x₁c₁ − x₂s₁, y₂ = x₂c₂ + x₁s₂`; backward `y₁ = x₁c₁ + x₂s₂, y₂ = x₂c₂ − x₁s₁`.
fn rope_row(y: &mut [f32], x: &[f32], c: &[f32], s: &[f32], backward: bool) {
    let h = x.len() / 2;
    let (x1, x2) = x.split_at(h);
    let (c1, c2) = c.split_at(h);
    let (s1, s2) = s.split_at(h);
    let (y1, y2) = y.split_at_mut(h);
    if backward {
        for i in 0..h {
            y1[i] = x1[i] * c1[i] + x2[i] * s2[i];
            y2[i] = x2[i] * c2[i] - x1[i] * s1[i];
        }
    } else {
        for i in 0..h {
            y1[i] = x1[i] * c1[i] + (-x2[i]) * s1[i];
            y2[i] = x2[i] * c2[i] + x1[i] * s2[i];
        }
    }
}

fn rope_pass(
    name: &str,
    x: &[f32],
    cos: (&[f32], &Layout),
    sin: (&[f32], &Layout),
    d: usize,
    backward: bool,
) -> candle_core::Result<Vec<f32>> {
    let ci = RowIndex::new(name, cos.1)?;
    let si = RowIndex::new(name, sin.1)?;
    let mut out = vec![0f32; x.len()];
    if d > 0 {
        out.par_chunks_mut(d)
            .with_min_len(min_rows(d))
            .zip(x.par_chunks(d))
            .enumerate()
            .for_each(|(r, (y, x))| {
                let (co, so) = (ci.offset(r), si.offset(r));
                rope_row(y, x, &cos.0[co..co + d], &sin.0[so..so + d], backward);
            });
    }
    Ok(out)
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s1, l1)?;
        let d = *l1
            .dims()
            .last()
            .ok_or_else(|| bad(self.name(), "scalar input"))?;
        let out = rope_pass(
            self.name(),
            x,
            (s2.as_slice::<f32>()?, l2),
            (s3.as_slice::<f32>()?, l3),
            d,
            false,
        )?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let d = x.dim(candle_core::D::Minus1)?;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let (cs, cl) = cos.storage_and_layout();
        let (ss, sl) = sin.storage_and_layout();
        let dx = match (&*gs, &*cs, &*ss) {
            (Storage::Cpu(g), Storage::Cpu(c), Storage::Cpu(s)) => rope_pass(
                name,
                slice(name, g, gl)?,
                (c.as_slice::<f32>()?, cl),
                (s.as_slice::<f32>()?, sl),
                d,
                true,
            )?,
            _ => return Err(bad(name, "expected CPU tensors")),
        };
        Ok((Some(cpu_tensor(dx, x.shape(), x.device())?), None, None))
    }
}

// ------------------------------------------------------------------------------------------
// LM-head log-softmax (the row kernels of `ops::lm_head_logprobs`, which recomputes the
// logits chunk by chunk and so needs no graph of its own).

/// `log softmax(l)[t]` per row of f32 logits `l: [c, V]` with targets `t: [c]` → `[c]` f32,
/// in one pass per row (max, Σ exp, pick) instead of six whole-chunk tensors.
pub fn log_softmax_pick(logits: &Tensor, targets: &[u32]) -> candle_core::Result<Tensor> {
    let name = "fused-log-softmax-pick";
    let (c, v) = logits.dims2()?;
    if targets.len() != c {
        return Err(bad(
            name,
            &format!("{} targets for {c} rows", targets.len()),
        ));
    }
    let out = with_f32(name, logits, |l| {
        let mut out = vec![0f32; c];
        if v > 0 {
            out.par_iter_mut()
                .zip(l.par_chunks(v).zip(targets.par_iter()))
                .for_each(|(o, (row, &t))| {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = row.iter().map(|x| (x - max).exp()).sum();
                    *o = row[t as usize] - (sum.ln() + max);
                });
        }
        out
    })?;
    Tensor::from_vec(out, c, logits.device())
}

/// `∂/∂l = g · (onehot(t) − softmax(l))` per row of f32 logits `l: [c, V]`, `g: [c]` → `[c, V]`.
pub fn log_softmax_pick_grad(
    logits: &Tensor,
    targets: &[u32],
    grad: &Tensor,
) -> candle_core::Result<Tensor> {
    let name = "fused-log-softmax-pick-grad";
    let (c, v) = logits.dims2()?;
    if targets.len() != c || grad.elem_count() != c {
        return Err(bad(name, "targets, gradient and rows differ in count"));
    }
    let grad = grad.to_dtype(DType::F32)?;
    let out = with_f32(name, logits, |l| {
        with_f32(name, &grad, |g| {
            let mut out = vec![0f32; c * v];
            if v > 0 {
                out.par_chunks_mut(v)
                    .zip(l.par_chunks(v))
                    .zip(targets.par_iter().zip(g.par_iter()))
                    .for_each(|((d, row), (&t, &g))| {
                        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let mut sum = 0f32;
                        for (d, &x) in d.iter_mut().zip(row) {
                            *d = (x - max).exp();
                            sum += *d;
                        }
                        for d in d.iter_mut() {
                            *d = -(*d / sum) * g;
                        }
                        d[t as usize] += g;
                    });
            }
            out
        })
    })??;
    Tensor::from_vec(out, (c, v), logits.device())
}

// ------------------------------------------------------------------------------------------
// LoRA dropout

/// Inverted dropout of a contiguous f32 `x: [m, n]` (row-major), the mask drawn on the fly:
/// `segments` are consecutive runs `(rows, seed)` covering the m rows, and element k of a run
/// (counted from the run's start, row-major) is 0 when draw k of `SplitMix64(seed)` falls
/// below `p`, else `1/(1−p)`. The same values as building the mask with sequential draws and
/// multiplying ([`crate::lora::SplitMix64`] is counter-based: draw k depends on k alone), but
/// in parallel, without the mask tensor kept by the graph, and with the backward (`g ⊙ mask`)
/// drawing the mask again.
pub fn dropout(x: &Tensor, p: f64, segments: &[(usize, u64)]) -> Result<Tensor> {
    let (m, n) = x.dims2()?;
    check_dropout_rows(segments, m)?;
    let mut starts = Vec::with_capacity(segments.len());
    let mut at = 0;
    for &(r, seed) in segments {
        starts.push((at, seed));
        at += r * n;
    }
    let x = x.contiguous()?;
    Ok(x.apply_op1(Dropout { p, starts })?)
}

/// The dropout runs `(rows, seed)` must cover exactly the `m` input rows.
pub(crate) fn check_dropout_rows(segments: &[(usize, u64)], m: usize) -> Result<()> {
    let rows: usize = segments.iter().map(|&(r, _)| r).sum();
    if rows != m {
        return Err(crate::error::ModelError::Input(format!(
            "LoRA dropout: seeds cover {rows} of {m} input rows"
        )));
    }
    Ok(())
}

struct Dropout {
    p: f64,
    /// Element offset where each run starts, and its seed (increasing offsets).
    starts: Vec<(usize, u64)>,
}

impl Dropout {
    /// `out[i] = x[i] · mask[i]` for the elements of one chunk starting at element `first`.
    fn apply(&self, first: usize, x: &[f32], out: &mut [f32]) {
        let keep = (1.0 / (1.0 - self.p)) as f32;
        let mut run = self.starts.partition_point(|&(s, _)| s <= first) - 1;
        for (i, (y, &v)) in out.iter_mut().zip(x).enumerate() {
            let e = first + i;
            while run + 1 < self.starts.len() && self.starts[run + 1].0 <= e {
                run += 1;
            }
            let (start, seed) = self.starts[run];
            let draw = crate::lora::SplitMix64::draw_f64(seed, (e - start) as u64);
            // x · mask, as the composed version multiplies (0 · x keeps x's sign and NaN).
            *y = v * if draw < self.p { 0.0 } else { keep };
        }
    }

    fn run(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(ELEM_CHUNK)
            .zip(x.par_chunks(ELEM_CHUNK))
            .enumerate()
            .for_each(|(c, (y, x))| self.apply(c * ELEM_CHUNK, x, y));
        out
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "fused-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s, l)?;
        Ok((CpuStorage::F32(self.run(x)), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = with_f32(self.name(), grad, |g| self.run(g))?;
        Ok(Some(cpu_tensor(dx, x.shape(), x.device())?))
    }
}
