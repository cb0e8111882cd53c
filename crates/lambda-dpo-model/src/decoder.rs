//! The Llama / Qwen2 decoder, written for training: full-sequence forward, differentiable
//! everywhere, base weights frozen by construction.
//!
//! One code path serves both families; they differ only in which projections carry a bias
//! (resolved in [`ModelConfig`]). [`Model::forward_cached`] is the inference twin used by
//! generation: the same projections, rope and attention (one shared `attend`), over the new
//! tokens only, with keys and values kept in a [`KvCache`] and no autograd graph.
//! [`Model::hidden_states_packed`] runs one prompt and several continuations as one sequence
//! ([`PackedLayout`]: restarted positions, block attention), so the prompt is computed once.
//! Every training forward is `Model::embed` then `Model::block` L times: one block body, which
//! gradient checkpointing ([`crate::checkpoint`]) also reruns block by block in its backward.
//! Shapes use B = batch, T = time, S = key positions, H = heads, Hk = kv heads, G = H / Hk
//! (query heads per kv head), d = head_dim, E = hidden size.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::kernels::{self, FusedOps};
use crate::lora::{LoraLayer, LoraRun, SplitMix64, Target};
use crate::ops::{self, frozen_linear};
use crate::rope;
use crate::weights::WeightFiles;

/// A frozen projection `x·Wᵀ + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,       // [out, in]
    pub bias: Option<Tensor>, // [out]
}

/// One decoder block's frozen weights.
#[derive(Debug, Clone)]
pub struct Layer {
    pub input_norm: Tensor,
    pub post_attention_norm: Tensor,
    /// Indexed by [`Target::index`].
    pub proj: [Linear; 7],
}

/// What every block of one forward shares: rotary tables, who attends to whom, and (for a
/// batch of independent examples) one LoRA dropout seed per example.
#[derive(Debug)]
pub(crate) struct Positional {
    cos: Tensor, // [T, d]
    sin: Tensor, // [T, d]
    attention: Attention,
    /// `Some(runs)`: the flattened `[B·T]` columns split into consecutive runs `(columns,
    /// seed)`, each drawing its LoRA dropout masks from its own seed alone, replacing the run's
    /// single seed ([`Model::score_rows`]: one run per row; [`Model::score_packed`]: one per
    /// packed example).
    row_seeds: Option<Vec<(usize, u64)>>,
}

/// Which keys each query column may attend to.
#[derive(Debug)]
pub(crate) enum Attention {
    /// One additive mask for every row: `[T, T]` f32, 0 or −∞ (causal for ordinary sequences).
    Mask(Tensor),
    /// A packed prefix-sharing row ([`PackedLayout`]), attended segment by segment: the prefix
    /// causally over itself, then each block over `prefix ++ block` with an offset causal mask.
    /// The result is the block mask of [`PackedLayout::mask`], without computing the scores
    /// between blocks that the dense mask would throw away.
    Packed {
        prefix: usize,
        prefix_mask: Tensor, // [P, P]
        /// `(start column, length, mask [len, P + len])` of every non-empty block.
        blocks: Vec<(usize, usize, Tensor)>,
    },
    /// Independent sequences packed into one row ([`Model::score_packed`]): each segment
    /// `(start column, length, causal mask [len, len])` attends causally to itself only, as it
    /// would alone, without the scores between segments that a dense block mask would compute.
    Segments(Vec<(usize, usize, Tensor)>),
}

/// The column layout of one packed prefix-sharing sequence: a shared prefix of `prefix`
/// columns followed by blocks of `blocks[i]` columns.
///
/// ```text
/// columns    0 … P−1 | P … P+L₀−1 | P+L₀ … P+L₀+L₁−1 | …
/// positions  0 … P−1 | P … P+L₀−1 | P    … P+L₁−1    | …     (restarted after the prefix)
/// attention  causal  | prefix + own earlier block columns; never another block
/// ```
///
/// Each block then computes exactly what the sequence `prefix ++ block` computes alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedLayout {
    /// Shared prefix columns (≥ 1).
    pub prefix: usize,
    /// Columns of each block, in order; 0 is allowed (a block with nothing to run).
    pub blocks: Vec<usize>,
}

impl PackedLayout {
    /// Total columns T = prefix + Σ blocks.
    pub fn len(&self) -> usize {
        self.prefix + self.blocks.iter().sum::<usize>()
    }

    /// Whether the layout has no column at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// First column of block `i`.
    pub fn block_start(&self, i: usize) -> usize {
        self.prefix + self.blocks[..i].iter().sum::<usize>()
    }

    /// Rotary position of every column: `0..P`, then `P..P+L_i` again for each block.
    pub fn positions(&self) -> Vec<u32> {
        let mut out: Vec<u32> = (0..self.prefix as u32).collect();
        for &len in &self.blocks {
            out.extend((self.prefix..self.prefix + len).map(|p| p as u32));
        }
        out
    }

    /// The dense additive block mask `[T, T]` (0 = may attend, −∞ = may not). The packed
    /// forward never builds it (see [`Model::hidden_states_packed`]); it is here for
    /// [`Model::hidden_states_masked`] and for tests.
    pub fn mask(&self, device: &Device) -> Result<Tensor> {
        let t = self.len();
        // Segment of every column: None for the prefix, Some(i) for block i.
        let mut seg = vec![None; self.prefix];
        for (i, &len) in self.blocks.iter().enumerate() {
            seg.extend(std::iter::repeat_n(Some(i), len));
        }
        let mut v = vec![f32::NEG_INFINITY; t * t];
        for q in 0..t {
            for k in 0..=q {
                // Keys before the query: the prefix always, a block column only from its own block.
                if seg[k].is_none() || seg[k] == seg[q] {
                    v[q * t + k] = 0.0;
                }
            }
        }
        Ok(Tensor::from_vec(v, (t, t), device)?)
    }
}

/// A loaded base model. Cloning is cheap (tensors are reference-counted).
#[derive(Debug, Clone)]
pub struct Model {
    pub config: ModelConfig,
    pub dtype: DType,
    pub device: Device,
    pub embed_tokens: Tensor, // [V, E]
    pub layers: Vec<Layer>,
    pub norm: Tensor,    // [E]
    pub lm_head: Tensor, // [V, E]; the same tensor as embed_tokens when tied
    /// Which fused CPU kernels ([`kernels`]) replace the composed ops (all by default, or what
    /// `LAMBDA_DPO_FUSED` says at load). They apply to f32 on the CPU only; other dtypes and
    /// devices always run the composed ops. Tests set [`FusedOps::NONE`] for the reference.
    pub fused: FusedOps,
    inv_freq: Vec<f32>,
}

impl Model {
    /// Loads `config.json` and the safetensors weights of a Hugging Face folder.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = ModelConfig::from_dir(dir)?;
        let files = WeightFiles::open_model_dir(dir)?;
        Self::from_weights(config, &files, dtype, device)
    }

    /// Builds the model from already opened weight files.
    pub fn from_weights(
        config: ModelConfig,
        files: &WeightFiles,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let c = &config;
        let (v, e) = (c.vocab_size, c.hidden_size);
        let load = |name: &str, shape: &[usize]| files.load(name, shape, dtype, device);
        let embed_tokens = load("model.embed_tokens.weight", &[v, e])?;
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let proj = Target::ALL.map(|t| -> Result<Linear> {
                let (out, inp) = t.shape(c);
                let path = t.module_path(i);
                let weight = load(&format!("{path}.weight"), &[out, inp])?;
                let has_bias = match t {
                    Target::Q | Target::K | Target::V => c.qkv_bias,
                    Target::O => c.o_bias,
                    Target::Gate | Target::Up | Target::Down => c.mlp_bias,
                };
                let bias = if has_bias {
                    Some(load(&format!("{path}.bias"), &[out])?)
                } else {
                    None
                };
                Ok(Linear { weight, bias })
            });
            let [q, k, vv, o, g, u, d] = proj;
            layers.push(Layer {
                input_norm: load(&format!("{p}.input_layernorm.weight"), &[e])?,
                post_attention_norm: load(&format!("{p}.post_attention_layernorm.weight"), &[e])?,
                proj: [q?, k?, vv?, o?, g?, u?, d?],
            });
        }
        let norm = load("model.norm.weight", &[e])?;
        let lm_head = if c.tie_word_embeddings {
            embed_tokens.clone()
        } else {
            load("lm_head.weight", &[v, e])?
        };
        let inv_freq = rope::inv_freq(c);
        Ok(Self {
            config,
            dtype,
            device: device.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            fused: FusedOps::from_env(),
            inv_freq,
        })
    }

    /// Folds an adapter into the base weights in memory (`W ← W + s·B·A`, in f32, stored back in
    /// the compute dtype). Used for the SFT → preference handoff: after merging, "adapter
    /// disabled" means the SFT model, not the pre-SFT base.
    pub fn merge_adapter(&mut self, adapter: &crate::lora::Adapter) -> Result<usize> {
        if adapter.layers.len() != self.layers.len() {
            return Err(crate::error::ModelError::Input(format!(
                "adapter has {} layers, model has {}",
                adapter.layers.len(),
                self.layers.len()
            )));
        }
        let mut merged = 0;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for t in Target::ALL {
                if let Some(delta) = adapter.delta(i, t)? {
                    let w = &mut layer.proj[t.index()].weight;
                    // Detached: the merged weight is a frozen base weight, not a function of the
                    // SFT adapter's variables.
                    *w = (w.to_dtype(DType::F32)? + delta.detach())?
                        .to_dtype(self.dtype)?
                        .detach();
                    merged += 1;
                }
            }
        }
        Ok(merged)
    }

    /// Hidden states after the last decoder block, *before* the final norm: `[B, T, E]`.
    ///
    /// `ids: [B, T]` (u32), right-padded; `positions` gives the rotary position of each of the T
    /// columns (0..T for ordinary sequences). Attention is causal; right padding needs no mask
    /// because padded columns come after every real token of their row.
    pub fn hidden_states(
        &self,
        ids: &Tensor,
        positions: &[u32],
        lora: Option<LoraRun<'_>>,
    ) -> Result<Tensor> {
        let (_b, t) = ids.dims2()?;
        let mask = causal_mask(t, &self.device)?;
        self.run_layers(ids, positions, Attention::Mask(mask), None, lora)
    }

    /// [`Model::hidden_states`] with an explicit additive attention mask (f32, 0 or −∞,
    /// broadcastable to `[B, H, T, T]`; every query must see at least one key).
    pub fn hidden_states_masked(
        &self,
        ids: &Tensor,
        positions: &[u32],
        mask: &Tensor,
        lora: Option<LoraRun<'_>>,
    ) -> Result<Tensor> {
        let mask = mask.to_dtype(DType::F32)?.to_device(&self.device)?;
        self.run_layers(ids, positions, Attention::Mask(mask), None, lora)
    }

    /// Hidden states (before the final norm) of one packed prefix-sharing sequence,
    /// `ids: [1, T]` laid out as `layout` says → `[1, T, E]`. Block i's columns equal those of
    /// running `prefix ++ block i` alone through [`Model::hidden_states`] (up to float
    /// rounding), but the prefix is computed once.
    ///
    /// Attention runs segment by segment (the prefix over itself; each block over the prefix
    /// and itself), which is the block mask of [`PackedLayout::mask`] without the `[T, T]`
    /// scores between blocks. LoRA dropout, when on, draws one mask over the packed columns,
    /// so the prefix shares its dropout mask across blocks (separate forwards draw one per row).
    pub fn hidden_states_packed(
        &self,
        ids: &Tensor,
        layout: &PackedLayout,
        lora: Option<LoraRun<'_>>,
    ) -> Result<Tensor> {
        let attention = self.packed_attention(ids, layout)?;
        self.run_layers(ids, &layout.positions(), attention, None, lora)
    }

    /// The segment-by-segment attention of a packed row (see [`Model::hidden_states_packed`]),
    /// after checking that `ids: [1, T]` fits `layout`.
    pub(crate) fn packed_attention(
        &self,
        ids: &Tensor,
        layout: &PackedLayout,
    ) -> Result<Attention> {
        let (b, t) = ids.dims2()?;
        if b != 1 || t != layout.len() || layout.prefix == 0 {
            return Err(ModelError::Input(format!(
                "packed forward: ids are {b}×{t}, the layout has a prefix of {} and {} columns; expected 1×{} with a prefix ≥ 1",
                layout.prefix,
                layout.len(),
                layout.len()
            )));
        }
        let p = layout.prefix;
        let mut blocks = Vec::with_capacity(layout.blocks.len());
        let mut start = p;
        for &len in &layout.blocks {
            if len > 0 {
                blocks.push((start, len, causal_mask_offset(len, p, &self.device)?));
            }
            start += len;
        }
        Ok(Attention::Packed {
            prefix: p,
            prefix_mask: causal_mask(p, &self.device)?,
            blocks,
        })
    }

    /// Embedding, the decoder blocks, no final norm: `ids: [B, T]` → `[B, T, E]`; `row_seeds`
    /// as in [`Model::positional`].
    pub(crate) fn run_layers(
        &self,
        ids: &Tensor,
        positions: &[u32],
        attention: Attention,
        row_seeds: Option<Vec<(usize, u64)>>,
        lora: Option<LoraRun<'_>>,
    ) -> Result<Tensor> {
        let pos = self.positional(ids, positions, attention, row_seeds)?;
        let mut x = self.embed(ids)?; // [B, T, E]
        for i in 0..self.layers.len() {
            x = self.block(i, &x, &pos, lora)?;
        }
        Ok(x)
    }

    /// Rotary tables for `positions` (one per column of `ids: [B, T]`) with the attention
    /// pattern and, optionally, one LoRA dropout seed per row: what every block of one forward
    /// shares.
    pub(crate) fn positional(
        &self,
        ids: &Tensor,
        positions: &[u32],
        attention: Attention,
        row_seeds: Option<Vec<(usize, u64)>>,
    ) -> Result<Positional> {
        let (b, t) = ids.dims2()?;
        if positions.len() != t {
            return Err(ModelError::Input(format!(
                "forward: {} positions for {t} columns",
                positions.len()
            )));
        }
        if let Some(runs) = &row_seeds {
            let covered: usize = runs.iter().map(|r| r.0).sum();
            if covered != b * t {
                return Err(ModelError::Input(format!(
                    "forward: dropout seeds cover {covered} columns of {b}×{t}"
                )));
            }
        }
        let (cos, sin) = rope::cos_sin(&self.inv_freq, positions, self.dtype, &self.device)?; // [T, d]
        Ok(Positional {
            cos,
            sin,
            attention,
            row_seeds,
        })
    }

    /// Token embeddings: `ids: [B, T]` → `[B, T, E]`.
    pub(crate) fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        Ok(self.embed_tokens.embedding(&ids.flatten_all()?)?.reshape((
            b,
            t,
            self.config.hidden_size,
        ))?) // [B, T, E]
    }

    /// Decoder block `i`: `x: [B, T, E]` → `[B, T, E]` (pre-norm attention, then pre-norm
    /// SwiGLU MLP, each added to the residual stream). The one block body of every training
    /// forward: [`Model::run_layers`] chains it, and gradient checkpointing
    /// ([`crate::checkpoint`]) reruns it one block at a time in the backward.
    pub(crate) fn block(
        &self,
        i: usize,
        x: &Tensor,
        pos: &Positional,
        lora: Option<LoraRun<'_>>,
    ) -> Result<Tensor> {
        let layer = &self.layers[i];
        let h = self.rms_norm(x, &layer.input_norm)?;
        let attn = self.attention(i, layer, &h, pos, lora)?;
        let x = (x + attn)?;
        let h = self.rms_norm(&x, &layer.post_attention_norm)?;
        let mlp = self.mlp(i, layer, &h, pos.row_seeds.as_deref(), lora)?;
        Ok((x + mlp)?)
    }

    /// The final RMSNorm (applied by callers only to the rows they need).
    pub fn final_norm(&self, h: &Tensor) -> Result<Tensor> {
        self.rms_norm(h, &self.norm)
    }

    /// RMSNorm with `weight`: the fused kernel when on and applicable, else the composed one.
    fn rms_norm(&self, x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        if self.fused.rms_norm && kernels::supported(&[x, weight]) {
            kernels::rms_norm(x, weight, self.config.rms_norm_eps)
        } else {
            ops::rms_norm(x, weight, self.config.rms_norm_eps)
        }
    }

    /// Rotary embedding of `x: [B, H, T, d]` (fused or composed, as [`Model::rms_norm`]).
    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        if self.fused.rope && kernels::supported(&[x, cos, sin]) {
            kernels::rope(x, cos, sin)
        } else {
            rope::apply(x, cos, sin)
        }
    }

    fn attention(
        &self,
        i: usize,
        layer: &Layer,
        x: &Tensor,
        pos: &Positional,
        lora: Option<LoraRun<'_>>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, t, _) = x.dims3()?;
        let (h, hk, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let seeds = pos.row_seeds.as_deref();
        let q = self.project(i, layer, Target::Q, x, seeds, lora)?; // [B, T, H·d]
        let k = self.project(i, layer, Target::K, x, seeds, lora)?; // [B, T, Hk·d]
        let v = self.project(i, layer, Target::V, x, seeds, lora)?; // [B, T, Hk·d]
        let q = q.reshape((b, t, h, d))?.transpose(1, 2)?.contiguous()?; // [B, H, T, d]
        let k = k.reshape((b, t, hk, d))?.transpose(1, 2)?.contiguous()?; // [B, Hk, T, d]
        let v = v.reshape((b, t, hk, d))?.transpose(1, 2)?.contiguous()?; // [B, Hk, T, d]
        let q = self.rope(&q, &pos.cos, &pos.sin)?;
        let k = self.rope(&k, &pos.cos, &pos.sin)?;
        let out = match &pos.attention {
            Attention::Mask(mask) => self.attend(&q, &k, &v, mask)?, // [B, T, H·d]
            Attention::Packed {
                prefix,
                prefix_mask,
                blocks,
            } => {
                let p = *prefix;
                let kp = k.narrow(2, 0, p)?.contiguous()?; // [B, Hk, P, d]
                let vp = v.narrow(2, 0, p)?.contiguous()?; // [B, Hk, P, d]
                let mut parts = Vec::with_capacity(blocks.len() + 1);
                let qp = q.narrow(2, 0, p)?.contiguous()?; // [B, H, P, d]
                parts.push(self.attend(&qp, &kp, &vp, prefix_mask)?); // [B, P, H·d]
                for (start, len, mask) in blocks {
                    // Block keys = prefix keys then the block's own: what `prefix ++ block`
                    // would see alone, with the same key order.
                    let kb = Tensor::cat(&[&kp, &k.narrow(2, *start, *len)?], 2)?; // [B, Hk, P+L, d]
                    let vb = Tensor::cat(&[&vp, &v.narrow(2, *start, *len)?], 2)?; // [B, Hk, P+L, d]
                    let qb = q.narrow(2, *start, *len)?.contiguous()?; // [B, H, L, d]
                    parts.push(self.attend(&qb, &kb, &vb, mask)?); // [B, L, H·d]
                }
                Tensor::cat(&parts, 1)? // [B, T, H·d]
            }
            Attention::Segments(segments) => {
                let mut parts = Vec::with_capacity(segments.len());
                for (start, len, mask) in segments {
                    let qs = q.narrow(2, *start, *len)?.contiguous()?; // [B, H, L, d]
                    let ks = k.narrow(2, *start, *len)?.contiguous()?; // [B, Hk, L, d]
                    let vs = v.narrow(2, *start, *len)?.contiguous()?; // [B, Hk, L, d]
                    parts.push(self.attend(&qs, &ks, &vs, mask)?); // [B, L, H·d]
                }
                Tensor::cat(&parts, 1)? // [B, T, H·d]
            }
        };
        self.project(i, layer, Target::O, &out, seeds, lora)
    }

    /// Scaled dot-product attention with grouped kv heads: `q: [B, H, T, d]`,
    /// `k, v: [B, Hk, S, d]` (S = T in training; cached positions + T when decoding), `mask`
    /// additive f32 broadcastable to `[B, H, T, S]` → `[B, T, H·d]`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (b, _, t, _) = q.dims4()?;
        let s = k.dim(2)?;
        let (h, hk, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let g = h / hk;
        // GQA without copying K/V: the G query heads that share a kv head are consecutive
        // (transformers `repeat_kv`), so [B, H, T, d] → [B, Hk, G·T, d] is a free reshape.
        let qg = q.reshape((b, hk, g * t, d))?; // [B, Hk, G·T, d]
        let scale = 1.0 / (d as f64).sqrt();
        let raw = qg.matmul(&k.t()?)?; // [B, Hk, G·T, S]
        let probs = if self.fused.softmax && raw.device().is_cpu() {
            // One kernel for scale, mask and softmax. In f32 the scale is applied inside it;
            // other dtypes scale in their own dtype first, as the composed path does.
            let (scores, scale) = if raw.dtype() == DType::F32 {
                (raw, scale)
            } else {
                ((raw * scale)?.to_dtype(DType::F32)?, 1.0)
            };
            let scores = scores.reshape((b, h, t, s))?; // [B, H, T, S] f32
            kernels::scaled_masked_softmax(&scores, scale, mask)?
        } else {
            let scores = (raw * scale)?
                .reshape((b, h, t, s))?
                .to_dtype(DType::F32)?
                .broadcast_add(mask)?; // [B, H, T, S]
            ops::softmax_last_dim(&scores)?
        };
        let probs = probs.to_dtype(self.dtype)?.reshape((b, hk, g * t, s))?;
        let out = probs.matmul(v)?; // [B, Hk, G·T, d]
        Ok(out
            .reshape((b, h, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, h * d))?) // [B, T, H·d]
    }

    fn mlp(
        &self,
        i: usize,
        layer: &Layer,
        x: &Tensor,
        row_seeds: Option<&[(usize, u64)]>,
        lora: Option<LoraRun<'_>>,
    ) -> Result<Tensor> {
        let gate = self.project(i, layer, Target::Gate, x, row_seeds, lora)?; // [B, T, I]
        let up = self.project(i, layer, Target::Up, x, row_seeds, lora)?; // [B, T, I]
                                                                          // SwiGLU: down(silu(gate(x)) · up(x)); candle's silu has a backward.
        let act = if self.fused.swiglu && kernels::supported(&[&gate, &up]) {
            kernels::swiglu(&gate, &up)?
        } else {
            (gate.silu()? * up)?
        };
        self.project(i, layer, Target::Down, &act, row_seeds, lora)
    }

    /// Base projection plus the adapter's update, if any. `row_seeds` (runs of the flattened
    /// columns of `x: [B, T, in]`, with a seed each) replace the run's dropout seed: each run's
    /// masks are those of its columns run alone with its seed.
    fn project(
        &self,
        i: usize,
        layer: &Layer,
        target: Target,
        x: &Tensor,
        row_seeds: Option<&[(usize, u64)]>,
        lora: Option<LoraRun<'_>>,
    ) -> Result<Tensor> {
        let lin = &layer.proj[target.index()];
        let mut y = frozen_linear(x, &lin.weight)?;
        if let Some(b) = &lin.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some(run) = lora {
            if let Some(l) = run.adapter.get(i, target) {
                let (p, salt) = (run.adapter.config.dropout, (i * 7 + target.index()) as u64);
                let dropout = match row_seeds {
                    Some(seeds) => Some((DropoutSeeds::Rows(seeds), p, salt)),
                    None => run.dropout_seed.map(|s| (DropoutSeeds::One(s), p, salt)),
                };
                let diag = match &l.svd {
                    Some(svd) => Some(run.adapter.svd_diagonal(svd)?),
                    None => None,
                };
                let fused_dropout = self.fused.dropout;
                y = (y + lora_update(l, diag.as_ref(), x, dropout, fused_dropout)?
                    .to_dtype(self.dtype)?)?;
            }
        }
        Ok(y)
    }
}

/// Keys and values of every layer for the positions already run, for incremental decoding.
///
/// Each layer owns a preallocated `[B, Hk, C, d]` buffer (C = capacity, in the model's dtype);
/// a step writes its new columns in place, so decoding n tokens copies O(n) values per layer
/// instead of the O(n²) of concatenating a growing cache every step. Only the first
/// [`KvCache::len`] columns are ever read.
#[derive(Debug)]
pub struct KvCache {
    k: Vec<Tensor>, // per layer [B, Hk, C, d]
    v: Vec<Tensor>, // per layer [B, Hk, C, d]
    len: usize,
    capacity: usize,
    batch: usize,
}

impl KvCache {
    /// An empty cache for `batch` rows and at most `capacity` positions.
    pub fn new(model: &Model, batch: usize, capacity: usize) -> Result<Self> {
        let c = &model.config;
        let shape = (batch, c.num_kv_heads, capacity, c.head_dim);
        let zeros = || Tensor::zeros(shape, model.dtype, &model.device);
        let k = (0..c.num_layers)
            .map(|_| zeros())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = (0..c.num_layers)
            .map(|_| zeros())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            k,
            v,
            len: 0,
            capacity,
            batch,
        })
    }

    /// Positions (columns) cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows currently held.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Keeps only `rows` (indices into the current batch, in the given order). Generation drops
    /// finished rows this way, so they cost nothing in later steps.
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let device = self.k.first().map(|t| t.device().clone());
        let Some(device) = device else {
            self.batch = rows.len();
            return Ok(());
        };
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.batch) {
            return Err(ModelError::Input(format!(
                "kv cache: row {bad} requested, the cache holds {} rows",
                self.batch
            )));
        }
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let idx = Tensor::from_vec(idx, rows.len(), &device)?; // [B']
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            *t = t.index_select(&idx, 0)?; // [B', Hk, C, d]
        }
        self.batch = rows.len();
        Ok(())
    }
}

impl Model {
    /// Inference forward over new tokens with a [`KvCache`]; returns the f32 logits of the
    /// *last* column of every row, `[B, V]`.
    ///
    /// `ids: [B, T]` are the tokens following the `cache.len()` cached columns (T = the padded
    /// prompt length for the first call, 1 per decoding step after that); `positions` holds the
    /// B·T rotary positions row by row, so rows may sit at different positions (left padding).
    /// `mask` is additive f32 (0 or −∞) broadcastable to `[B, 1, T, cache.len() + T]`; `None`
    /// means plain causal attention over everything cached. No autograd graph is built: every
    /// projection's output is detached (the adapter's `Var`s would otherwise chain a graph
    /// through the cache across steps), and dropout is off.
    ///
    /// The arithmetic is the training forward's ([`Model::hidden_states`]: same projections,
    /// rope, attention and norms), so a cached decode matches re-running the whole sequence.
    pub fn forward_cached(
        &self,
        ids: &Tensor,
        positions: &[u32],
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        adapter: Option<&crate::lora::Adapter>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let c = &self.config;
        let start = cache.len;
        let total = start + t;
        if b != cache.batch {
            return Err(ModelError::Input(format!(
                "forward_cached: {b} rows of ids, the kv cache holds {}",
                cache.batch
            )));
        }
        if total > cache.capacity {
            return Err(ModelError::Input(format!(
                "forward_cached: {total} positions do not fit the kv cache (capacity {})",
                cache.capacity
            )));
        }
        if positions.len() != b * t {
            return Err(ModelError::Input(format!(
                "forward_cached: {} positions for {b}×{t} ids",
                positions.len()
            )));
        }
        let lora = adapter.map(|adapter| LoraRun {
            adapter,
            dropout_seed: None,
        });
        let (cos, sin) = rope::cos_sin(&self.inv_freq, positions, self.dtype, &self.device)?; // [B·T, d]
        let cos = cos.reshape((b, 1, t, c.head_dim))?; // [B, 1, T, d]
        let sin = sin.reshape((b, 1, t, c.head_dim))?; // [B, 1, T, d]
        let mask = match mask {
            Some(m) => m.clone(),
            None => causal_mask_offset(t, start, &self.device)?, // [T, S]
        };
        let mut x =
            self.embed_tokens
                .embedding(&ids.flatten_all()?)?
                .reshape((b, t, c.hidden_size))?; // [B, T, E]
        let (h, hk, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        for (i, layer) in self.layers.iter().enumerate() {
            let hn = self.rms_norm(&x, &layer.input_norm)?;
            let proj = |target, x: &Tensor| -> Result<Tensor> {
                Ok(self.project(i, layer, target, x, None, lora)?.detach())
            };
            let q = proj(Target::Q, &hn)?; // [B, T, H·d]
            let k = proj(Target::K, &hn)?; // [B, T, Hk·d]
            let v = proj(Target::V, &hn)?; // [B, T, Hk·d]
            let q = q.reshape((b, t, h, d))?.transpose(1, 2)?.contiguous()?; // [B, H, T, d]
            let k = k.reshape((b, t, hk, d))?.transpose(1, 2)?.contiguous()?; // [B, Hk, T, d]
            let v = v.reshape((b, t, hk, d))?.transpose(1, 2)?.contiguous()?; // [B, Hk, T, d]
            let q = self.rope(&q, &cos, &sin)?;
            let k = self.rope(&k, &cos, &sin)?.contiguous()?;
            cache.k[i].slice_set(&k, 2, start)?;
            cache.v[i].slice_set(&v, 2, start)?;
            let k_all = cache.k[i].narrow(2, 0, total)?; // [B, Hk, S, d]
            let v_all = cache.v[i].narrow(2, 0, total)?; // [B, Hk, S, d]
            let attn = self.attend(&q, &k_all, &v_all, &mask)?; // [B, T, H·d]
            x = (x + proj(Target::O, &attn)?)?;
            let hn = self.rms_norm(&x, &layer.post_attention_norm)?;
            x = (x + self.mlp(i, layer, &hn, None, lora)?.detach())?; // [B, T, E]
        }
        cache.len = total;
        let last = x.narrow(1, t - 1, 1)?.squeeze(1)?; // [B, E]
        let normed = self.final_norm(&last)?; // [B, E]
        Ok(normed.matmul(&self.lm_head.t()?)?.to_dtype(DType::F32)?) // [B, V]
    }
}

/// `[T, S]` causal mask for T new queries after `offset` cached keys (S = offset + T):
/// query i sees keys 0..=offset + i.
fn causal_mask_offset(t: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let s = offset + t;
    let v: Vec<f32> = (0..t * s)
        .map(|k| {
            if k % s > offset + k / s {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(v, (t, s), device)?)
}

/// Where a projection's LoRA dropout masks come from.
#[derive(Debug, Clone, Copy)]
enum DropoutSeeds<'a> {
    /// One mask over all `M` rows of the flattened input.
    One(u64),
    /// Consecutive runs `(rows, seed)` of the flattened input: each run's `[rows, in]` mask is
    /// what [`DropoutSeeds::One`] with its seed draws for those rows alone (the draws are
    /// sequential, so a shorter unpadded example gets a prefix of a padded row's).
    Rows(&'a [(usize, u64)]),
}

/// `s · dropout(x)·Aᵀ·Bᵀ` in f32: `x: [..., in]` → `[..., out]`; with SVD-LoRA's diagonal
/// `diag = [σ, s·λ]` (`[r+m]`), `s · ((dropout(x)·Aᵀ) ⊙ diag)·Bᵀ`.
fn lora_update(
    l: &LoraLayer,
    diag: Option<&Tensor>,
    x: &Tensor,
    dropout: Option<(DropoutSeeds<'_>, f64, u64)>,
    fused_dropout: bool,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inp = *dims.last().expect("non-empty");
    let m = x.elem_count() / inp;
    let mut x = x.to_dtype(DType::F32)?.reshape((m, inp))?; // [M, in]
    if let Some((seeds, p, salt)) = dropout {
        if p > 0.0 {
            let salted = |seed: u64| seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let runs: Vec<(usize, u64)> = match seeds {
                DropoutSeeds::One(seed) => vec![(m, salted(seed))],
                DropoutSeeds::Rows(runs) => runs.iter().map(|&(r, s)| (r, salted(s))).collect(),
            };
            if fused_dropout && kernels::supported(&[&x]) {
                x = kernels::dropout(&x, p, &runs)?;
            } else {
                kernels::check_dropout_rows(&runs, m)?;
                let mut mask = Vec::with_capacity(m * inp);
                for &(rows, s) in &runs {
                    mask.extend(dropout_mask(rows, inp, p, s));
                }
                x = x.broadcast_mul(&Tensor::from_vec(mask, (m, inp), x.device())?)?;
            }
        }
    }
    let mut xa = x.matmul(&l.a.as_tensor().t()?)?; // [M, r(+m)]
    if let Some(d) = diag {
        xa = xa.broadcast_mul(d)?;
    }
    // The scale goes on the rank-r factor, not on the [M, out] product: one tensor of r
    // columns instead of `out` columns kept by the graph, and a smaller pass each way.
    if l.scale != 1.0 {
        xa = (xa * l.scale)?;
    }
    let y = xa.matmul(&l.b.as_tensor().t()?)?; // [M, out]
    let mut out = dims;
    *out.last_mut().expect("non-empty") = y.dim(1)?;
    Ok(y.reshape(out)?)
}

/// Inverted-dropout mask `[m, n]` (row-major): 0 with probability p, 1/(1−p) otherwise.
fn dropout_mask(m: usize, n: usize, p: f64, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    let keep = (1.0 / (1.0 - p)) as f32;
    (0..m * n)
        .map(|_| if rng.next_f64() < p { 0.0 } else { keep })
        .collect()
}

/// `[T, T]` additive causal mask: 0 on and below the diagonal, −∞ above.
pub(crate) fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..t * t)
        .map(|k| {
            if k % t > k / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(v, (t, t), device)?)
}
