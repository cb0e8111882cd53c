//! Shared driver of the fuzz targets: read every record of `data` with one reader setting,
//! touching each record's derived views, and never panic. `data[0]` picks the file name (and
//! so the JSON Lines vs document sniffing) so both layouts are explored.

use std::io::Cursor;

use lambda_dpo::data::{Format, ReadOptions, Record, RecordReader};

/// Runs a reader with `format` forced (or detected when `None`) over `data`.
pub fn read_all(data: &[u8], format: Option<Format>) {
    let (name, body) = match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => ("fuzz.jsonl", rest),
        Some((_, rest)) => ("fuzz.json", rest),
        None => ("fuzz.json", data),
    };
    let opts = ReadOptions {
        format,
        drop_truthful_qa: data.len().is_multiple_of(3),
        use_custom_system_prompt: data.len().is_multiple_of(5),
    };
    let Ok(reader) = RecordReader::from_reader(name, Cursor::new(body.to_vec()), &opts) else {
        return;
    };
    for item in reader.take(10_000) {
        match item {
            Ok(Record::List(l)) => {
                let dims = l.dims();
                let r = l.ratings(&dims);
                assert_eq!(r.len(), dims.len());
                assert!(r.iter().all(|row| row.len() == l.responses.len()));
            }
            Ok(Record::Sft(s)) => assert!(s.messages.iter().any(|m| m.role == "assistant")),
            Ok(Record::Unpaired(_)) => {}
            Err(e) => {
                // Every error renders with its location.
                let shown = e.to_string();
                assert!(shown.starts_with(name), "{shown}");
            }
        }
    }
}
