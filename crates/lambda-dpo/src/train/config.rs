//! The run configuration: one TOML file per run, flat typed sections, every field documented
//! with its meaning, default and paper symbol. Defaults are the paper's recipe (LoRA r 8 on all
//! linear layers, lr 5e-6, batch 1 × grad-accum 8, cosine with warmup ratio 0.1, 5 epochs,
//! β 0.1, T 1, λ ~ Dirichlet(1), sum log-probs, disabled-adapter reference, cutoff 2048).
//! `--set section.key=value` overrides are applied to the TOML tree before it is typed, so they
//! are validated exactly like the file. The resolved config is written into the run folder
//! before step 0.

use std::path::{Path, PathBuf};

use crate::schedule::ScheduledSpec;
use lambda_dpo_math::{LambdaSource, LogpMode, Loss, LrDecay, MissingPolicy};
use serde::{Deserialize, Serialize};

use crate::data::Truncation;
use crate::train::conditioning::Conditioning;
use crate::train::error::{TrainError, TrainResult};
use crate::train::optim::AdamWConfig;

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub lora: LoraSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub loss: LossSection,
    #[serde(default)]
    pub reference: ReferenceSection,
    #[serde(default)]
    pub lambda: LambdaSection,
    /// An SFT stage run first (the paper's SFT → λ-DPO pipeline); absent: none.
    #[serde(default)]
    pub sft: Option<SftSection>,
}

/// `[sft]`: the SFT stage of a pipeline. It trains its own adapter on `data` into
/// `<output_dir>/sft`, which is then merged into the base weights before the preference stage
/// (so the disabled-adapter reference is the SFT model). A finished SFT stage is reused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftSection {
    /// SFT conversations (UltraChat `messages`, Alpaca, sharegpt).
    pub data: PathBuf,
    /// Learning rate of the SFT stage. Default 2e-4 (LoRA SFT).
    #[serde(default = "sft_lr")]
    pub learning_rate: f64,
    /// Epochs of the SFT stage. Default 1.
    #[serde(default = "one_epoch")]
    pub epochs: u64,
    /// Optimizer steps of the SFT stage (overrides `epochs`).
    #[serde(default)]
    pub max_steps: Option<u64>,
}

fn sft_lr() -> f64 {
    2e-4
}
fn one_epoch() -> u64 {
    1
}

/// `[model]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Hugging Face model folder (the policy's base, and the reference when the adapter is
    /// disabled). Relative paths are relative to the config file.
    pub path: PathBuf,
    /// Compute dtype: "f32" or "bf16". Default "f32".
    #[serde(default = "default_dtype")]
    pub dtype: String,
    /// An adapter to start from (PEFT folder), e.g. to continue training. Default: a fresh one.
    #[serde(default)]
    pub adapter: Option<PathBuf>,
    /// An SFT adapter merged into the base weights before training starts (the SFT → preference
    /// handoff): the disabled-adapter reference is then the SFT model.
    #[serde(default)]
    pub sft_adapter: Option<PathBuf>,
}

/// `[data]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training file (any format `lambda-dpo data inspect` detects), or a list of files whose
    /// lists are concatenated in order. Files with different dimensions are combined over the
    /// union of their dimensions (in order of first appearance); a dimension a file does not
    /// have is missing for its lists and follows `missing_rating`.
    pub train: DataFiles,
    /// Held-out file for evaluation. Default: none (see `eval_fraction`).
    #[serde(default)]
    pub eval: Option<PathBuf>,
    /// Fraction of the training lists held out for evaluation when `eval` is absent (the last
    /// ones, deterministic). Default 0.
    #[serde(default)]
    pub eval_fraction: f64,
    /// Longest prompt + response in tokens (paper: cutoff 2048).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Longest prompt in tokens. Default: none.
    #[serde(default)]
    pub max_prompt_length: Option<usize>,
    /// Which end of an over-long prompt is kept: `"keep-end"` (default, TRL: the question
    /// nearest the answer and the generation header survive) or `"keep-start"` (LLaMA-Factory,
    /// the authors' code).
    #[serde(default)]
    pub truncation: Truncation,
    /// UltraFeedback raw: use the completions' shared `custom_system_prompt` as the system
    /// message. Default: false.
    #[serde(default)]
    pub use_custom_system_prompt: bool,
    /// Dimensions to use, in order. Default: all the data has.
    #[serde(default)]
    pub dimensions: Option<Vec<String>>,
    /// Missing ratings: `{ policy = "default", value = 1.0 }` (authors' code),
    /// `{ policy = "drop-dimension" }` (default) or `{ policy = "error" }`.
    #[serde(default = "default_missing")]
    pub missing_rating: MissingPolicy,
    /// UltraFeedback: leave out `truthful_qa`-sourced rows (they overlap TruthfulQA).
    #[serde(default)]
    pub drop_truthful_qa: bool,
    /// Skip invalid records (counted and reported) instead of stopping.
    #[serde(default)]
    pub skip_invalid: bool,
}

/// `data.train`: one path (`train = "a.jsonl"`) or a list (`train = ["a.jsonl", "b.json"]`).
/// Written back as it was given, so the resolved config reads like the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DataFiles {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl DataFiles {
    /// The files, in order.
    pub fn paths(&self) -> &[PathBuf] {
        match self {
            DataFiles::One(p) => std::slice::from_ref(p),
            DataFiles::Many(v) => v,
        }
    }

    fn paths_mut(&mut self) -> &mut [PathBuf] {
        match self {
            DataFiles::One(p) => std::slice::from_mut(p),
            DataFiles::Many(v) => v,
        }
    }
}

impl From<PathBuf> for DataFiles {
    fn from(p: PathBuf) -> Self {
        DataFiles::One(p)
    }
}

impl std::fmt::Display for DataFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        f.write_str(&names.join(" + "))
    }
}

/// By hand rather than `#[serde(untagged)]`, whose error ("did not match any variant") would
/// not say what is expected.
impl<'de> Deserialize<'de> for DataFiles {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DataFiles;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a file path or a list of file paths")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DataFiles, E> {
                Ok(DataFiles::One(PathBuf::from(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<DataFiles, A::Error> {
                let mut v = Vec::new();
                while let Some(p) = seq.next_element::<PathBuf>()? {
                    v.push(p);
                }
                Ok(DataFiles::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[lora]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraSection {
    /// Rank r (paper: 8).
    pub r: usize,
    /// α; the update is scaled by α/r. Default 16.
    pub alpha: f64,
    /// Dropout on the adapter input. Default 0.05.
    pub dropout: f64,
    /// Target projections. Default: all seven (q,k,v,o,gate,up,down).
    pub targets: Vec<String>,
}

impl Default for LoraSection {
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Which objective a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// NLL on assistant tokens.
    Sft,
    /// A preference loss (`[loss]`).
    Preference,
}

/// `[train]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// "preference" (default) or "sft".
    pub stage: Stage,
    /// Run folder (adapter, checkpoints, metrics, resolved config). Default "runs/run".
    pub output_dir: PathBuf,
    /// Peak learning rate η (paper: 5e-6).
    pub learning_rate: f64,
    /// Passes over the training data (paper: 5).
    pub epochs: u64,
    /// Stop after this many optimizer steps (overrides `epochs` when set).
    pub max_steps: Option<u64>,
    /// Lists (or SFT examples) per micro-batch (paper: 1). The SFT stage runs a micro-batch as
    /// one packed forward and backward; preference lists run one at a time. Either way
    /// the gradient is the mean over `batch_size × grad_accum` examples, so 4 × 1 and 1 × 4
    /// train the same (up to float rounding).
    pub batch_size: usize,
    /// Micro-batches per optimizer step (paper: 8).
    pub grad_accum: usize,
    /// "cosine" (default), "linear" or "constant".
    pub lr_schedule: LrDecay,
    /// Warmup as a fraction of the total steps (paper: 0.1).
    pub warmup_ratio: f64,
    /// Floor of the decay as a fraction of the peak. Default 0.
    pub min_lr_ratio: f64,
    /// Global-norm gradient clipping; none when absent. Default 1.0 (TRL's default).
    pub max_grad_norm: Option<f64>,
    /// AdamW β1, β2, ε, weight decay (PyTorch defaults).
    pub adam: AdamWConfig,
    /// Seed of data order, λ draws, LoRA init and dropout. Default 42.
    pub seed: u64,
    /// Responses per forward (bounded memory for large N); default: all of a list at once.
    pub chunk_size: Option<usize>,
    /// Prefix sharing: run each list's prompt once, with its responses packed after it in one
    /// sequence (restarted positions, each response attending to the prompt and itself only),
    /// instead of once per response: P + Σ C_i tokens per forward instead of N·(P + C). Same
    /// log-probs and gradients up to float rounding; applies to the policy, the disabled-adapter
    /// or separate-model reference and the reference cache. With `chunk_size` < N each chunk is
    /// one packed forward. With LoRA dropout the prompt shares one dropout mask across the
    /// responses. Default false.
    pub prefix_sharing: bool,
    /// Gradient checkpointing per decoder block: the policy forward keeps only each block's
    /// input hidden state, and the backward recomputes the blocks one at a time from the top.
    /// Peak activation memory becomes one block's activations plus L + 1 hidden states
    /// (`[rows, T, E]` each) per chunk, for one more forward of every block. Same gradients up to
    /// float rounding; the recompute draws the same LoRA dropout masks. Composes with
    /// `chunk_size`, `prefix_sharing`, every reference mode, SFT and full fine-tuning.
    /// Default false.
    pub gradient_checkpointing: bool,
    /// Evaluate on the held-out lists every K optimizer steps, at the end, and (when set) once
    /// before the first update, at step 0. Default: at the end only.
    pub eval_every: Option<u64>,
    /// Checkpoint every K optimizer steps (and at the end). Default: at the end only.
    pub save_every: Option<u64>,
    /// Checkpoints kept (oldest removed). Default 2.
    pub keep_last: usize,
    /// Train every weight instead of a LoRA adapter (f32 only; needed to train a small model
    /// from scratch). The product is a full Hugging Face folder `<output_dir>/model`.
    pub full_finetune: bool,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            stage: Stage::Preference,
            output_dir: PathBuf::from("runs/run"),
            learning_rate: 5e-6,
            epochs: 5,
            max_steps: None,
            batch_size: 1,
            grad_accum: 8,
            lr_schedule: LrDecay::Cosine,
            warmup_ratio: 0.1,
            min_lr_ratio: 0.0,
            max_grad_norm: Some(1.0),
            adam: AdamWConfig::default(),
            seed: 42,
            chunk_size: None,
            prefix_sharing: false,
            gradient_checkpointing: false,
            eval_every: None,
            save_every: None,
            keep_last: 2,
            full_finetune: false,
        }
    }
}

/// `[loss]`: the preference loss (`type` and its hyper-parameters, as the math crate's
/// `Loss`), the target temperature T and an optional SFT term. (serde cannot deny unknown
/// fields next to `flatten`; [`TrainConfig::load`] checks them instead.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossSection {
    /// `type = "lambda-dpo" | "dpo" | "robust-dpo" | "ipo" | "simpo" | "orpo" | "list-mle" |
    /// "lipo-lambda"` plus that loss's fields (`beta`, `mode`, …; defaults per loss).
    #[serde(flatten)]
    pub loss: Loss,
    /// T in `p*(k) = softmax(r_k / T)` (paper Eq. 13). Default 1.
    #[serde(default = "one")]
    pub target_temperature: f64,
    /// α of the SFT/NLL term on the best response (RPO). Default 0 (off).
    #[serde(default)]
    pub sft_weight: f64,
    /// How the SFT term averages: "sum" or "mean" over tokens. Default "mean".
    #[serde(default = "mean_mode")]
    pub sft_mode: LogpMode,
}

impl Default for LossSection {
    fn default() -> Self {
        Self {
            loss: Loss::lambda_dpo(),
            target_temperature: 1.0,
            sft_weight: 0.0,
            sft_mode: LogpMode::Mean,
        }
    }
}

/// Where reference log-probs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferenceMode {
    /// The base model with the adapter disabled (default; no second copy of the weights).
    DisabledAdapter,
    /// A separate model folder (`reference.path`), e.g. the SFT model.
    Model,
    /// Reference log-probs computed once (by the base model, with `model.sft_adapter` merged,
    /// or by `reference.path`) and stored beside the data with a fingerprint of model, tokens
    /// (hence data, template and truncation); reused across runs, rebuilt on mismatch.
    Cache,
    /// Reference-free: ℓ_ref = 0 (the authors' LoRA runs).
    None,
}

/// `[reference]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceSection {
    pub mode: ReferenceMode,
    /// Reference model folder for `mode = "model"`.
    pub path: Option<PathBuf>,
}

impl Default for ReferenceSection {
    fn default() -> Self {
        Self {
            mode: ReferenceMode::DisabledAdapter,
            path: None,
        }
    }
}

/// When a new λ is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LambdaPer {
    /// One λ per list (default).
    Example,
    /// One λ per optimizer step (the authors' code draws per micro-batch).
    Step,
}

/// `[lambda]`: the λ sampler. Without `kind`, λ ~ Dirichlet(1) over the data's dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaSection {
    #[serde(default = "per_example")]
    pub per: LambdaPer,
    /// How λ reaches the policy: `"none"` (default; the paper: λ only mixes the targets),
    /// `"prompt"` (λ rendered into the system message for every example, see
    /// `train::conditioning`) or `"svd-lora"` (Panacea: λ as m extra singular values of every
    /// LoRA update, see `lambda_dpo_model::lora`); both make λ adjustable at inference.
    #[serde(default)]
    pub conditioning: Conditioning,
    /// `kind = "fixed" | "one-hot-cycle" | "dirichlet" | "table" | "grid"` and its fields.
    /// `kind = "scheduled"` (see [`crate::schedule`]) is fitted while the config loads and
    /// arrives here as the `table` it produced.
    #[serde(flatten)]
    pub source: Option<LambdaSource>,
    /// How a `kind = "scheduled"` table was obtained (written to the run's `schedule.json`).
    #[serde(skip)]
    pub schedule: Option<serde_json::Value>,
}

impl Default for LambdaSection {
    fn default() -> Self {
        Self {
            per: LambdaPer::Example,
            conditioning: Conditioning::None,
            source: None,
            schedule: None,
        }
    }
}

fn default_dtype() -> String {
    "f32".into()
}
fn default_max_length() -> usize {
    2048
}
fn default_missing() -> MissingPolicy {
    MissingPolicy::DropDimension
}
fn one() -> f64 {
    1.0
}
fn mean_mode() -> LogpMode {
    LogpMode::Mean
}
fn per_example() -> LambdaPer {
    LambdaPer::Example
}

impl TrainConfig {
    /// Reads a TOML file, applies `key.path=value` overrides, types and validates it. Relative
    /// paths in the file are resolved against the file's folder.
    pub fn load(path: &Path, overrides: &[String]) -> TrainResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut tree: toml::Table =
            toml::from_str(&text).map_err(|e| config_err(path, "", &e.to_string()))?;
        for o in overrides {
            apply_override(&mut tree, o).map_err(|m| config_err(path, o, &m))?;
        }
        let schedule = resolve_scheduled(&mut tree, path)?;
        let mut cfg: TrainConfig = toml::Value::Table(tree.clone())
            .try_into()
            .map_err(|e: toml::de::Error| config_err(path, "", &e.to_string()))?;
        // Flattened sections: a key the typed value does not serialise back was not understood.
        for section in ["loss", "lambda"] {
            let Some(user) = tree.get(section).and_then(toml::Value::as_table) else {
                continue;
            };
            let typed = match section {
                "loss" => toml::Value::try_from(&cfg.loss),
                _ => toml::Value::try_from(&cfg.lambda),
            }
            .map_err(|e| config_err(path, section, &e.to_string()))?;
            for key in user.keys() {
                if typed.get(key).is_none() {
                    return Err(config_err(
                        path,
                        &format!("{section}.{key}"),
                        "unknown field for this section (or for the chosen `type`/`kind`)",
                    ));
                }
            }
        }
        cfg.lambda.schedule = schedule;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.model.path);
        if let Some(a) = &mut self.model.adapter {
            fix(a);
        }
        if let Some(a) = &mut self.model.sft_adapter {
            fix(a);
        }
        self.data.train.paths_mut().iter_mut().for_each(fix);
        if let Some(e) = &mut self.data.eval {
            fix(e);
        }
        if let Some(r) = &mut self.reference.path {
            fix(r);
        }
        fix(&mut self.train.output_dir);
        if let Some(sft) = &mut self.sft {
            fix(&mut sft.data);
        }
    }

    /// The SFT stage of a pipeline as a run of its own (`None` without `[sft]`).
    pub fn sft_stage(&self) -> Option<TrainConfig> {
        let sft = self.sft.as_ref()?;
        let mut c = self.clone();
        c.sft = None;
        c.train.stage = Stage::Sft;
        c.data.train = DataFiles::One(sft.data.clone());
        c.data.eval = None;
        c.data.eval_fraction = 0.0;
        c.train.learning_rate = sft.learning_rate;
        c.train.epochs = sft.epochs;
        c.train.max_steps = sft.max_steps;
        c.train.output_dir = self.train.output_dir.join("sft");
        Some(c)
    }

    /// Field-level checks that serde cannot express.
    pub fn validate(&self, path: &Path) -> TrainResult<()> {
        let err = |field: &str, message: String| Err(config_err(path, field, &message));
        let t = &self.train;
        if !(t.learning_rate.is_finite() && t.learning_rate >= 0.0) {
            return err(
                "train.learning_rate",
                format!("expected a finite value ≥ 0, found {}", t.learning_rate),
            );
        }
        if t.batch_size == 0 || t.grad_accum == 0 {
            return err(
                "train.batch_size",
                "batch_size and grad_accum must be ≥ 1".into(),
            );
        }
        if t.epochs == 0 && t.max_steps.is_none() {
            return err(
                "train.epochs",
                "0 epochs and no max_steps: nothing to train".into(),
            );
        }
        if !(0.0..1.0).contains(&t.warmup_ratio) {
            return err(
                "train.warmup_ratio",
                format!("expected a value in [0, 1), found {}", t.warmup_ratio),
            );
        }
        if t.chunk_size == Some(0) {
            return err(
                "train.chunk_size",
                "expected ≥ 1 (or leave it out for whole lists)".into(),
            );
        }
        if self.data.train.paths().is_empty() {
            return err(
                "data.train",
                "expected a file or a non-empty list of files, found []".into(),
            );
        }
        if !(0.0..1.0).contains(&self.data.eval_fraction) {
            return err(
                "data.eval_fraction",
                format!(
                    "expected a value in [0, 1), found {}",
                    self.data.eval_fraction
                ),
            );
        }
        if self.lora.r == 0 {
            return err("lora.r", "expected a rank ≥ 1".into());
        }
        if !(0.0..1.0).contains(&self.lora.dropout) {
            return err(
                "lora.dropout",
                format!(
                    "expected a probability in [0, 1), found {}",
                    self.lora.dropout
                ),
            );
        }
        for tgt in &self.lora.targets {
            if lambda_dpo_model::Target::from_name(tgt).is_none() {
                return err("lora.targets", format!("unknown module `{tgt}`; expected some of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"));
            }
        }
        if self.model.dtype != "f32" && self.model.dtype != "bf16" {
            return err(
                "model.dtype",
                format!("expected \"f32\" or \"bf16\", found {:?}", self.model.dtype),
            );
        }
        // A reference path is only read in modes "model" and "cache": elsewhere it would be
        // silently ignored, and with disabled-adapter the #8459 check below would let a
        // continued adapter through on the strength of a path that is never used.
        if self.reference.path.is_some()
            && !matches!(
                self.reference.mode,
                ReferenceMode::Model | ReferenceMode::Cache
            )
        {
            return err(
                "reference.path",
                format!("only used with reference.mode = \"model\" or \"cache\", but mode is {}\nhint: set reference.mode = \"model\" to use this folder as the reference, or remove reference.path", serde_json::to_string(&self.reference.mode).expect("enum")),
            );
        }
        if self.reference.mode == ReferenceMode::Model && self.reference.path.is_none() {
            return err(
                "reference.path",
                "mode = \"model\" needs the reference model folder in `path`".into(),
            );
        }
        // LLaMA-Factory #8459: continuing an SFT adapter into preference training with the
        // adapter disabled as reference makes the *pre-SFT* base the reference.
        if self.train.stage == Stage::Preference
            && self.model.adapter.is_some()
            && matches!(
                self.reference.mode,
                ReferenceMode::DisabledAdapter | ReferenceMode::Cache
            )
            && self.reference.path.is_none()
        {
            return err(
                "model.adapter",
                "with reference.mode = \"disabled-adapter\" the reference would silently be the base model *without* this adapter (LLaMA-Factory #8459)\nhint: to start preference training from an SFT adapter, set `model.sft_adapter` instead (it is merged into the weights, so the reference is the SFT model), or give the reference explicitly with reference.mode = \"model\"".into(),
            );
        }
        if self.lambda.conditioning == Conditioning::Prompt {
            if self.train.stage != Stage::Preference {
                return err("lambda.conditioning", "prompt conditioning renders the preference weights λ; an SFT stage has none\nhint: set it on the preference stage only".into());
            }
            if self.reference.mode == ReferenceMode::Cache {
                return err("reference.mode", "with lambda.conditioning = \"prompt\" the prompt (and so the reference log-probs) changes with every λ, so they cannot be cached\nhint: use reference.mode = \"disabled-adapter\", \"model\" or \"none\"".into());
            }
        }
        if self.lambda.conditioning == Conditioning::SvdLora {
            if self.train.stage != Stage::Preference {
                return err("lambda.conditioning", "SVD-LoRA conditioning puts the preference weights λ into the adapter; an SFT stage has none\nhint: set it on the preference stage only".into());
            }
            if self.train.full_finetune {
                return err("lambda.conditioning", "SVD-LoRA conditioning lives in a LoRA adapter; full fine-tuning has none\nhint: drop train.full_finetune, or use lambda.conditioning = \"prompt\"".into());
            }
        }
        if self.train.full_finetune {
            if self.model.dtype != "f32" {
                return err("train.full_finetune", format!("full fine-tuning needs model.dtype = \"f32\" (found {:?}): bf16 weights would need f32 master copies\nhint: use LoRA (the default) for bf16", self.model.dtype));
            }
            if self.model.adapter.is_some() {
                return err("model.adapter", "full fine-tuning trains the weights themselves; there is no adapter to continue\nhint: merge it first with `lambda-dpo export`, or set it as model.sft_adapter".into());
            }
            if self.reference.mode == ReferenceMode::DisabledAdapter {
                return err("reference.mode", "full fine-tuning has no adapter to disable, so \"disabled-adapter\" has no reference\nhint: use reference.mode = \"cache\" (log-probs of the starting weights, computed once) or \"model\"".into());
            }
        }
        if self.sft.is_some()
            && (self.train.stage != Stage::Preference || self.model.sft_adapter.is_some())
        {
            return err("sft", "an [sft] stage runs before a preference stage and provides its sft_adapter; remove `model.sft_adapter` or the [sft] section".into());
        }
        if self.loss.target_temperature < 0.0 || !self.loss.target_temperature.is_finite() {
            return err(
                "loss.target_temperature",
                format!(
                    "expected a finite value ≥ 0, found {}",
                    self.loss.target_temperature
                ),
            );
        }
        self.loss
            .loss
            .validate()
            .map_err(|e| config_err(path, "loss", &e.to_string()))?;
        // The λ sampler is checked now (weights on the simplex, α > 0, a usable table or grid),
        // not at step 0 as a math error; its dimension count is checked against the data then.
        if let Some(source) = &self.lambda.source {
            lambda_dpo_math::LambdaSampler::new(source.clone(), 0).map_err(|e| {
                config_err(path, "lambda", &format!("{e}\nhint: a fixed λ or table row needs non-negative weights summing to 1, one per data dimension; Dirichlet needs every α > 0"))
            })?;
        }
        Ok(())
    }
}

/// `[lambda] kind = "scheduled"`: fits the schedule from its points (other runs' eval results
/// or a points file) and puts the resulting `kind = "table"` in its place, so the resolved
/// config, its fingerprint and a resumed run all see the table actually sampled from. Returns
/// the fit's record.
fn resolve_scheduled(
    tree: &mut toml::Table,
    path: &Path,
) -> TrainResult<Option<serde_json::Value>> {
    let Some(section) = tree.get_mut("lambda").and_then(toml::Value::as_table_mut) else {
        return Ok(None);
    };
    if section.get("kind").and_then(toml::Value::as_str) != Some("scheduled") {
        return Ok(None);
    }
    let mut spec_table = toml::Table::new();
    for key in section.keys().cloned().collect::<Vec<_>>() {
        if !matches!(key.as_str(), "per" | "conditioning" | "kind") {
            spec_table.insert(key.clone(), section.remove(&key).expect("listed"));
        }
    }
    section.remove("kind");
    let mut spec: ScheduledSpec = toml::Value::Table(spec_table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            config_err(
                path,
                "lambda",
                &format!("{}\nhint: kind = \"scheduled\" takes runs, results, score, points, degree, ridge, tau, grid | dirichlet (+ alpha, seed)", e.message()),
            )
        })?;
    spec.resolve_paths(path.parent().unwrap_or(Path::new(".")));
    let resolved = crate::schedule::resolve(&spec, path).map_err(|e| TrainError::Config {
        path: e.file.clone(),
        field: e.field.clone().unwrap_or_default(),
        message: match (e.line, &e.hint) {
            (Some(l), Some(h)) => format!("line {l}: {}\nhint: {h}", e.message),
            (Some(l), None) => format!("line {l}: {}", e.message),
            (None, Some(h)) => format!("{}\nhint: {h}", e.message),
            (None, None) => e.message.clone(),
        },
    })?;
    let table = toml::Value::try_from(&resolved.source).expect("a λ table serialises");
    if let toml::Value::Table(t) = table {
        section.extend(t);
    }
    Ok(Some(resolved.record))
}

fn config_err(path: &Path, field: &str, message: &str) -> TrainError {
    TrainError::Config {
        path: path.display().to_string(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// `a.b.c=value`: the value is parsed as TOML (number, bool, array, inline table) and falls
/// back to a string, so `--set train.output_dir=runs/x` needs no quotes.
fn apply_override(tree: &mut toml::Table, text: &str) -> Result<(), String> {
    let (key, value) = text.split_once('=').ok_or("expected section.key=value")?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut table = tree;
    for p in &parts[..parts.len() - 1] {
        table = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is not a section"))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}
