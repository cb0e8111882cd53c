//! Shared helpers of the tests: the real samples in `../shared/data` (required under CI,
//! skipped with a notice elsewhere), the model crate's tiny fixture models and tokenizers,
//! temporary files with given bytes, the tests' pseudo-random stream and gradient
//! comparison.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use lambda_dpo::data::LoadOptions;
use lambda_dpo_model::{Model, Tokenizer};

/// `<repo>/../shared/data/<rel>`, or `None` (with a notice) when the folder is absent outside
/// CI. Under CI (`CI` set) a missing folder fails the test: those tests must run there.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if !root.is_dir() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{} is missing; CI must provide ../shared/data beside the repository",
                root.display()
            );
        }
        eprintln!(
            "notice: {} not found; skipping a test that reads the real data samples",
            root.display()
        );
        return None;
    }
    let p = root.join(rel);
    assert!(p.is_file(), "{} is missing from shared/data", p.display());
    Some(p)
}

/// The tiny fixture models' tokenizers (real Llama-3.2 / Qwen2.5 BPE and chat templates).
pub fn tokenizer(name: &str) -> Tokenizer {
    Tokenizer::from_dir(&model_dir(name)).expect("fixture tokenizer loads")
}

/// The model crate's fixture folder `name` (`llama` or `qwen2`: `model/`, `adapter/`, …).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../lambda-dpo-model/tests/fixtures")
        .join(name)
}

pub fn model_dir(name: &str) -> PathBuf {
    fixture(name).join("model")
}

/// A fixture model, f32 on the CPU.
pub fn load_model(name: &str) -> Model {
    Model::load(&model_dir(name), DType::F32, &Device::Cpu).expect("fixture model loads")
}

/// The tests' pseudo-random stream: Knuth's MMIX linear congruential generator, high bits.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value in `0..m`.
    pub fn below(&mut self, m: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % m
    }

    /// `n` token ids below 690 (inside both fixture vocabularies).
    pub fn ids(&mut self, n: usize) -> Vec<u32> {
        (0..n).map(|_| self.below(690) as u32).collect()
    }
}

/// Every element of `t` as f64.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Largest |a − b| of each pair of gradients over the largest |b| of that gradient (floored at
/// 10⁻⁶ of the largest of all, for gradients that are zero in exact arithmetic, such as a key
/// bias's), maximised over the pairs. With `nonzero`, panics when a reference gradient is zero
/// (nothing would be compared).
pub fn max_rel(what: &str, a: &[Tensor], b: &[Tensor], nonzero: bool) -> f64 {
    assert_eq!(a.len(), b.len(), "{what}: gradient counts");
    assert!(!b.is_empty(), "{what}: no gradients");
    let max_abs = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let global = b.iter().fold(0.0f64, |m, y| m.max(max_abs(&values(y))));
    assert!(global > 0.0, "{what}: every reference gradient is zero");
    let mut worst = 0.0f64;
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        let (x, y) = (values(x), values(y));
        assert_eq!(x.len(), y.len(), "{what}: gradient {k} shape");
        let scale = max_abs(&y);
        assert!(
            !nonzero || scale > 0.0,
            "{what}: reference gradient {k} is zero: nothing would be compared"
        );
        let scale = scale.max(1e-6 * global);
        let d = x
            .iter()
            .zip(&y)
            .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
        worst = worst.max(d / scale);
    }
    worst
}

/// Template variables that make Llama-3's date line stable.
pub fn kwargs() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("date_string".into(), "26 Jul 2024".into());
    m
}

/// Default load options with stable template variables.
pub fn opts() -> LoadOptions {
    LoadOptions {
        template_kwargs: kwargs(),
        ..LoadOptions::default()
    }
}

/// A temporary directory holding one file `name` with `bytes`.
pub fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).expect("write temp file");
    (dir, p)
}

/// gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}
