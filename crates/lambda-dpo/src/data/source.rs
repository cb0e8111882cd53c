//! Streaming JSON records out of a file: JSON Lines, a top-level JSON array, or one or more
//! concatenated (pretty-printed) JSON documents, each optionally gzip-compressed.
//!
//! Nothing here ever holds more than one record in memory: a multi-GB file, including one
//! that is a single top-level array, is read in 64 KiB chunks. A small byte scanner finds
//! where each array element or document ends (tracking strings, escapes and bracket depth)
//! and only that element's bytes are handed to `serde_json`. The scanner also counts lines,
//! so every record — even an array element — is reported by the line where it starts.
//!
//! Layout detection: a leading `[` is an array. Otherwise a `.jsonl`/`.ndjson` name means JSON
//! Lines; for other names the first line decides (a complete JSON value on its own → JSON
//! Lines, else a pretty-printed document). gzip is recognised by its magic bytes, not by the
//! name. What lives elsewhere: what a record means (the format readers), skipping (callers).

use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::{DataError, ErrorKind};

/// Read-buffer size; also the unit in which a huge array is scanned.
const CHUNK: usize = 64 * 1024;

/// How the records are laid out in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One JSON object per line.
    JsonLines,
    /// One top-level array of records.
    JsonArray,
    /// One or more whitespace-separated JSON documents (e.g. a single pretty-printed object).
    JsonDocuments,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Self::JsonLines => "JSON Lines",
            Self::JsonArray => "JSON array",
            Self::JsonDocuments => "JSON document",
        }
    }
}

/// One record as read: where it starts and its JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// 1-based line where the record starts.
    pub line: usize,
    /// 0-based position among the file's records.
    pub index: usize,
    pub value: Value,
}

#[derive(Debug)]
enum State {
    /// JSON Lines: read the next non-blank line.
    Lines,
    /// Just after the array's `[`: a value or `]`.
    ArrayFirst,
    /// After a `,`: a value must follow.
    ArrayNext,
    /// After the array's `]`: only whitespace may follow.
    ArrayClosed,
    /// Documents: the next value, or the end of the file.
    Documents,
    /// An error to yield once, then stop.
    Failed(Box<DataError>),
    Done,
}

/// An iterator over the records of one file. Record errors (bad JSON, bad UTF-8) are yielded
/// and reading goes on; file errors (I/O, truncated gzip, broken array) are yielded once and
/// end the iteration.
pub struct JsonSource {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    gzip: bool,
    layout: Layout,
    /// `\n` bytes consumed so far: the current line is `newlines + 1`.
    newlines: usize,
    /// Index the next record gets.
    index: usize,
    state: State,
    /// Reused buffer for one record's bytes.
    buf: Vec<u8>,
}

impl std::fmt::Debug for JsonSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSource")
            .field("path", &self.path)
            .field("gzip", &self.gzip)
            .field("layout", &self.layout)
            .field("line", &(self.newlines + 1))
            .finish_non_exhaustive()
    }
}

impl JsonSource {
    /// Opens a file (plain or gzip) and detects its layout.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let file = std::fs::File::open(path).map_err(|e| {
            DataError::new(ErrorKind::Io, path, "a readable file", e.to_string())
                .hint("check the path; inputs are .json, .jsonl or either with .gz")
        })?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(DataError::new(ErrorKind::Io, path, "a file", "a directory")
                .hint("pass the data file itself, e.g. train.jsonl"));
        }
        Self::from_reader(path, file)
    }

    /// Reads from any byte stream; `name` is used in messages and for the `.jsonl` hint.
    pub fn from_reader(
        name: impl Into<PathBuf>,
        reader: impl Read + 'static,
    ) -> Result<Self, DataError> {
        let path: PathBuf = name.into();
        let mut reader: Box<dyn BufRead> = Box::new(BufReader::with_capacity(CHUNK, reader));
        let head = reader
            .fill_buf()
            .map_err(|e| io_error(&path, false, 0, e))?;
        let gzip = head.starts_with(&[0x1f, 0x8b]);
        if gzip {
            let decoder = flate2::bufread::MultiGzDecoder::new(reader);
            reader = Box::new(BufReader::with_capacity(CHUNK, decoder));
        }
        let mut src = Self {
            path,
            reader,
            gzip,
            layout: Layout::JsonLines,
            newlines: 0,
            index: 0,
            state: State::Done,
            buf: Vec::new(),
        };
        src.skip_bom()?;
        let first = src.skip_ws()?;
        let Some(first) = first else {
            return Err(DataError::new(
                ErrorKind::Empty,
                &src.path,
                "at least one record",
                "an empty file",
            )
            .hint("the file has no JSON records; check that the export or download finished"));
        };
        if first == b'[' {
            src.reader.consume(1);
            src.layout = Layout::JsonArray;
            src.state = State::ArrayFirst;
        } else if jsonl_name(&src.path) || first != b'{' {
            src.layout = Layout::JsonLines;
            src.state = State::Lines;
        } else {
            // Sniff: a first line that is a complete JSON value means JSON Lines; otherwise
            // the object continues on later lines (a pretty-printed document). The line is
            // put back in front of the stream either way.
            let mut line = Vec::new();
            src.reader
                .read_until(b'\n', &mut line)
                .map_err(|e| io_error(&src.path, src.gzip, src.newlines + 1, e))?;
            let complete = serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_ok();
            let rest = std::mem::replace(&mut src.reader, Box::new(Cursor::new(Vec::new())));
            src.reader = Box::new(Cursor::new(line).chain(rest));
            if complete {
                src.layout = Layout::JsonLines;
                src.state = State::Lines;
            } else {
                src.layout = Layout::JsonDocuments;
                src.state = State::Documents;
            }
        }
        Ok(src)
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current line (1-based), for messages about the end of the file.
    fn line(&self) -> usize {
        self.newlines + 1
    }

    fn io(&self, e: std::io::Error) -> DataError {
        io_error(&self.path, self.gzip, self.line(), e)
    }

    fn skip_bom(&mut self) -> Result<(), DataError> {
        let (path, gzip) = (&self.path, self.gzip);
        let head = self
            .reader
            .fill_buf()
            .map_err(|e| io_error(path, gzip, 1, e))?;
        if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.reader.consume(3);
        }
        Ok(())
    }

    /// Skips whitespace (counting lines) and returns the next byte without consuming it.
    fn skip_ws(&mut self) -> Result<Option<u8>, DataError> {
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) => return Err(self.io(e)),
            };
            if chunk.is_empty() {
                return Ok(None);
            }
            let mut n = 0;
            let mut lines = 0;
            for &c in chunk {
                match c {
                    b' ' | b'\t' | b'\r' => n += 1,
                    b'\n' => {
                        n += 1;
                        lines += 1;
                    }
                    _ => break,
                }
            }
            let next = chunk.get(n).copied();
            self.reader.consume(n);
            self.newlines += lines;
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    /// Collects one JSON value's bytes into `self.buf`, stopping before the delimiter that
    /// ends it (`,`, `]`, whitespace) or right after its closing bracket or quote.
    fn scan_value(&mut self) -> Result<usize, DataError> {
        let start_line = self.line();
        self.buf.clear();
        let (mut depth, mut in_str, mut esc) = (0usize, false, false);
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) => return Err(self.io(e)),
            };
            if chunk.is_empty() {
                if depth == 0 && !in_str && !self.buf.is_empty() {
                    return Ok(start_line); // a bare scalar at the end of the file
                }
                return Err(DataError::new(
                    ErrorKind::Structure,
                    &self.path,
                    "the record to be complete",
                    format!(
                        "the end of the file inside the record that starts at line {start_line}"
                    ),
                )
                .at_line(start_line)
                .hint("the file is truncated (an interrupted download or export?)"));
            }
            let mut end = None;
            for (i, &c) in chunk.iter().enumerate() {
                if in_str {
                    if esc {
                        esc = false;
                    } else if c == b'\\' {
                        esc = true;
                    } else if c == b'"' {
                        in_str = false;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    continue;
                }
                match c {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth == 0 => {
                        end = Some(i);
                        break;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    b',' | b' ' | b'\t' | b'\r' | b'\n' if depth == 0 => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            // Always make progress: a stray delimiter where a value should start becomes a
            // one-byte "value" that then fails to parse, with its line.
            let take = match end {
                Some(0) if self.buf.is_empty() => 1,
                Some(e) => e,
                None => chunk.len(),
            };
            self.newlines += chunk[..take].iter().filter(|&&c| c == b'\n').count();
            self.buf.extend_from_slice(&chunk[..take]);
            self.reader.consume(take);
            if end.is_some() {
                return Ok(start_line);
            }
        }
    }

    /// Parses `self.buf` (a record starting at `line`) into a value.
    fn parse(&self, line: usize, index: usize, expected: &str) -> Result<RawRecord, DataError> {
        let text = std::str::from_utf8(&self.buf).map_err(|e| {
            let ok = &self.buf[..e.valid_up_to()];
            let line_off = ok.iter().filter(|&&c| c == b'\n').count();
            let col = ok.len() - ok.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1) + 1;
            let bad = self.buf[e.valid_up_to()];
            DataError::new(
                ErrorKind::Utf8,
                &self.path,
                "UTF-8 text",
                format!("the byte 0x{bad:02X} at column {col}, which is not valid UTF-8"),
            )
            .at(line + line_off, index)
            .hint("the file must be UTF-8; convert it first, e.g. `iconv -f latin1 -t utf-8 IN > OUT`")
        })?;
        serde_json::from_str::<Value>(text)
            .map(|value| RawRecord { line, index, value })
            .map_err(|e| {
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                DataError::new(
                    ErrorKind::Json,
                    &self.path,
                    expected,
                    format!("invalid JSON: {msg} (column {})", e.column()),
                )
                .at(line + e.line().saturating_sub(1), index)
                .hint(match self.layout {
                    Layout::JsonLines => "each line must hold one complete JSON object (a pretty-printed file is read as a .json array or document)",
                    _ => "fix the JSON at that position; `python -m json.tool FILE` shows it too",
                })
            })
    }

    fn next_line(&mut self) -> Option<Result<RawRecord, DataError>> {
        loop {
            self.buf.clear();
            let line = self.line();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.state = State::Done;
                    return None;
                }
                Ok(_) => {
                    if self.buf.last() == Some(&b'\n') {
                        self.newlines += 1;
                    }
                }
                Err(e) => {
                    self.state = State::Done;
                    return Some(Err(self.io(e)));
                }
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let index = self.index;
            self.index += 1;
            return Some(self.parse(line, index, "a JSON object"));
        }
    }

    /// One array element, then its separator (`,` or `]`).
    fn next_element(&mut self, first: bool) -> Result<Option<RawRecord>, DataError> {
        let unclosed = |s: &Self| {
            DataError::new(
                ErrorKind::Structure,
                &s.path,
                "`,` or `]`",
                "the end of the file: the top-level array is never closed",
            )
            .at_line(s.line())
            .hint("the file is truncated (an interrupted download or export?)")
        };
        match self.skip_ws()? {
            None => return Err(unclosed(self)),
            Some(b']') if first => {
                self.reader.consume(1);
                self.state = State::ArrayClosed;
                return Ok(None);
            }
            Some(b']') => {
                return Err(DataError::new(
                    ErrorKind::Structure,
                    &self.path,
                    "a record after `,`",
                    "`]` (a trailing comma)",
                )
                .at_line(self.line())
                .hint("remove the comma before the closing `]`"))
            }
            Some(_) => {}
        }
        let line = self.scan_value()?;
        let index = self.index;
        self.index += 1;
        let record = self.parse(line, index, "a JSON value");
        // The separator is checked now; a problem with it is yielded after this record.
        self.state = match self.skip_ws() {
            Err(e) => State::Failed(Box::new(e)),
            Ok(None) => State::Failed(Box::new(unclosed(self))),
            Ok(Some(b',')) => {
                self.reader.consume(1);
                State::ArrayNext
            }
            Ok(Some(b']')) => {
                self.reader.consume(1);
                State::ArrayClosed
            }
            Ok(Some(c)) => State::Failed(Box::new(
                DataError::new(
                    ErrorKind::Structure,
                    &self.path,
                    "`,` or `]` after the record",
                    format!("{:?}", c as char),
                )
                .at_line(self.line())
                .hint("records in a JSON array are separated by commas"),
            )),
        };
        record.map(Some)
    }
}

impl Iterator for JsonSource {
    type Item = Result<RawRecord, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let state = std::mem::replace(&mut self.state, State::Done);
            match state {
                State::Done => return None,
                State::Failed(e) => return Some(Err(*e)),
                State::Lines => {
                    self.state = State::Lines;
                    return self.next_line();
                }
                State::ArrayFirst | State::ArrayNext => {
                    let first = matches!(state, State::ArrayFirst);
                    match self.next_element(first) {
                        Ok(Some(r)) => return Some(Ok(r)),
                        Ok(None) => continue, // empty array: check what follows `]`
                        Err(e) => {
                            // A record-level error keeps the state set by next_element
                            // (the separator was read); a structural one ends the file.
                            if !e.is_record_error() {
                                self.state = State::Done;
                            }
                            return Some(Err(e));
                        }
                    }
                }
                State::ArrayClosed => match self.skip_ws() {
                    Ok(None) => return None,
                    Ok(Some(c)) => {
                        return Some(Err(DataError::new(
                            ErrorKind::Structure,
                            &self.path,
                            "nothing after the closing `]`",
                            format!("{:?}", c as char),
                        )
                        .at_line(self.line())
                        .hint("a .json file holds one array of records; use .jsonl for one record per line")))
                    }
                    Err(e) => return Some(Err(e)),
                },
                State::Documents => match self.skip_ws() {
                    Ok(None) => return None,
                    Ok(Some(_)) => {
                        let line = match self.scan_value() {
                            Ok(l) => l,
                            Err(e) => return Some(Err(e)),
                        };
                        self.state = State::Documents;
                        let index = self.index;
                        self.index += 1;
                        return Some(self.parse(line, index, "a JSON object"));
                    }
                    Err(e) => return Some(Err(e)),
                },
            }
        }
    }
}

/// `.jsonl` / `.ndjson` (optionally `.gz`): one record per line whatever the first line is.
fn jsonl_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.ends_with(".jsonl") || name.ends_with(".ndjson")
}

fn io_error(path: &Path, gzip: bool, line: usize, e: std::io::Error) -> DataError {
    if gzip {
        DataError::new(
            ErrorKind::Gzip,
            path,
            "a complete gzip stream",
            e.to_string(),
        )
        .at_line(line)
        .hint("the .gz file is truncated or corrupt (the line is where the readable text ends); check it with `gzip -t FILE` and download it again")
    } else {
        DataError::new(ErrorKind::Io, path, "a readable file", e.to_string()).at_line(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, bytes: &[u8]) -> (Layout, Vec<Result<RawRecord, DataError>>) {
        let src = JsonSource::from_reader(name, Cursor::new(bytes.to_vec())).unwrap();
        let layout = src.layout();
        (layout, src.collect())
    }

    fn lines(rs: &[Result<RawRecord, DataError>]) -> Vec<Result<usize, ErrorKind>> {
        rs.iter()
            .map(|r| match r {
                Ok(r) => Ok(r.line),
                Err(e) => Err(e.kind),
            })
            .collect()
    }

    #[test]
    fn jsonl_counts_lines_and_skips_blank_ones() {
        let (layout, rs) = read("a.json", b"{\"a\":1}\n\n{\"a\":2}\r\n  \n{\"a\":3}");
        assert_eq!(layout, Layout::JsonLines);
        assert_eq!(lines(&rs), vec![Ok(1), Ok(3), Ok(5)]);
        assert_eq!(rs[2].as_ref().unwrap().index, 2);
    }

    #[test]
    fn array_elements_report_their_start_line() {
        let (layout, rs) = read("a.json", b"[\n {\"a\": 1},\n {\n  \"a\": 2\n }\n]\n");
        assert_eq!(layout, Layout::JsonArray);
        assert_eq!(lines(&rs), vec![Ok(2), Ok(3)]);
    }

    #[test]
    fn bad_element_is_recoverable_unclosed_array_is_not() {
        let (_, rs) = read("a.json", b"[{\"a\": 1,}, {\"a\": 2}, {\"a\"");
        assert_eq!(
            lines(&rs),
            vec![Err(ErrorKind::Json), Ok(1), Err(ErrorKind::Structure)]
        );
        let (_, rs) = read("a.json", b"[{\"a\": 1}");
        assert_eq!(lines(&rs), vec![Ok(1), Err(ErrorKind::Structure)]);
        let (_, rs) = read("a.json", b"[{\"a\": 1},]");
        assert_eq!(lines(&rs), vec![Ok(1), Err(ErrorKind::Structure)]);
        let (_, rs) = read("a.json", b"[] x");
        assert_eq!(lines(&rs), vec![Err(ErrorKind::Structure)]);
    }

    #[test]
    fn pretty_document_and_strings_with_brackets() {
        let (layout, rs) = read("a.json", b"{\n \"a\": \"}]\\\"{\",\n \"b\": [1, {}]\n}\n");
        assert_eq!(layout, Layout::JsonDocuments);
        assert_eq!(lines(&rs), vec![Ok(1)]);
        assert_eq!(rs[0].as_ref().unwrap().value["a"], "}]\"{");
    }

    #[test]
    fn jsonl_name_forces_lines_even_when_line_one_is_broken() {
        let (layout, rs) = read("a.jsonl", b"{\"a\": \n{\"a\": 2}\n");
        assert_eq!(layout, Layout::JsonLines);
        assert_eq!(lines(&rs), vec![Err(ErrorKind::Json), Ok(2)]);
    }

    #[test]
    fn utf8_error_names_line_and_column() {
        let (_, rs) = read("a.jsonl", b"{\"a\": 1}\n{\"a\": \"caf\xe9\"}\n");
        let e = rs[1].as_ref().unwrap_err();
        assert_eq!((e.kind, e.line), (ErrorKind::Utf8, Some(2)));
        assert!(e.found.contains("0xE9 at column 11"), "{}", e.found);
    }

    #[test]
    fn empty_and_whitespace_files_are_errors() {
        for bytes in [&b""[..], b"  \n\n", b"\xEF\xBB\xBF"] {
            let e = JsonSource::from_reader("e.jsonl", Cursor::new(bytes.to_vec())).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Empty);
        }
    }

    #[test]
    fn gzip_is_detected_by_magic_and_truncation_is_reported() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..2000 {
            writeln!(enc, "{{\"i\": {i}, \"pad\": \"{}\"}}", "x".repeat(i % 50)).unwrap();
        }
        let gz = enc.finish().unwrap();
        let (layout, rs) = read("data.bin", &gz);
        assert_eq!(layout, Layout::JsonLines);
        assert_eq!(rs.len(), 2000);
        assert!(rs.iter().all(Result::is_ok));
        let (_, rs) = read("data.jsonl.gz", &gz[..gz.len() / 2]);
        let last = rs.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.kind, ErrorKind::Gzip);
        assert!(!last.is_record_error());
    }
}
