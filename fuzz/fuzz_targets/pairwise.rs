//! Fuzz target: the TRL/argilla and LLaMA-Factory sharegpt pairwise readers (forced) on
//! arbitrary bytes; the second byte picks the reader.
#![no_main]

use lambda_dpo::data::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let format = match data.get(1).map(|b| b % 3) {
        Some(0) => Format::Trl,
        Some(1) => Format::Argilla,
        _ => Format::ShareGptPairwise,
    };
    lambda_dpo_fuzz::read_all(data, Some(format));
});
