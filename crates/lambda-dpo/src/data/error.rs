//! The one error type of the data layer: [`DataError`].
//!
//! Every error names the file, the line (1-based, where the record starts) or the record index
//! (0-based), the field as a JSON path (`completions[2].annotations.honesty.Rating`), what was
//! expected and what was found, and a hint. The binary turns it into its input error (exit
//! code 2); the library never panics on input.
//!
//! [`ErrorKind`] says which family an error belongs to; it decides whether `--skip-invalid`
//! may skip the record ([`DataError::is_record_error`]) and groups skips in the report.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, in families. Stable names ([`ErrorKind::name`]) group skips in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The file could not be opened or read.
    Io,
    /// The gzip stream is corrupt or ends early (truncated download).
    Gzip,
    /// The file holds no record at all.
    Empty,
    /// The file's outer structure is broken (an unclosed top-level array, text after it):
    /// no later record can be located, so this is never skippable.
    Structure,
    /// Bytes that are not UTF-8.
    Utf8,
    /// A record that is not valid JSON.
    Json,
    /// The format could not be recognised from the first record, or `--format` does not fit.
    Format,
    /// A field is missing or has the wrong type or value.
    Field,
    /// A rating that is neither a number nor a missing marker.
    Rating,
    /// A list with fewer than two responses.
    TooFewResponses,
    /// A dimension named in the options that the data does not have.
    UnknownDimension,
    /// A missing rating under `MissingPolicy::Error`.
    MissingRating,
    /// A bad λ weight vector (negative, all zero, unknown dimension).
    Lambda,
    /// The chat template cannot render the record, or breaks the prefix property.
    Template,
    /// The tokenizer failed.
    Tokenizer,
    /// An option value that cannot work (e.g. `max_length` too small for any response).
    Options,
}

impl ErrorKind {
    /// Short stable name, used in skip summaries and `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Io => "io",
            Self::Gzip => "gzip",
            Self::Empty => "empty",
            Self::Structure => "structure",
            Self::Utf8 => "utf8",
            Self::Json => "json",
            Self::Format => "format",
            Self::Field => "field",
            Self::Rating => "rating",
            Self::TooFewResponses => "too-few-responses",
            Self::MissingRating => "missing-rating",
            Self::UnknownDimension => "unknown-dimension",
            Self::Lambda => "lambda",
            Self::Template => "template",
            Self::Tokenizer => "tokenizer",
            Self::Options => "options",
        }
    }
}

/// What a [`DataError`] says: where, which field, expected, found, hint.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorDetails {
    pub kind: ErrorKind,
    pub file: PathBuf,
    /// 1-based line where the offending record starts (or where the problem is).
    pub line: Option<usize>,
    /// 0-based index of the record in the file (array element or non-empty line).
    pub record: Option<usize>,
    /// JSON path of the offending field, e.g. `responses[1].scores.honesty`.
    pub field: Option<String>,
    pub expected: String,
    pub found: String,
    pub hint: Option<String>,
}

/// A data error with its location. Build it with [`DataError::new`] and the `at*`/`field`/
/// `hint` builders; read its parts as fields (`e.kind`, `e.line`, … through `Deref`). Boxed so
/// that `Result<_, DataError>` stays one pointer wide on the happy path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct DataError(Box<ErrorDetails>);

impl std::ops::Deref for DataError {
    type Target = ErrorDetails;
    fn deref(&self) -> &ErrorDetails {
        &self.0
    }
}

impl std::ops::DerefMut for DataError {
    fn deref_mut(&mut self) -> &mut ErrorDetails {
        &mut self.0
    }
}

impl DataError {
    pub fn new(
        kind: ErrorKind,
        file: &Path,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Self(Box::new(ErrorDetails {
            kind,
            file: file.to_path_buf(),
            line: None,
            record: None,
            field: None,
            expected: expected.into(),
            found: found.into(),
            hint: None,
        }))
    }

    /// Sets the line (1-based) and record index (0-based).
    pub fn at(mut self, line: usize, record: usize) -> Self {
        self.line = Some(line);
        self.record = Some(record);
        self
    }

    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Replaces what was expected (a caller that knows better than a generic helper).
    pub fn expecting(mut self, expected: impl Into<String>) -> Self {
        self.expected = expected.into();
        self
    }

    /// Whether `--skip-invalid` may skip this error and go on with the next record. Errors of
    /// the file itself (unreadable, truncated, broken outer structure) and of the options are
    /// not: nothing after them could be trusted.
    pub fn is_record_error(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Utf8
                | ErrorKind::Json
                | ErrorKind::Field
                | ErrorKind::Rating
                | ErrorKind::TooFewResponses
                | ErrorKind::MissingRating
                | ErrorKind::Template
                | ErrorKind::Tokenizer
        )
    }

    /// `file:line` (or `file record i`), the way reports cite a record.
    pub fn location(&self) -> String {
        let mut s = self.file.display().to_string();
        if let Some(l) = self.line {
            s.push_str(&format!(":{l}"));
        } else if let Some(r) = self.record {
            s.push_str(&format!(" record {r}"));
        }
        s
    }

    /// The message without file, line, field or hint: "expected …, found …".
    pub fn message(&self) -> String {
        format!("expected {}, found {}", self.expected, self.found)
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.location())?;
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message())?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

/// A short description of a JSON value for "found …": its type and a preview.
pub fn describe(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Null => "null".into(),
        J::Bool(b) => format!("the boolean {b}"),
        J::Number(n) => format!("the number {n}"),
        J::String(s) => format!("the string {}", preview(s)),
        J::Array(a) => format!(
            "an array of {} element{}",
            a.len(),
            if a.len() == 1 { "" } else { "s" }
        ),
        J::Object(o) => {
            if o.is_empty() {
                "an empty object".into()
            } else {
                format!("an object with keys {}", keys(o))
            }
        }
    }
}

/// `[a, b, c]` (at most 12 keys), for messages that list what a record has.
pub fn keys(o: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut names: Vec<&str> = o.keys().map(String::as_str).take(12).collect();
    if o.len() > 12 {
        names.push("…");
    }
    format!("[{}]", names.join(", "))
}

/// A string shortened to about 40 characters, quoted, for messages.
pub fn preview(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{:?}…", cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_every_part() {
        let e = DataError::new(
            ErrorKind::Rating,
            Path::new("d.jsonl"),
            "a number",
            "\"seven\"",
        )
        .at(3, 2)
        .field("responses[0].scores.helpfulness")
        .hint("use 1-5");
        assert_eq!(
            e.to_string(),
            "d.jsonl:3: field `responses[0].scores.helpfulness`: expected a number, found \"seven\"\nhint: use 1-5"
        );
        assert!(e.is_record_error());
    }

    #[test]
    fn previews_are_short() {
        let long = "x".repeat(100);
        assert!(preview(&long).chars().count() < 50);
        assert_eq!(describe(&serde_json::json!([1])), "an array of 1 element");
    }
}
