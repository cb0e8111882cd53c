//! Fuzz target: format detection from the first record, then whichever reader it picks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lambda_dpo_fuzz::read_all(data, None));
