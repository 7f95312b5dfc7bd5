//! The file source: which files a pattern names (one path or a glob) and in which format, and the
//! reader for each (JSON in `json`, CSV in `csv`, Parquet in `parquet`), each yielding batches of
//! `batch_rows` with memory bounded by one batch whatever the file size.

use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;

use super::DocBatch;
use super::batches::Batches;
use super::csv::CsvReader;
use super::json::JsonReader;
use super::parquet::ParquetReader;
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
        FileFormat::Jsonl => Box::new(Batches::new(JsonReader::open(file, spec, schema)?)),
        FileFormat::Csv => Box::new(Batches::new(CsvReader::open(file, spec, schema)?)),
        FileFormat::Parquet => Box::new(ParquetReader::open(file, spec, schema)?),
    })
}
