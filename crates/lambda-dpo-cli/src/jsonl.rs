//! JSON Lines input and output of the commands that read one object per line (`logprobs`,
//! `generate`): every non-blank input line must be a JSON object; anything else is an
//! [`InputError`] naming the file and line. An input without any line is refused too. Output
//! goes to stdout, or atomically to a file.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use crate::input_error::InputError;

/// `(1-based line number, object)` for every non-blank line of `path`, in order.
pub fn objects(path: &Path) -> Result<Vec<(usize, Map<String, Value>)>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("opening input {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let lineno = n + 1;
        let line = line.with_context(|| format!("reading {}:{lineno}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let err = |msg: String| InputError::new(path, Some(lineno), None, msg);
        let v: Value =
            serde_json::from_str(&line).map_err(|e| err(format!("invalid JSON: {e}")))?;
        match v {
            Value::Object(obj) => out.push((lineno, obj)),
            other => {
                return Err(err(format!("expected a JSON object, found {}", kind(&other))).into())
            }
        }
    }
    if out.is_empty() {
        return Err(InputError::new(path, None, None, "no input lines").into());
    }
    Ok(out)
}

/// `bytes` to `path` atomically (temporary file, fsync, rename), or to stdout without a path.
pub fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(path) => lambda_dpo_model::io::write_atomic(path, bytes)
            .with_context(|| format!("writing {}", path.display())),
        None => Ok(std::io::stdout().lock().write_all(bytes)?),
    }
}

/// What a JSON value is, for error messages ("a string", "an array", …).
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
