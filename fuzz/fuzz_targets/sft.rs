//! Fuzz target: the SFT readers (messages, Alpaca, sharegpt) and KTO, forced, on arbitrary
//! bytes; the second byte picks the reader.
#![no_main]

use lambda_dpo::data::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let format = match data.get(1).map(|b| b % 4) {
        Some(0) => Format::Messages,
        Some(1) => Format::Alpaca,
        Some(2) => Format::ShareGpt,
        _ => Format::Kto,
    };
    lambda_dpo_fuzz::read_all(data, Some(format));
});
