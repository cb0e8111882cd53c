//! Fuzz target: the ultrafeedback reader (format forced) on arbitrary bytes.
#![no_main]

use lambda_dpo::data::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lambda_dpo_fuzz::read_all(data, Some(Format::UltraFeedback)));
