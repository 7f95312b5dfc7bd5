//! Errors of pipelines: each names the spec file and line, the source file and line/row, or the field.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{}:{line}:{column}: {message}", file.display())]
    Spec {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {field}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        field: String,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Source { path: PathBuf, message: String },
    #[error("{}:{line}: bad record: {reason} (source.on_bad_record is fail; set it to skip to go on)", path.display())]
    BadRecord {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "{}: changed since this pipeline committed it (version {version}; size or modification time differ): resuming would ingest it again next to its old rows; restore it, or write it to a new dataset",
        path.display()
    )]
    ChangedSource { path: PathBuf, version: u64 },
    #[error("no files match {0}")]
    NoFiles(String),
    #[error(transparent)]
    Encoder(#[from] lexembed_encoder::EncoderError),
    #[error(transparent)]
    Store(#[from] lexembed_lance::StoreError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("parquet {}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error("{0}")]
    Runtime(String),
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
