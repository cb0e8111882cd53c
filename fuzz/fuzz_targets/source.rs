//! Fuzz target: the streaming JSON source (JSON Lines, arrays, documents, gzip) on arbitrary
//! bytes: every record error is followed by more records or the end, never a hang or panic.
#![no_main]

use std::io::Cursor;

use lambda_dpo::data::JsonSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for name in ["fuzz.json", "fuzz.jsonl"] {
        if let Ok(src) = JsonSource::from_reader(name, Cursor::new(data.to_vec())) {
            let mut last_line = 0;
            for r in src.take(100_000).flatten() {
                // Records come in file order.
                assert!(r.line >= last_line);
                last_line = r.line;
            }
        }
    }
});
