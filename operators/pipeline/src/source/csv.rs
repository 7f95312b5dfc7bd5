//! CSV files, read by the `csv` crate: the header row names the columns, quoted fields may hold
//! commas, doubled quotes and newlines, and a UTF-8 byte order mark is dropped. Every field is text.
//! Bad records are named by the line they start on: a record whose field count differs from the
//! header's is `malformed_csv`, a field that is not UTF-8 is `invalid_utf8`. Memory stays bounded: a
//! record over the record limit stops the file with an error (an unclosed quote would otherwise take
//! the rest of the file into one field, and nothing after it can be trusted).

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_schema::SchemaRef;
use csv::{ByteRecord, ErrorKind};

use super::batches::FillBatch;
use super::file::SourceFile;
use super::rows::{Refusal, RefusalKind, RowBuilder, Value};
use crate::error::{PipelineError, Result};
use crate::spec::SourceSpec;

/// Room in a record for the id, metadata and CSV syntax besides the text.
const MAX_RECORD_OVERHEAD: usize = 1 << 20;

/// Bytes the csv reader buffers ahead of the record it parses.
const READ_AHEAD: usize = 64 << 10;

/// Reads a CSV file into document batches.
pub struct CsvReader {
    path: PathBuf,
    records: csv::Reader<Bounded>,
    /// The most bytes the file may be read to before the next record ends (see `Bounded`).
    window_end: Arc<AtomicU64>,
    columns: Columns,
    spec: SourceSpec,
    rows: RowBuilder,
}

/// Where the fields the spec names sit in a record (`None`: no such column).
struct Columns {
    fields: usize,
    id: Option<usize>,
    text: Option<usize>,
    metadata: Vec<Option<usize>>,
}

impl CsvReader {
    pub fn open(file: &SourceFile, spec: &SourceSpec, schema: SchemaRef) -> Result<Self> {
        let f = File::open(&file.path).map_err(|e| PipelineError::Io {
            path: file.path.clone(),
            source: e,
        })?;
        let window_end = Arc::new(AtomicU64::new(0));
        let input = Bounded {
            inner: f,
            read: 0,
            window_end: window_end.clone(),
        };
        let records = csv::ReaderBuilder::new()
            .has_headers(true)
            // Field counts are checked per record, so that a short row is a bad record.
            .flexible(true)
            .buffer_capacity(READ_AHEAD)
            .from_reader(input);
        let mut reader = Self {
            path: file.path.clone(),
            records,
            window_end,
            columns: Columns {
                fields: 0,
                id: None,
                text: None,
                metadata: Vec::new(),
            },
            spec: spec.clone(),
            rows: RowBuilder::new(schema, spec),
        };
        reader.open_window();
        reader.columns = reader.header()?;
        Ok(reader)
    }

    fn max_record_bytes(&self) -> usize {
        self.spec.max_text_bytes.saturating_add(MAX_RECORD_OVERHEAD)
    }

    /// Lets the input be read up to one record limit (and the read-ahead) past where the next record
    /// starts.
    fn open_window(&self) {
        let start = self.records.position().byte();
        let room = (self.max_record_bytes() + 2 * READ_AHEAD) as u64;
        self.window_end.store(start + room, Ordering::Relaxed);
    }

    fn header(&mut self) -> Result<Columns> {
        let header = match self.records.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => return Err(self.error(e, 1)),
        };
        let names: Vec<Cow<str>> = header.iter().map(String::from_utf8_lossy).collect();
        let find = |name: &str| names.iter().position(|n| n.trim() == name);
        if find(&self.spec.text_field).is_none() {
            return Err(PipelineError::Source {
                path: self.path.clone(),
                message: format!(
                    "no column `{}` (source.text_field) in the header: {}",
                    self.spec.text_field,
                    names.join(", ")
                ),
            });
        }
        Ok(Columns {
            fields: names.len(),
            id: find(&self.spec.id_field),
            text: find(&self.spec.text_field),
            metadata: self.spec.metadata_fields.iter().map(|m| find(m)).collect(),
        })
    }

    /// A reading error that ends the file (I/O, or a record over the limit) in the record starting
    /// on `line`.
    fn error(&self, e: csv::Error, line: u64) -> PipelineError {
        let over_limit = matches!(e.kind(), ErrorKind::Io(io) if io.get_ref().is_some_and(|i| i.is::<RecordOverLimit>()));
        let message = match e.kind() {
            _ if over_limit => format!(
                "line {line}: a record over the {}-byte record limit (max_text_bytes + 1 MiB; an unclosed quote?); the rest of the file cannot be read",
                self.max_record_bytes()
            ),
            _ => format!("line {line}: {e}"),
        };
        PipelineError::Source {
            path: self.path.clone(),
            message,
        }
    }

    /// Adds one record, or records why it is bad.
    fn push(&mut self, record: &ByteRecord, line: usize) -> Result<()> {
        if record.len() != self.columns.fields {
            let refusal = Refusal::new(
                RefusalKind::MalformedCsv,
                format!(
                    "{} fields, the header has {} (an unquoted comma?)",
                    record.len(),
                    self.columns.fields
                ),
            );
            return self.rows.bad(&self.path, line, refusal);
        }
        let field = |at: Option<usize>| -> std::result::Result<Value<'_>, Refusal> {
            let Some(bytes) = at.and_then(|i| record.get(i)) else {
                return Ok(Value::Missing);
            };
            std::str::from_utf8(bytes)
                .map(|s| Value::Str(Cow::Borrowed(s)))
                .map_err(|e| {
                    Refusal::new(RefusalKind::InvalidUtf8, format!("not valid UTF-8 ({e})"))
                })
        };
        let fields = (|| {
            let metadata = self
                .columns
                .metadata
                .iter()
                .map(|&m| field(m))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok((field(self.columns.id)?, field(self.columns.text)?, metadata))
        })();
        match fields {
            Ok((id, text, metadata)) => self
                .rows
                .push(&self.path, line, &self.spec, id, text, metadata),
            Err(refusal) => self.rows.bad(&self.path, line, refusal),
        }
    }

    /// Reads records until a batch is full or the file ends (`true`).
    fn read_batch(&mut self) -> Result<bool> {
        let mut record = ByteRecord::new();
        while self.rows.rows < self.spec.batch_rows {
            let line = self.records.position().line();
            match self.records.read_byte_record(&mut record) {
                Ok(false) => {
                    return Ok(true);
                }
                Ok(true) => {
                    let line = record.position().map_or(line, |p| p.line());
                    self.push(&record, line as usize)?;
                }
                Err(e) => return Err(self.error(e, line)),
            }
            self.open_window();
        }
        Ok(false)
    }
}

impl FillBatch for CsvReader {
    fn fill_batch(&mut self) -> Result<bool> {
        self.read_batch()
    }

    fn rows(&mut self) -> &mut RowBuilder {
        &mut self.rows
    }
}

/// The file, refusing to be read past a window the reader opens at each record: memory for one
/// record stays bounded even when a quote never closes.
struct Bounded {
    inner: File,
    read: u64,
    window_end: Arc<AtomicU64>,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.read >= self.window_end.load(Ordering::Relaxed) {
            return Err(std::io::Error::other(RecordOverLimit));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// The error `Bounded` reads with once a record outgrows its window.
#[derive(Debug, thiserror::Error)]
#[error("record over the record limit")]
struct RecordOverLimit;
