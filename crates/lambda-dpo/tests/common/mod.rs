//! Shared helpers of the data tests: the real samples in `../shared/data` (required under CI,
//! skipped with a notice elsewhere), the model crate's tiny fixture tokenizers, and temporary
//! files with given bytes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lambda_dpo::data::LoadOptions;
use lambda_dpo_model::Tokenizer;

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

pub fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../lambda-dpo-model/tests/fixtures")
        .join(name)
        .join("model")
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
