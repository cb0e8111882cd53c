//! glibc malloc settings for tensor workloads.
//!
//! A training step allocates and frees hundreds of tensors of 0.1–30 MiB. With glibc's defaults
//! each of those above the (dynamic) mmap threshold is a fresh `mmap`, and freed memory at the
//! top of the heap goes back to the kernel. Every step then pays for page faults and for the
//! kernel zeroing the new pages (`clear_page_erms` was 12 % of a qwen40m step's profile, and
//! system time 5.8 of 20 CPU seconds). Keeping freed memory in the process removes that cost
//! without raising the peak: the next step reuses the same pages. Measured in BENCHMARKS.md
//! ("Allocator").
//!
//! Each setting is left alone when the user set its glibc variable (`MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_`), and `LAMBDA_DPO_MALLOC=default` skips them all. Other platforms
//! keep their allocator's defaults.

/// Requests of this many bytes or more still get their own mapping: 32 MiB, glibc's maximum
/// for this setting on 64-bit targets.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Free memory at the top of the heap is never returned to the kernel during the run (−1
/// disables trimming, mallopt(3)), so the pages of one step serve the next.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = -1;

/// Applies the settings; call once at start-up before the heavy allocations begin. Returns
/// whether it changed anything.
#[allow(unsafe_code)] // one libc call, see the SAFETY note
pub fn tune() -> bool {
    if std::env::var("LAMBDA_DPO_MALLOC").is_ok_and(|v| v == "default") {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut changed = false;
        for (var, param, value) in [
            (
                "MALLOC_MMAP_THRESHOLD_",
                libc::M_MMAP_THRESHOLD,
                MMAP_THRESHOLD,
            ),
            (
                "MALLOC_TRIM_THRESHOLD_",
                libc::M_TRIM_THRESHOLD,
                TRIM_THRESHOLD,
            ),
        ] {
            if std::env::var_os(var).is_none() {
                // SAFETY: mallopt only changes allocator parameters; it is called before any
                // other thread exists, and glibc takes its own lock.
                changed |= unsafe { libc::mallopt(param, value) } == 1;
            }
        }
        changed
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
