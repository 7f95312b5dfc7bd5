//! Errors of the Lance store: what was wrong with which dataset, column or commit.

use lexembed_encoder::Prompt;

use crate::schema::WrittenBy;

/// Everything the store can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("lance dataset {uri}: {source}")]
    Lance {
        uri: String,
        #[source]
        source: lance::Error,
    },
    #[error("dataset {uri} was written by {found}; the pipeline says {want}")]
    ModelMismatch {
        uri: String,
        found: Box<WrittenBy>,
        want: Box<WrittenBy>,
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
    #[error(
        "dataset {uri}: its queries take {dataset_prompt} (its documents were embedded with {document_prompt}), but this query was embedded with {query_prompt}{hint}"
    )]
    QueryPrompt {
        uri: String,
        dataset_prompt: Prompt,
        document_prompt: Prompt,
        query_prompt: Prompt,
        /// How to get the right one, where the caller knows (SQL: `embed_query`).
        hint: String,
    },
    #[error(
        "dataset {uri} has no full-text index on {column}: build it with `lexembed index {uri} --column {column} --type fts` (or `indexes: [{{column: {column}, type: fts}}]` in the pipeline spec)"
    )]
    NoFullTextIndex { uri: String, column: String },
    #[error("dataset {uri}: {column} is not a text column (a full-text index needs one)")]
    NoTextColumn { uri: String, column: String },
    #[error("query vector has {got} values, column {column} holds {want}")]
    QueryWidth {
        column: String,
        got: usize,
        want: usize,
    },
    #[error(
        "dataset {uri} has no {column} column: sink mode upsert replaces and deletes rows by id (write the dataset with a lexembed pipeline, or use mode append)"
    )]
    NoIdColumn { uri: String, column: &'static str },
    #[error("upsert spill file: {0}")]
    Spill(#[from] std::io::Error),
    #[error("bad schema file {file}: {message}")]
    SchemaFile { file: &'static str, message: String },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("commit property {key} is not valid: {message}")]
    BadCommitRecord { key: &'static str, message: String },
    /// The model refused its own query prompt (e.g. a prompt with `include_prompt: false`).
    #[error(transparent)]
    Model(#[from] lexembed_encoder::EncoderError),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the store could not be reached or did not answer in time (after the object store's
    /// own retries), rather than refusing the request: worth trying again later (a server answers
    /// 503 with Retry-After, not 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Lance {
                source: lance::Error::IO { .. } | lance::Error::Timeout { .. },
                ..
            }
        )
    }
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
