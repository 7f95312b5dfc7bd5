//! JSON files: newline-delimited objects (`.jsonl`, `.ndjson`) or one array of objects (a `.json`
//! export), told apart by the first byte that is not whitespace (`[` starts an array). Both are read
//! one record at a time with bounded memory: a record over the limit is measured and skipped, never
//! held whole, and reported as a `too_large` bad record with its line and size.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;

use super::batches::FillBatch;
use super::file::SourceFile;
use super::rows::{Refusal, RefusalKind, RowBuilder, json_change};
use crate::error::{PipelineError, Result};
use crate::spec::SourceSpec;

/// Room in a record for the id, metadata and JSON syntax besides the text.
const MAX_RECORD_OVERHEAD: usize = 1 << 20;

/// The UTF-8 byte order mark some editors and exporters write first.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What reading one record gave.
enum Record {
    End,
    /// In the buffer; starts on this line.
    Read {
        line: usize,
    },
    /// Over the record limit: skipped, only measured.
    TooLong {
        line: usize,
        bytes: u64,
    },
}

/// How records are framed in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// One record per line.
    Lines,
    /// `[ rec, rec, … ]`: `started` once the first element has been read (a `,` must come before
    /// the next), `closed` once `]` was seen.
    Array { started: bool, closed: bool },
}

/// Reads a JSONL file or a JSON array file into document batches.
pub struct JsonReader {
    path: PathBuf,
    input: BufReader<File>,
    framing: Framing,
    /// Lines consumed so far (the next byte is on line `line + 1`).
    line: usize,
    /// Array elements read so far (for messages).
    elements: usize,
    spec: SourceSpec,
    rows: RowBuilder,
}

impl JsonReader {
    pub fn open(file: &SourceFile, spec: &SourceSpec, schema: SchemaRef) -> Result<Self> {
        let f = File::open(&file.path).map_err(|e| PipelineError::Io {
            path: file.path.clone(),
            source: e,
        })?;
        let mut reader = Self {
            path: file.path.clone(),
            input: BufReader::with_capacity(1 << 20, f),
            framing: Framing::Lines,
            line: 0,
            elements: 0,
            spec: spec.clone(),
            rows: RowBuilder::new(schema, spec),
        };
        reader.sniff()?;
        Ok(reader)
    }

    /// Drops a byte order mark and tells lines from an array by the first byte that is not
    /// whitespace. Whitespace before `[` is consumed (and its lines counted); before a JSONL record
    /// it is left to the line reader.
    fn sniff(&mut self) -> Result<()> {
        if fill(&mut self.input, &self.path)?.starts_with(BOM) {
            self.input.consume(BOM.len());
        }
        let head = fill(&mut self.input, &self.path)?;
        let first = head.iter().position(|b| !b.is_ascii_whitespace());
        if let Some(i) = first.filter(|&i| head[i] == b'[') {
            let lines = newlines(&head[..i]);
            self.line += lines;
            self.input.consume(i + 1);
            self.framing = Framing::Array {
                started: false,
                closed: false,
            };
        }
        Ok(())
    }

    /// A broken array: the file cannot be read further (there is no next record to resync on).
    fn malformed(&self, what: String) -> PipelineError {
        PipelineError::Source {
            path: self.path.clone(),
            message: format!(
                "line {}: {what} (after {} array elements)",
                self.line + 1,
                self.elements
            ),
        }
    }

    /// The longest record kept in memory: a text at `max_text_bytes`, escaped at worst (6 bytes per
    /// byte as `\uXXXX`), plus room for the id and metadata.
    fn max_record_bytes(&self) -> usize {
        self.spec
            .max_text_bytes
            .saturating_mul(6)
            .saturating_add(MAX_RECORD_OVERHEAD)
    }

    fn read_record(&mut self, buf: &mut Vec<u8>) -> Result<Record> {
        buf.clear();
        match self.framing {
            Framing::Lines => self.read_line(buf),
            Framing::Array { .. } => self.read_element(buf),
        }
    }

    /// Reads up to and including the next `\n` into `buf` in chunks; past the limit only counts.
    fn read_line(&mut self, buf: &mut Vec<u8>) -> Result<Record> {
        let mut keep = Keep::new(self.max_record_bytes());
        loop {
            let chunk = fill(&mut self.input, &self.path)?;
            if chunk.is_empty() {
                break;
            }
            let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            keep.add(buf, &chunk[..take]);
            self.input.consume(take);
            if end {
                break;
            }
        }
        if keep.total == 0 {
            return Ok(Record::End);
        }
        self.line += 1;
        Ok(keep.record(self.line))
    }

    /// Skips whitespace, counting lines; returns the next byte without consuming it.
    fn skip_whitespace(&mut self) -> Result<Option<u8>> {
        loop {
            let chunk = fill(&mut self.input, &self.path)?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let end = chunk.iter().position(|b| !b.is_ascii_whitespace());
            let n = end.unwrap_or(chunk.len());
            let (next, lines) = (end.map(|i| chunk[i]), newlines(&chunk[..n]));
            self.line += lines;
            self.input.consume(n);
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    /// Reads the next array element into `buf`, with the separators around it.
    fn read_element(&mut self, buf: &mut Vec<u8>) -> Result<Record> {
        let Framing::Array { started, closed } = self.framing else {
            return Ok(Record::End);
        };
        let next = self.skip_whitespace()?;
        if closed {
            return match next {
                None => Ok(Record::End),
                Some(b) => {
                    Err(self
                        .malformed(format!("`{}` after the array's closing `]`", char::from(b))))
                }
            };
        }
        let next = match (next, started) {
            (None, _) => return Err(self.malformed("the array has no closing `]`".into())),
            (Some(b']'), _) => {
                self.input.consume(1);
                self.framing = Framing::Array {
                    started,
                    closed: true,
                };
                return self.read_element(buf);
            }
            (Some(b','), true) => {
                self.input.consume(1);
                self.skip_whitespace()?
            }
            (Some(b), true) => {
                return Err(self.malformed(format!(
                    "expected `,` or `]` between array elements, found `{}`",
                    char::from(b)
                )));
            }
            (Some(b), false) => Some(b),
        };
        match next {
            None => Err(self.malformed("the array has no closing `]`".into())),
            Some(b @ (b']' | b',')) => Err(self.malformed(format!(
                "expected an array element, found `{}`",
                char::from(b)
            ))),
            Some(_) => {
                let line = self.line + 1;
                let mut keep = Keep::new(self.max_record_bytes());
                self.scan_value(buf, &mut keep)?;
                self.elements += 1;
                self.framing = Framing::Array {
                    started: true,
                    closed: false,
                };
                Ok(keep.record(line))
            }
        }
    }

    /// Consumes one JSON value (object, array, string or scalar) byte by byte, tracking nesting and
    /// strings so that brackets and commas inside strings do not count.
    fn scan_value(&mut self, buf: &mut Vec<u8>, keep: &mut Keep) -> Result<()> {
        let mut scan = Scanner::default();
        loop {
            let chunk = fill(&mut self.input, &self.path)?;
            if chunk.is_empty() {
                return Err(self.malformed("the file ends inside an array element".into()));
            }
            let (take, end) = match scan.feed(chunk) {
                Some(n) => (n, true),
                None => (chunk.len(), false),
            };
            let lines = newlines(&chunk[..take]);
            keep.add(buf, &chunk[..take]);
            self.line += lines;
            self.input.consume(take);
            if end {
                return Ok(());
            }
        }
    }

    fn push(&mut self, bytes: &[u8], line: usize) -> Result<()> {
        if bytes.trim_ascii().is_empty() {
            return Ok(());
        }
        match json_change(bytes, &self.spec, None) {
            Ok(change) => {
                self.rows.push_change(&change);
                Ok(())
            }
            Err(refusal) => self.rows.bad(&self.path, line, refusal),
        }
    }

    fn too_long(&mut self, line: usize, bytes: u64) -> Result<()> {
        let limit = self.max_record_bytes();
        let what = match self.framing {
            Framing::Lines => "line",
            Framing::Array { .. } => "array element",
        };
        let refusal = Refusal::new(
            RefusalKind::TooLarge,
            format!(
                "{what} of {bytes} bytes, over the {limit}-byte {what} limit (max_text_bytes × 6 + 1 MiB); not read into memory"
            ),
        );
        self.rows.bad(&self.path, line, refusal)
    }

    /// Reads records until a batch is full or the file ends (`true`).
    fn read_batch(&mut self) -> Result<bool> {
        let mut buf = Vec::new();
        while self.rows.rows < self.spec.batch_rows {
            match self.read_record(&mut buf)? {
                Record::End => {
                    return Ok(true);
                }
                Record::Read { line } => self.push(&buf, line)?,
                Record::TooLong { line, bytes } => self.too_long(line, bytes)?,
            }
        }
        Ok(false)
    }
}

impl FillBatch for JsonReader {
    fn fill_batch(&mut self) -> Result<bool> {
        self.read_batch()
    }

    fn rows(&mut self) -> &mut RowBuilder {
        &mut self.rows
    }
}

/// The buffered bytes not consumed yet (empty at the end of the file). Borrows only the input, so
/// that the reader's line count can change while a chunk is in hand.
fn fill<'a>(input: &'a mut BufReader<File>, path: &Path) -> Result<&'a [u8]> {
    input.fill_buf().map_err(|e| PipelineError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Keeps a record's bytes up to a limit, then only counts them.
struct Keep {
    limit: usize,
    total: u64,
    over: bool,
}

impl Keep {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            total: 0,
            over: false,
        }
    }

    fn add(&mut self, buf: &mut Vec<u8>, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if !self.over && buf.len() + bytes.len() > self.limit {
            self.over = true;
            buf.clear();
            buf.shrink_to(1 << 20);
        }
        if !self.over {
            buf.extend_from_slice(bytes);
        }
    }

    fn record(&self, line: usize) -> Record {
        if self.over {
            Record::TooLong {
                line,
                bytes: self.total,
            }
        } else {
            Record::Read { line }
        }
    }
}

/// Finds where one JSON value ends. Structure only: whether the value is valid JSON is for the
/// parser to say (a bad element becomes a bad record, not a broken file).
#[derive(Default)]
struct Scanner {
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// A scalar (number, `true`, …) at the top: it ends before whitespace, `,` or `]`.
    scalar: bool,
    started: bool,
}

impl Scanner {
    /// Feeds the next bytes; `Some(n)` when the value ends after `n` of them.
    fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            if !self.started {
                self.started = true;
                match b {
                    b'{' | b'[' => self.depth = 1,
                    b'"' => self.in_string = true,
                    _ => self.scalar = true,
                }
                continue;
            }
            if self.scalar {
                if b.is_ascii_whitespace() || b == b',' || b == b']' {
                    return Some(i);
                }
                continue;
            }
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => {
                        self.in_string = false;
                        if self.depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(parts: &[&str]) -> Option<usize> {
        let mut s = Scanner::default();
        let mut offset = 0;
        for p in parts {
            if let Some(n) = s.feed(p.as_bytes()) {
                return Some(offset + n);
            }
            offset += p.len();
        }
        None
    }

    #[test]
    fn scanner_ends_values_after_their_last_byte_whatever_the_chunks() {
        assert_eq!(ends(&[r#"{"a": "}]", "b": [1, {"c": 2}]}, {"#]), Some(31));
        assert_eq!(ends(&[r#"{"a": "x\"}"#, r#"", "b": 1} x"#]), Some(21));
        assert_eq!(ends(&[r#""a \\"#, r#"" ,"#]), Some(6));
        assert_eq!(ends(&["12", "34 ,"]), Some(4));
        assert_eq!(ends(&["true]"]), Some(4));
        assert_eq!(ends(&[r#"{"open": "#]), None);
    }
}
