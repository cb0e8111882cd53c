//! Data: every preference and SFT format users bring, validated with clear errors, rendered
//! into token lists.
//!
//! ```text
//! file (.json | .jsonl | .gz) ─► source (streamed JSON records, line numbers)
//!   ─► reader (format detected from the first record; one parser per format family)
//!   ─► Record: ListRecord (prompt + N rated responses) | SftRecord (conversation)
//!   ─► render (chat template, tokenizer, truncation) ─► RenderedList | RenderedSft
//! ```
//!
//! Entry points: [`load_preferences`] and [`load_sft`] for training; [`RecordReader`] for a
//! streaming, tokenizer-free pass (what `data inspect` and `data convert` use); [`inspect`]
//! and [`convert_to_file`] behind those commands. Errors are [`DataError`]s naming file, line,
//! field, expected and found, with a hint. What does not live here: the losses and targets
//! (`lambda-dpo-math`), the tokenizer and chat templates (`lambda-dpo-model`).

pub mod convert;
pub mod detect;
pub mod error;
pub mod fields;
pub mod helpsteer;
pub mod inspect;
pub mod lambda;
pub mod listwise;
pub mod load;
pub mod pairwise;
pub mod reader;
pub mod record;
pub mod render;
pub mod report;
pub mod sft;
pub mod source;
pub mod ultrafeedback;

pub use convert::{convert, convert_to_file, ConvertOptions, ConvertReport, ConvertTo, Pairs};
pub use detect::{DataKind, Format};
pub use error::{DataError, ErrorKind};
pub use inspect::{inspect, Inspection};
pub use lambda::LambdaSpec;
pub use lambda_dpo_math::targets::MissingPolicy;
pub use load::{
    load_preferences, load_sft, LoadOptions, PreferenceData, RenderedList, RenderedSft, SftData,
};
pub use reader::{ReadCounters, ReadOptions, RecordReader};
pub use record::{Content, ListRecord, Pos, Prompt, Record, Response, Scores, SftRecord};
pub use render::{cut, infer_seqlen, Renderer, Truncation};
pub use report::LoadReport;
pub use source::{JsonSource, Layout, RawRecord};
