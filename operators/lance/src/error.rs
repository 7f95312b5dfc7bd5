//! Errors of the Lance store: what was wrong with which dataset, column or commit.

/// Everything the store can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("lance dataset {uri}: {source}")]
    Lance {
        uri: String,
        #[source]
        source: lance::Error,
    },
    #[error(
        "dataset {uri} was written by model {found_model} with dims {found_dims:?}; the pipeline says model {model} with dims {dims:?}"
    )]
    ModelMismatch {
        uri: String,
        found_model: String,
        found_dims: Vec<u32>,
        model: String,
        dims: Vec<u32>,
    },
    #[error("dataset {uri} has another schema than this pipeline writes: {difference}")]
    SchemaMismatch { uri: String, difference: String },
    #[error("dataset {0} already exists (sink mode create); use mode append or overwrite")]
    AlreadyExists(String),
    #[error("dataset {0} does not exist")]
    NotFound(String),
    #[error("dataset {uri} has no column {column} (vector columns: {available})")]
    NoColumn {
        uri: String,
        column: String,
        available: String,
    },
    #[error(
        "dataset {uri} was embedded with model {dataset_model}, but the queries are embedded with {query_model}: queries must use the dataset's model (--model)"
    )]
    QueryModel {
        uri: String,
        dataset_model: String,
        query_model: String,
    },
    #[error("query vector has {got} values, column {column} holds {want}")]
    QueryWidth {
        column: String,
        got: usize,
        want: usize,
    },
    #[error("bad schema file {file}: {message}")]
    SchemaFile { file: &'static str, message: String },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("commit property {key} is not valid: {message}")]
    BadCommitRecord { key: &'static str, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches the dataset URI to a lance error.
pub fn lance_err(uri: &str) -> impl Fn(lance::Error) -> StoreError + '_ {
    move |source| StoreError::Lance {
        uri: uri.to_string(),
        source,
    }
}
