//! LoRA adapters: the trainable part of the model, in PEFT's format.
//!
//! ```text
//! y = x·Wᵀ (+ b) + s · dropout(x)·Aᵀ·Bᵀ      A: [r, in], B: [out, r], s = α / r  (α/√r with rsLoRA)
//! ```
//!
//! Base weights are plain tensors (frozen by construction); A and B are `Var`s, always f32 even
//! when the base runs in bf16. B = 0 at init, so attaching a fresh adapter changes nothing.
//! An adapter lives outside the model and is passed to each forward: passing none *is* the
//! "disabled adapter" reference model, for free. Files are PEFT's: `adapter_config.json` +
//! `adapter_model.safetensors` with keys `base_model.model.<hf module>.lora_{A,B}.weight`.
//!
//! **SVD-LoRA** (Panacea, Zhong et al. 2024) makes an adapter λ-conditioned: with m preference
//! dimensions each update carries r learned singular values and m more that *are* λ,
//!
//! ```text
//! ΔW = s_α · B · diag(σ_1..σ_r, s·λ_1..s·λ_m) · A      A: [r+m, in], B: [out, r+m]
//! ```
//!
//! with σ (init 1) and the per-projection scale s (init 1) learned alongside A and B (B = 0 at
//! init, so a fresh adapter is still a no-op). λ is bound to the adapter with
//! [`Adapter::with_lambda`] (a cheap copy sharing the same variables, so gradients reach them)
//! and can be changed at inference without retraining; [`Adapter::delta`] at a bound λ is what
//! `export --lambda` merges. The file is PEFT's layout plus two tensors per projection
//! (`lora_S.sigma` [r], `lora_S.lambda_scale` [1]) and `lambda_dims` in `adapter_config.json`;
//! PEFT itself cannot load it (use `export --lambda` for other tools).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::weights::WeightFiles;

/// The seven linear projections of a decoder layer, in HF naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];

    /// The module's short name (`q_proj`, …), as in PEFT's `target_modules`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    /// The HF module path inside layer `layer` (`model.layers.3.self_attn.q_proj`).
    pub fn module_path(self, layer: usize) -> String {
        let block = match self {
            Target::Q | Target::K | Target::V | Target::O => "self_attn",
            _ => "mlp",
        };
        format!("model.layers.{layer}.{block}.{}", self.name())
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// `(out_features, in_features)` of this projection.
    pub fn shape(self, cfg: &ModelConfig) -> (usize, usize) {
        let (h, i, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
        match self {
            Target::Q => (cfg.num_heads * d, h),
            Target::K | Target::V => (cfg.num_kv_heads * d, h),
            Target::O => (h, cfg.num_heads * d),
            Target::Gate | Target::Up => (i, h),
            Target::Down => (h, i),
        }
    }
}

/// Hyper-parameters of a LoRA adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank r.
    pub r: usize,
    /// α; the update is scaled by α/r (or α/√r with `use_rslora`).
    pub alpha: f64,
    /// Dropout probability on the adapter's input (training only).
    pub dropout: f64,
    /// Which projections get an adapter (default: all seven).
    pub targets: Vec<Target>,
    pub use_rslora: bool,
    /// SVD-LoRA: the number m of preference dimensions λ adds as singular values (0 = plain LoRA).
    pub lambda_dims: usize,
}

impl Default for LoraConfig {
    /// The paper's recipe: r = 8 on all linear layers; α = 16 and dropout 0.05 as LLaMA-Factory.
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: Target::ALL.to_vec(),
            use_rslora: false,
            lambda_dims: 0,
        }
    }
}

impl LoraConfig {
    pub fn scale_for_rank(&self, r: usize) -> f64 {
        if self.use_rslora {
            self.alpha / (r as f64).sqrt()
        } else {
            self.alpha / r as f64
        }
    }
}

/// One adapted projection: trainable A, B and the fixed scale.
#[derive(Debug, Clone)]
pub struct LoraLayer {
    pub a: Var, // [r, in]   ([r+m, in] with SVD-LoRA)
    pub b: Var, // [out, r]  ([out, r+m] with SVD-LoRA)
    pub scale: f64,
    /// SVD-LoRA's learned singular values and λ scale (`None`: plain LoRA).
    pub svd: Option<SvdParts>,
}

/// The learned part of an SVD-LoRA update's diagonal: `diag(σ, s·λ)`.
#[derive(Debug, Clone)]
pub struct SvdParts {
    pub sigma: Var,        // [r]
    pub lambda_scale: Var, // [1]
}

/// A LoRA adapter for a whole model: `layers[i][target]`.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub config: LoraConfig,
    pub layers: Vec<[Option<LoraLayer>; 7]>,
    /// The λ an SVD-LoRA adapter runs at, `[m]` f32 (see [`Adapter::with_lambda`]).
    pub lambda: Option<Tensor>,
}

/// Per-forward adapter settings: which adapter, and whether dropout is active.
#[derive(Debug, Clone, Copy)]
pub struct LoraRun<'a> {
    pub adapter: &'a Adapter,
    /// `Some(seed)` in training: dropout masks are a pure function of (seed, layer, target),
    /// so a step is reproducible without mutable RNG state. `None`: no dropout.
    pub dropout_seed: Option<u64>,
}

impl Adapter {
    /// A fresh adapter: A ~ kaiming-uniform(a = √5) as PEFT (bound 1/√in), B = 0.
    pub fn new(
        model: &ModelConfig,
        config: LoraConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if config.r == 0 {
            return Err(ModelError::Input("LoRA rank r must be ≥ 1".into()));
        }
        let m = config.lambda_dims;
        let mut rng = SplitMix64(seed);
        let layers = (0..model.num_layers)
            .map(|_| -> Result<[Option<LoraLayer>; 7]> {
                let mut row: [Option<LoraLayer>; 7] = Default::default();
                for t in &config.targets {
                    let (out, inp) = t.shape(model);
                    let bound = 1.0 / (inp as f64).sqrt();
                    let rank = config.r + m;
                    let a: Vec<f32> = (0..rank * inp)
                        .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                        .collect();
                    let a = Var::from_tensor(&Tensor::from_vec(a, (rank, inp), device)?)?;
                    let b = Var::zeros((out, rank), DType::F32, device)?;
                    let svd = if m > 0 {
                        Some(SvdParts {
                            sigma: Var::ones(config.r, DType::F32, device)?,
                            lambda_scale: Var::ones(1, DType::F32, device)?,
                        })
                    } else {
                        None
                    };
                    row[t.index()] = Some(LoraLayer {
                        a,
                        b,
                        scale: config.scale_for_rank(config.r),
                        svd,
                    });
                }
                Ok(row)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config,
            layers,
            lambda: None,
        })
    }

    /// An adapter on no projection: running with it is running the base model (full
    /// fine-tuning trains the base weights instead).
    pub fn empty(model: &ModelConfig, config: LoraConfig) -> Self {
        Self {
            config,
            layers: vec![Default::default(); model.num_layers],
            lambda: None,
        }
    }

    /// Whether this is an SVD-LoRA adapter (λ-conditioned).
    pub fn is_lambda_conditioned(&self) -> bool {
        self.config.lambda_dims > 0
    }

    /// This SVD-LoRA adapter running at `lambda` (m non-negative weights summing to 1). A cheap
    /// copy: the variables are shared (`Var` clones keep their identity), so a forward through
    /// the copy back-propagates into this adapter's A, B, σ and s.
    pub fn with_lambda(&self, lambda: &[f64]) -> Result<Adapter> {
        let m = self.config.lambda_dims;
        if m == 0 {
            return Err(ModelError::Input("this adapter is not λ-conditioned (it was not trained with lambda.conditioning = \"svd-lora\"), so there is no λ to set\nhint: drop --lambda, or combine several adapters into a soup".into()));
        }
        if lambda.len() != m {
            return Err(ModelError::Input(format!(
                "λ has {} weights but this SVD-LoRA adapter was trained with {m} preference dimensions",
                lambda.len()
            )));
        }
        let sum: f64 = lambda.iter().sum();
        if lambda.iter().any(|w| !w.is_finite() || *w < 0.0) || (sum - 1.0).abs() > 1e-6 {
            return Err(ModelError::Input(format!(
                "λ = {lambda:?} is not on the simplex (weights ≥ 0 summing to 1; the sum is {sum})\nhint: SVD-LoRA was trained on simplex weights, e.g. {}",
                vec![format!("{:.3}", 1.0 / m as f64); m].join(",")
            )));
        }
        let device = self
            .layers
            .iter()
            .flatten()
            .flatten()
            .map(|l| l.a.device().clone())
            .next()
            .unwrap_or(Device::Cpu);
        let v: Vec<f32> = lambda.iter().map(|&w| w as f32).collect();
        let mut out = self.clone();
        out.lambda = Some(Tensor::from_vec(v, m, &device)?);
        Ok(out)
    }

    /// This adapter as it runs for a list mixed with `lambda`: an SVD-LoRA adapter bound to
    /// it ([`Adapter::with_lambda`]), any other adapter as it is (λ does not reach it).
    pub fn at_lambda(&self, lambda: &[f64]) -> Result<std::borrow::Cow<'_, Adapter>> {
        Ok(if self.is_lambda_conditioned() {
            std::borrow::Cow::Owned(self.with_lambda(lambda)?)
        } else {
            std::borrow::Cow::Borrowed(self)
        })
    }

    /// The diagonal `[σ, s·λ]` (`[r+m]`) of one SVD-LoRA projection at the bound λ.
    pub(crate) fn svd_diagonal(&self, svd: &SvdParts) -> Result<Tensor> {
        let lambda = self.lambda.as_ref().ok_or_else(|| {
            ModelError::Input(format!(
                "this adapter is λ-conditioned (SVD-LoRA over {} preference dimensions) and needs a λ to run\nhint: pass --lambda w1,...,w{} (weights summing to 1)",
                self.config.lambda_dims, self.config.lambda_dims
            ))
        })?;
        let scaled = svd.lambda_scale.as_tensor().broadcast_mul(lambda)?; // [m]
        Ok(Tensor::cat(&[svd.sigma.as_tensor(), &scaled], 0)?) // [r+m]
    }

    /// Every trainable variable, in a stable order (layer, target, A then B).
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// `(PEFT key, var)` pairs in a stable order.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, row) in self.layers.iter().enumerate() {
            for t in Target::ALL {
                if let Some(l) = &row[t.index()] {
                    let p = format!("base_model.model.{}", t.module_path(i));
                    out.push((format!("{p}.lora_A.weight"), l.a.clone()));
                    out.push((format!("{p}.lora_B.weight"), l.b.clone()));
                    if let Some(svd) = &l.svd {
                        out.push((format!("{p}.lora_S.sigma"), svd.sigma.clone()));
                        out.push((format!("{p}.lora_S.lambda_scale"), svd.lambda_scale.clone()));
                    }
                }
            }
        }
        out
    }

    pub fn get(&self, layer: usize, target: Target) -> Option<&LoraLayer> {
        self.layers
            .get(layer)
            .and_then(|r| r[target.index()].as_ref())
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Loads a PEFT LoRA adapter folder for `model`.
    pub fn load(dir: &Path, model: &ModelConfig, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("adapter_config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
        let peft: PeftConfig = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: cfg_path.clone(),
            source,
        })?;
        let bad = |message: String| ModelError::Adapter {
            path: cfg_path.clone(),
            message,
        };
        if peft.peft_type.as_deref().is_some_and(|t| t != "LORA") {
            return Err(bad(format!(
                "peft_type is `{}`; only LORA adapters are supported",
                peft.peft_type.unwrap_or_default()
            )));
        }
        if peft.use_dora == Some(true) {
            return Err(bad(
                "use_dora = true (DoRA) is not supported\nhint: train a plain LoRA adapter".into(),
            ));
        }
        if peft.fan_in_fan_out == Some(true) {
            return Err(bad("fan_in_fan_out = true is for GPT-2 Conv1D layers; Llama/Qwen2 adapters never set it".into()));
        }
        if let Some(b) = peft.bias.as_deref() {
            if b != "none" {
                return Err(bad(format!(
                    "bias = `{b}` is not supported; expected `none`"
                )));
            }
        }
        if peft
            .modules_to_save
            .as_ref()
            .is_some_and(|m| !m.is_null() && m.as_array().is_none_or(|a| !a.is_empty()))
        {
            return Err(bad("modules_to_save is set: the adapter carries full copies of some modules, which lambda-dpo does not load\nhint: merge it with PEFT's merge_and_unload() and load the merged folder as the model".into()));
        }
        let r = peft.r.ok_or_else(|| bad("field `r` is missing".into()))?;
        let alpha = peft.lora_alpha.unwrap_or(8.0);
        let weights_path = dir.join("adapter_model.safetensors");
        if !weights_path.is_file() && dir.join("adapter_model.bin").is_file() {
            return Err(ModelError::PickleOnly {
                dir: dir.to_path_buf(),
                found: "adapter_model.bin".into(),
            });
        }
        let files = WeightFiles::open_files(dir, vec![weights_path.clone()])?;
        // Normalise keys: some writers keep the adapter name (`lora_A.default.weight`).
        let mut by_key: BTreeMap<String, String> = BTreeMap::new();
        for name in files.names() {
            by_key.insert(name.replace(".default.weight", ".weight"), name);
        }
        let mut config = LoraConfig {
            r,
            alpha,
            dropout: peft.lora_dropout.unwrap_or(0.0),
            targets: Vec::new(),
            use_rslora: peft.use_rslora.unwrap_or(false),
            lambda_dims: peft.lambda_dims.unwrap_or(0),
        };
        let m = config.lambda_dims;
        let mut layers: Vec<[Option<LoraLayer>; 7]> = vec![Default::default(); model.num_layers];
        let mut used = 0usize;
        for (i, row) in layers.iter_mut().enumerate() {
            for t in Target::ALL {
                let p = format!("base_model.model.{}", t.module_path(i));
                let (ka, kb) = (format!("{p}.lora_A.weight"), format!("{p}.lora_B.weight"));
                let (Some(na), Some(nb)) = (by_key.get(&ka), by_key.get(&kb)) else {
                    if by_key.contains_key(&ka) || by_key.contains_key(&kb) {
                        return Err(ModelError::Adapter {
                            path: weights_path.clone(),
                            message: format!("`{p}` has only one of lora_A / lora_B"),
                        });
                    }
                    continue;
                };
                let (out, inp) = t.shape(model);
                let a = files.load_any(na, DType::F32, device)?;
                let b = files.load_any(nb, DType::F32, device)?;
                let (ra, ia) = a.dims2()?;
                let (ob, rb) = b.dims2()?;
                if ia != inp || ob != out || ra != rb || ra <= m {
                    return Err(ModelError::ShapeMismatch {
                        path: weights_path.clone(),
                        tensor: format!("{p}.lora_{{A,B}}.weight"),
                        expected: vec![r, inp, out, r],
                        found: vec![ra, ia, ob, rb],
                        hint: "shapes are [A rows, A cols, B rows, B cols]; the adapter was trained for a different base model".into(),
                    });
                }
                // PEFT's rank_pattern / alpha_pattern: per-module overrides keyed by a name suffix.
                let module = t.module_path(i);
                let alpha_i = pattern_value(&peft.alpha_pattern, &module).unwrap_or(alpha);
                // SVD-LoRA: the last m of the ra rows are λ's; the scale counts the learned rank.
                let rank = ra - m;
                let scale = if config.use_rslora {
                    alpha_i / (rank as f64).sqrt()
                } else {
                    alpha_i / rank as f64
                };
                let svd = if m > 0 {
                    let mut part = |name: &str, len: usize| -> Result<Var> {
                        let key = format!("{p}.lora_S.{name}");
                        let found = by_key.get(&key).ok_or_else(|| ModelError::Adapter {
                            path: weights_path.clone(),
                            message: format!("adapter_config.json says lambda_dims = {m} (SVD-LoRA) but `{key}` is missing"),
                        })?;
                        let t = files.load_any(found, DType::F32, device)?;
                        if t.dims() != [len] {
                            return Err(ModelError::ShapeMismatch {
                                path: weights_path.clone(),
                                tensor: key,
                                expected: vec![len],
                                found: t.dims().to_vec(),
                                hint: "an SVD-LoRA adapter holds r singular values and one λ scale per projection".into(),
                            });
                        }
                        used += 1;
                        Ok(Var::from_tensor(&t)?)
                    };
                    Some(SvdParts {
                        sigma: part("sigma", rank)?,
                        lambda_scale: part("lambda_scale", 1)?,
                    })
                } else {
                    None
                };
                if !config.targets.contains(&t) {
                    config.targets.push(t);
                }
                row[t.index()] = Some(LoraLayer {
                    a: Var::from_tensor(&a)?,
                    b: Var::from_tensor(&b)?,
                    scale,
                    svd,
                });
                used += 2;
            }
        }
        let lora_keys = by_key.keys().filter(|k| k.contains(".lora_")).count();
        if used == 0 {
            return Err(ModelError::Adapter { path: weights_path, message: "no LoRA tensor matches this model's projections (expected keys like `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`)".into() });
        }
        if used != lora_keys {
            let unused: Vec<&String> = by_key
                .keys()
                .filter(|k| k.contains(".lora_"))
                .filter(|k| !is_known_key(k, model))
                .take(3)
                .collect();
            return Err(ModelError::Adapter { path: weights_path, message: format!("{} LoRA tensors do not belong to any projection of this model, e.g. {unused:?}", lora_keys - used) });
        }
        config.targets.sort();
        Ok(Self {
            config,
            layers,
            lambda: None,
        })
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` (PEFT layout), atomically.
    pub fn save(&self, dir: &Path, base_model_name: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let targets: Vec<&str> = self.config.targets.iter().map(|t| t.name()).collect();
        let cfg = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model_name,
            "r": self.config.r,
            "lora_alpha": self.config.alpha,
            "lora_dropout": self.config.dropout,
            "target_modules": targets,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "use_rslora": self.config.use_rslora,
            "use_dora": false,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "revision": null,
        });
        let mut cfg = cfg;
        if self.config.lambda_dims > 0 {
            cfg["lambda_dims"] = self.config.lambda_dims.into();
            cfg["lambda_dpo_note"] = "SVD-LoRA (Panacea): lora_A/lora_B carry r + lambda_dims rows; lora_S.sigma and lora_S.lambda_scale complete diag(sigma, s*lambda). Not loadable by PEFT; use `lambda-dpo export --lambda` for a merged model.".into();
        }
        let tensors: Vec<(String, Tensor)> = self
            .named_vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        crate::io::write_safetensors(&dir.join("adapter_model.safetensors"), &tensors, None)?;
        crate::io::write_atomic(
            &dir.join("adapter_config.json"),
            serde_json::to_string_pretty(&cfg).expect("json").as_bytes(),
        )
    }

    /// `s·B·A` for one projection, `[out, in]` in f32 (used by merge/export); SVD-LoRA:
    /// `s·B·diag(σ, s_λ·λ)·A` at the bound λ (an error when none is bound).
    pub fn delta(&self, layer: usize, target: Target) -> Result<Option<Tensor>> {
        let Some(l) = self.get(layer, target) else {
            return Ok(None);
        };
        let a = match &l.svd {
            None => l.a.as_tensor().clone(),
            Some(svd) => {
                l.a.as_tensor()
                    .broadcast_mul(&self.svd_diagonal(svd)?.unsqueeze(1)?)?
            } // [r+m, in]
        };
        Ok(Some((l.b.as_tensor().matmul(&a)? * l.scale)?))
    }
}

fn is_known_key(key: &str, model: &ModelConfig) -> bool {
    (0..model.num_layers).any(|i| {
        Target::ALL
            .iter()
            .any(|t| key.starts_with(&format!("base_model.model.{}.", t.module_path(i))))
    })
}

/// PEFT matches `rank_pattern`/`alpha_pattern` keys as a suffix of the module name.
fn pattern_value(pattern: &Option<BTreeMap<String, f64>>, module: &str) -> Option<f64> {
    let p = pattern.as_ref()?;
    p.iter()
        .filter(|(k, _)| module == k.as_str() || module.ends_with(&format!(".{k}")))
        .max_by_key(|(k, _)| k.len())
        .map(|(_, v)| *v)
}

/// `adapter_config.json` as PEFT writes it (fields we read).
#[derive(Debug, Deserialize, Serialize)]
struct PeftConfig {
    peft_type: Option<String>,
    r: Option<usize>,
    lora_alpha: Option<f64>,
    lora_dropout: Option<f64>,
    #[serde(default)]
    target_modules: Option<Value>,
    bias: Option<String>,
    fan_in_fan_out: Option<bool>,
    use_rslora: Option<bool>,
    use_dora: Option<bool>,
    modules_to_save: Option<Value>,
    #[serde(default)]
    alpha_pattern: Option<BTreeMap<String, f64>>,
    /// lambda-dpo's SVD-LoRA extension (absent in PEFT's own files).
    #[serde(default)]
    lambda_dims: Option<usize>,
}

/// SplitMix64: tiny, fast, fully determined by one u64 (used for init and dropout masks).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(z: u64) -> f64 {
        (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::GAMMA);
        Self::mix(self.0)
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        Self::unit(self.next_u64())
    }

    /// What the `k`-th (0-based) [`SplitMix64::next_f64`] of `SplitMix64(seed)` returns: the
    /// generator is counter-based, so any draw can be computed on its own (in parallel).
    pub fn draw_f64(seed: u64, k: u64) -> f64 {
        Self::unit(Self::mix(
            seed.wrapping_add(k.wrapping_add(1).wrapping_mul(Self::GAMMA)),
        ))
    }
}
