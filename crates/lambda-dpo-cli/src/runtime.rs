//! Settings shared by the model-running commands: device and compute dtype.

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
