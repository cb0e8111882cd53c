//! Settings shared by the model-running commands: device, compute dtype and threads.

use anyhow::{bail, Result};
use candle_core::{DType, Device};

/// `--dtype` values.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => bail!("unknown --dtype `{other}`; expected f32 or bf16"),
    }
}

/// The compute device: CUDA when built with `--features cuda` and a GPU is present, else CPU.
pub fn device() -> Result<Device> {
    #[cfg(feature = "cuda")]
    {
        if let Ok(d) = Device::new_cuda(0) {
            return Ok(d);
        }
    }
    Ok(Device::Cpu)
}

/// Sets the compute threads for the rest of the process and returns them: `explicit` (a
/// `--threads` flag), else `RAYON_NUM_THREADS`, else `default()`. Call it before anything
/// touches rayon or candle's kernels (both read the variable).
pub fn set_threads(explicit: Option<usize>, default: impl FnOnce() -> usize) -> usize {
    let threads = explicit
        .or_else(|| std::env::var("RAYON_NUM_THREADS").ok()?.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(default)
        .max(1);
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    threads
}
