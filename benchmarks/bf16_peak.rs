//! Peak throughput of one core's AVX-512 dot-product instructions: `vdpbf16ps` (AVX512-BF16,
//! 32 bf16 multiply-adds per instruction) against `vfmadd…ps` (f32 FMA, 16 per instruction),
//! 12 independent accumulators each so latency does not limit. Standalone (not part of the
//! workspace):
//!
//!     rustc -O --edition 2021 benchmarks/bf16_peak.rs -o /tmp/bf16_peak && /tmp/bf16_peak
//!
//! Results in BENCHMARKS.md ("bf16 on this CPU").
use std::arch::x86_64::*;
use std::time::Instant;
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf(iters: u64) -> f32 {
    let x: __m512bh = std::mem::transmute(_mm512_set1_epi16(0x3f80));
    let mut a = [_mm512_setzero_ps(); 12];
    for _ in 0..iters {
        for j in 0..12 {
            a[j] = _mm512_dpbf16_ps(a[j], x, x);
        }
    }
    let mut s = 0.0;
    for j in 0..12 {
        s += _mm512_reduce_add_ps(a[j]);
    }
    s
}
#[target_feature(enable = "avx512f")]
unsafe fn fma(iters: u64) -> f32 {
    let x = _mm512_set1_ps(1.0000001);
    let mut a = [_mm512_setzero_ps(); 12];
    for _ in 0..iters {
        for j in 0..12 {
            a[j] = _mm512_fmadd_ps(a[j], x, x);
        }
    }
    let mut s = 0.0;
    for j in 0..12 {
        s += _mm512_reduce_add_ps(a[j]);
    }
    s
}
fn main() {
    if !is_x86_feature_detected!("avx512bf16") {
        eprintln!("this CPU has no AVX512-BF16");
        std::process::exit(1);
    }
    let n = 100_000_000u64;
    let t = Instant::now();
    let r = unsafe { bf(n) };
    let e = t.elapsed().as_secs_f64();
    println!(
        "vdpbf16ps: {:.1} GFLOP/s one core ({r})",
        (n * 12 * 64) as f64 / e / 1e9
    );
    let t = Instant::now();
    let r = unsafe { fma(n) };
    let e = t.elapsed().as_secs_f64();
    println!(
        "vfmadd ps: {:.1} GFLOP/s one core ({r})",
        (n * 12 * 32) as f64 / e / 1e9
    );
}
