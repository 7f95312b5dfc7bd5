//! The file source: JSONL, CSV or Parquet, one file or a glob, read in batches of `batch_rows`.
//! Memory stays bounded by one batch whatever the file size.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::DocBatch;
use super::rows::{Refusal, RowBuilder, Value, json_doc};
use crate::error::{PipelineError, Result};
use crate::spec::{FileFormat, SourceSpec};

/// One input file and what identifies its content for resume (path, size, modification time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub format: FileFormat,
    pub size: u64,
    pub modified_ns: u128,
}

impl SourceFile {
    /// Identity recorded in commits: a changed file (size or mtime) is a new source.
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.path.display(), self.size, self.modified_ns)
    }

    /// The path part of a `key` (`None` for keys of other sources, e.g. SQL).
    pub fn path_of_key(key: &str) -> Option<&str> {
        let mut parts = key.rsplitn(3, '|');
        let (_modified, _size) = (parts.next()?, parts.next()?);
        parts.next()
    }
}

/// Files matching `pattern`, sorted, each with its format.
pub fn resolve_files(pattern: &str, format: Option<FileFormat>) -> Result<Vec<SourceFile>> {
    let paths = glob::glob(pattern).map_err(|e| PipelineError::Source {
        path: pattern.into(),
        message: format!("bad glob: {e}"),
    })?;
    let mut files = Vec::new();
    for entry in paths {
        let path = entry.map_err(|e| PipelineError::Source {
            path: pattern.into(),
            message: e.to_string(),
        })?;
        let path = path.canonicalize().unwrap_or(path);
        let meta = std::fs::metadata(&path).map_err(|e| PipelineError::Io {
            path: path.clone(),
            source: e,
        })?;
        if !meta.is_file() {
            continue;
        }
        let format = match format {
            Some(f) => f,
            None => format_of(&path)?,
        };
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        files.push(SourceFile {
            path,
            format,
            size: meta.len(),
            modified_ns,
        });
    }
    if files.is_empty() {
        return Err(PipelineError::NoFiles(pattern.to_string()));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn format_of(path: &Path) -> Result<FileFormat> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jsonl" | "ndjson" | "json") => Ok(FileFormat::Jsonl),
        Some("csv") => Ok(FileFormat::Csv),
        Some("parquet") => Ok(FileFormat::Parquet),
        _ => Err(PipelineError::Source {
            path: path.to_path_buf(),
            message:
                "cannot tell the format from the extension: set source.format (jsonl, csv, parquet)"
                    .into(),
        }),
    }
}

/// Reads one file's documents in batches.
pub fn read_file(
    file: &SourceFile,
    spec: &SourceSpec,
    schema: SchemaRef,
) -> Result<Box<dyn Iterator<Item = Result<DocBatch>> + Send>> {
    Ok(match file.format {
        FileFormat::Jsonl => Box::new(JsonlReader::open(file, spec, schema)?),
        FileFormat::Csv => Box::new(ArrowRows::csv(file, spec, schema)?),
        FileFormat::Parquet => Box::new(ArrowRows::parquet(file, spec, schema)?),
    })
}

/// Room on a JSONL line for the id, metadata and JSON syntax besides the text.
const MAX_LINE_OVERHEAD: usize = 1 << 20;

/// What reading one JSONL line gave.
enum Line {
    End,
    Read,
    /// Over the line limit: skipped, only measured.
    TooLong {
        bytes: u64,
        limit: usize,
    },
}

struct JsonlReader {
    path: PathBuf,
    lines: BufReader<File>,
    line: usize,
    spec: SourceSpec,
    rows: RowBuilder,
    done: bool,
}

impl JsonlReader {
    fn open(file: &SourceFile, spec: &SourceSpec, schema: SchemaRef) -> Result<Self> {
        let f = File::open(&file.path).map_err(|e| PipelineError::Io {
            path: file.path.clone(),
            source: e,
        })?;
        Ok(Self {
            path: file.path.clone(),
            lines: BufReader::with_capacity(1 << 20, f),
            line: 0,
            spec: spec.clone(),
            rows: RowBuilder::new(schema, spec),
            done: false,
        })
    }

    /// The longest line kept in memory: a record whose text is at `max_text_bytes`, escaped at worst
    /// (6 bytes per byte as `\uXXXX`), plus room for the id and metadata. Longer lines are measured
    /// and skipped, never held whole.
    fn max_line_bytes(&self) -> usize {
        self.spec
            .max_text_bytes
            .saturating_mul(6)
            .saturating_add(MAX_LINE_OVERHEAD)
    }

    /// Reads the next line into `buf`; a line over `max_line_bytes` is read through to its end in
    /// chunks (memory stays bounded) and only its size is kept.
    fn read_line(&mut self, buf: &mut Vec<u8>) -> Result<Line> {
        buf.clear();
        let limit = self.max_line_bytes();
        let io = |e| PipelineError::Io {
            path: self.path.clone(),
            source: e,
        };
        let (mut total, mut over) = (0u64, false);
        loop {
            let chunk = self.lines.fill_buf().map_err(io)?;
            if chunk.is_empty() {
                break;
            }
            let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            total += take as u64;
            if !over && buf.len() + take > limit {
                over = true;
                buf.clear();
                buf.shrink_to(1 << 20);
            }
            if !over {
                buf.extend_from_slice(&chunk[..take]);
            }
            self.lines.consume(take);
            if end {
                break;
            }
        }
        if total == 0 {
            return Ok(Line::End);
        }
        self.line += 1;
        Ok(if over {
            Line::TooLong {
                bytes: total,
                limit,
            }
        } else {
            Line::Read
        })
    }

    fn push(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.trim_ascii().is_empty() {
            return Ok(());
        }
        match json_doc(bytes, &self.spec, None) {
            Ok(doc) => {
                self.rows.push_doc(&doc);
                Ok(())
            }
            Err(refusal) => self.rows.bad(&self.path, self.line, refusal),
        }
    }
}

impl Iterator for JsonlReader {
    type Item = Result<DocBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut buf = Vec::new();
        loop {
            match self.read_line(&mut buf) {
                Ok(line) => {
                    let pushed = match line {
                        Line::End => {
                            self.done = true;
                            break;
                        }
                        Line::Read => self.push(&buf),
                        Line::TooLong { bytes, limit } => {
                            let refusal = Refusal::new(
                                "too_large",
                                format!(
                                    "line of {bytes} bytes, over the {limit}-byte line limit (max_text_bytes × 6 + 1 MiB); not read into memory"
                                ),
                            );
                            self.rows.bad(&self.path, self.line, refusal)
                        }
                    };
                    if let Err(e) = pushed {
                        self.done = true;
                        return Some(Err(e));
                    }
                    if self.rows.rows >= self.spec.batch_rows {
                        break;
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        match self.rows.finish() {
            Ok((batch, skipped)) if batch.num_rows() > 0 || !skipped.is_empty() => {
                Some(Ok(DocBatch { batch, skipped }))
            }
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// CSV and Parquet: Arrow readers whose columns are read as text, then checked row by row.
struct ArrowRows {
    path: PathBuf,
    inner: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
    spec: SourceSpec,
    rows: RowBuilder,
    /// Line (CSV: header is line 1) or row number of the next record.
    next_line: usize,
}

impl ArrowRows {
    fn csv(file: &SourceFile, spec: &SourceSpec, schema: SchemaRef) -> Result<Self> {
        let io = |e| PipelineError::Io {
            path: file.path.clone(),
            source: e,
        };
        let mut header = String::new();
        BufReader::new(File::open(&file.path).map_err(io)?)
            .read_line(&mut header)
            .map_err(io)?;
        let names: Vec<String> = header
            .trim_end()
            .split(',')
            .map(|s| s.trim_matches('"').to_string())
            .collect();
        let text_schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let reader = arrow_csv::ReaderBuilder::new(text_schema)
            .with_header(true)
            .with_batch_size(spec.batch_rows)
            .build(File::open(&file.path).map_err(io)?)?;
        let path = file.path.clone();
        let inner = reader.map(move |b| {
            b.map_err(|e| PipelineError::Source {
                path: path.clone(),
                message: e.to_string(),
            })
        });
        Ok(Self::new(file, spec, schema, Box::new(inner), 2))
    }

    fn parquet(file: &SourceFile, spec: &SourceSpec, schema: SchemaRef) -> Result<Self> {
        let f = File::open(&file.path).map_err(|e| PipelineError::Io {
            path: file.path.clone(),
            source: e,
        })?;
        let perr = |e: parquet::errors::ParquetError| PipelineError::Parquet {
            path: file.path.clone(),
            message: e.to_string(),
        };
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(perr)?
            .with_batch_size(spec.batch_rows)
            .build()
            .map_err(perr)?;
        let path = file.path.clone();
        let inner = reader.map(move |b| {
            b.map_err(|e| PipelineError::Parquet {
                path: path.clone(),
                message: e.to_string(),
            })
        });
        Ok(Self::new(file, spec, schema, Box::new(inner), 1))
    }

    fn new(
        file: &SourceFile,
        spec: &SourceSpec,
        schema: SchemaRef,
        inner: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
        first: usize,
    ) -> Self {
        Self {
            path: file.path.clone(),
            inner,
            spec: spec.clone(),
            rows: RowBuilder::new(schema, spec),
            next_line: first,
        }
    }

    fn convert(&mut self, batch: &RecordBatch) -> Result<DocBatch> {
        let column = |name: &str| -> Result<Option<(Arc<dyn Array>, bool)>> {
            let Some(c) = batch.column_by_name(name) else {
                return Ok(None);
            };
            let is_text = matches!(
                c.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            Ok(Some((arrow_cast::cast(c, &DataType::Utf8)?, is_text)))
        };
        let id = column(&self.spec.id_field)?;
        let text = column(&self.spec.text_field)?;
        if text.is_none() {
            return Err(PipelineError::Source {
                path: self.path.clone(),
                message: format!("no column `{}` (source.text_field)", self.spec.text_field),
            });
        }
        let meta: Vec<Option<(Arc<dyn Array>, bool)>> = self
            .spec
            .metadata_fields
            .iter()
            .map(|m| column(m))
            .collect::<Result<_>>()?;
        let spec = self.spec.clone();
        for row in 0..batch.num_rows() {
            let get = |c: &Option<(Arc<dyn Array>, bool)>, text_only: bool| match c {
                None => Value::Missing,
                Some((a, _)) if a.is_null(row) => Value::Null,
                Some((a, is_text)) => {
                    let s = a.as_string::<i32>().value(row).to_string();
                    if *is_text || !text_only {
                        Value::Str(Cow::Owned(s))
                    } else {
                        Value::Other(s)
                    }
                }
            };
            let metadata = meta.iter().map(|c| get(c, false)).collect();
            self.rows.push(
                &self.path,
                self.next_line + row,
                &spec,
                get(&id, false),
                get(&text, true),
                metadata,
            )?;
        }
        self.next_line += batch.num_rows();
        let (batch, skipped) = self.rows.finish()?;
        Ok(DocBatch { batch, skipped })
    }
}

impl Iterator for ArrowRows {
    type Item = Result<DocBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.inner.next()?;
        Some(batch.and_then(|b| self.convert(&b)))
    }
}
