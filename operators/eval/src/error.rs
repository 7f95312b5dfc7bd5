//! Errors of evaluation: bad QA files (with line), datasets without the needed columns, empty sets.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}:{line}: {message}", path.display())]
    Qa {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    QaFile { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dataset {uri}: {message}")]
    Dataset { uri: String, message: String },
    #[error("no query of the QA set has a relevant document")]
    NoQueries,
    #[error(transparent)]
    Store(#[from] lexembed_lance::StoreError),
    #[error(transparent)]
    Encoder(#[from] lexembed_encoder::EncoderError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error(transparent)]
    Metric(#[from] crate::key::UnknownMetric),
    #[error("{0}")]
    Runtime(String),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
