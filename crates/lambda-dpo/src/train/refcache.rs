//! The reference cache: `ℓ_ref(y_i)` for every response of every list, computed once and stored
//! beside the data file, so later runs (and every epoch) skip the reference forward entirely.
//!
//! The cache is keyed by a fingerprint of what determines the numbers: the reference model
//! (config, weight files' sizes and sampled bytes, merged SFT adapter), the compute dtype, and
//! the rendered token ids of every list — which covers the data, the chat template and the
//! truncation settings. On a mismatch it is rebuilt. If the data's folder is not writable the
//! cache goes into the run folder instead (and the run says so).

use std::io::Read;
use std::path::{Path, PathBuf};

use lambda_dpo_model::{io, Model, ScoreOptions, ScoreRequest};
use serde::{Deserialize, Serialize};

use crate::data::RenderedList;
use crate::train::error::{TrainError, TrainResult};

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    fingerprint: String,
    /// `values[list][response]`, summed log-probs.
    values: Vec<Vec<f64>>,
}

/// Where a cache for `data` lives (`<data>.refcache.json`), or the run-folder fallback.
pub fn cache_path(data: &Path) -> PathBuf {
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    data.with_file_name(format!("{name}.refcache.json"))
}

/// 64-bit FNV-1a, streaming.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// Identity of a model folder: config.json, and for each weight file its size and 64 KiB
/// sampled at the start, middle and end (hashing gigabytes on every run would defeat a cache).
pub fn model_identity(dir: &Path, h: &mut Fnv) -> TrainResult<()> {
    let io_err = |p: &Path, source| TrainError::Io {
        path: p.display().to_string(),
        source,
    };
    let cfg = dir.join("config.json");
    h.bytes(&std::fs::read(&cfg).map_err(|e| io_err(&cfg, e))?);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    for f in files {
        let mut file = std::fs::File::open(&f).map_err(|e| io_err(&f, e))?;
        let len = file.metadata().map_err(|e| io_err(&f, e))?.len();
        h.u64(len);
        for at in [0, len / 2, len.saturating_sub(65_536)] {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(at))
                .map_err(|e| io_err(&f, e))?;
            let mut buf = Vec::with_capacity(65_536);
            (&mut file)
                .take(65_536)
                .read_to_end(&mut buf)
                .map_err(|e| io_err(&f, e))?;
            h.bytes(&buf);
        }
    }
    Ok(())
}

/// Loads the cache when its fingerprint matches, else computes it with `model` (no adapter) and
/// writes it, each list in one packed forward when `prefix_sharing` (the values agree with
/// separate forwards to float rounding, so the fingerprint does not include it). Returns the
/// values and where they came from, for the log.
pub fn load_or_build(
    data: &Path,
    fallback_dir: &Path,
    lists: &[&RenderedList],
    model: &Model,
    model_fingerprint: u64,
    prefix_sharing: bool,
) -> TrainResult<(Vec<Vec<f64>>, String)> {
    let mut h = Fnv(model_fingerprint);
    for l in lists {
        h.u64(l.prompt_ids.len() as u64);
        h.bytes(
            &l.prompt_ids
                .iter()
                .flat_map(|t| t.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        for r in &l.responses {
            h.u64(r.len() as u64);
            h.bytes(&r.iter().flat_map(|t| t.to_le_bytes()).collect::<Vec<u8>>());
        }
    }
    let fingerprint = format!("{:016x}", h.0);
    let candidates = [
        cache_path(data),
        fallback_dir.join("reference.refcache.json"),
    ];
    for p in &candidates {
        if let Ok(text) = std::fs::read_to_string(p) {
            if let Ok(c) = serde_json::from_str::<CacheFile>(&text) {
                if c.fingerprint == fingerprint && c.values.len() == lists.len() {
                    return Ok((c.values, format!("reused {}", p.display())));
                }
            }
        }
    }
    let mut values = Vec::with_capacity(lists.len());
    for l in lists {
        if prefix_sharing {
            let sums = model
                .score_shared(&l.prompt_ids, &l.responses, None, ScoreOptions::default())?
                .sums;
            values.push(sums.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?);
            continue;
        }
        let ids: Vec<Vec<u32>> = l
            .responses
            .iter()
            .map(|r| l.prompt_ids.iter().chain(r).copied().collect())
            .collect();
        let reqs: Vec<ScoreRequest<'_>> = ids
            .iter()
            .map(|ids| ScoreRequest {
                ids,
                start: l.prompt_ids.len(),
            })
            .collect();
        let sums = model.score(&reqs, None, ScoreOptions::default())?.sums;
        values.push(sums.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?);
    }
    let bytes = serde_json::to_vec(&CacheFile {
        fingerprint,
        values: values.clone(),
    })
    .expect("json");
    for p in &candidates {
        if io::write_atomic(p, &bytes).is_ok() {
            return Ok((values, format!("built {}", p.display())));
        }
    }
    Ok((values, "built (not stored: no writable location)".into()))
}
