//! The `sink:` block: the Lance dataset written (URI, mode, storage options, retries) and the
//! indexes built after a run.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::redacted;

/// Which index to build: a vector index (cosine) or the text column's full-text index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IndexTypeSpec {
    #[default]
    IvfPq,
    IvfHnswSq,
    /// Full-text (inverted) index with a Spanish analyzer, on the `text` column.
    Fts,
}

impl From<IndexTypeSpec> for lexembed_lance::IndexKind {
    fn from(k: IndexTypeSpec) -> Self {
        match k {
            IndexTypeSpec::IvfPq => Self::IvfPq,
            IndexTypeSpec::IvfHnswSq => Self::IvfHnswSq,
            IndexTypeSpec::Fts => Self::Fts,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SinkModeSpec {
    /// Create the dataset; refuse an existing one.
    #[default]
    Create,
    /// Add rows (the dataset is created when missing).
    Append,
    /// Replace the dataset's rows.
    Overwrite,
    /// Replace rows whose id exists, add the others; a record with a null text (a Kafka tombstone)
    /// deletes its id. The latest record of an id wins.
    Upsert,
}

impl SinkModeSpec {
    /// Whether a write keeps the rows it does not name (append, upsert): what resuming and streaming
    /// need.
    pub fn keeps_rows(self) -> bool {
        matches!(self, Self::Append | Self::Upsert)
    }

    /// As the spec spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Append => "append",
            Self::Overwrite => "overwrite",
            Self::Upsert => "upsert",
        }
    }
}

impl From<SinkModeSpec> for lexembed_lance::SinkMode {
    fn from(mode: SinkModeSpec) -> Self {
        match mode {
            SinkModeSpec::Create => Self::Create,
            SinkModeSpec::Append => Self::Append,
            SinkModeSpec::Overwrite => Self::Overwrite,
            SinkModeSpec::Upsert => Self::Upsert,
        }
    }
}

/// Where vectors go.
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// Lance dataset: a local path (relative to the spec file) or `s3://bucket/path`.
    pub uri: String,
    /// create (the default: refuse an existing dataset), append, overwrite, or upsert (replace the
    /// row of each id, add new ids; a null text or a Kafka tombstone deletes its id).
    #[serde(default)]
    pub mode: SinkModeSpec,
    /// With mode append or upsert: skip source files an earlier run of this pipeline already committed.
    #[serde(default)]
    pub resume: bool,
    /// Lance object-store options (endpoint, region, credentials via ${ENV}).
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
    /// How requests to an object store that is slow or unreachable for a while are tried again.
    #[serde(default)]
    pub retry: StoreRetrySpec,
    /// Vector indexes to build after the write.
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
}

/// Object-store retries (the object_store crate's `RetryConfig`, which Lance configures from the
/// store options `client_max_retries` and `client_retry_timeout`; set there, those win). A failed
/// request (connection refused or reset, timeout, 5xx) is tried again after a growing, jittered
/// backoff (0.1 s doubling to 15 s) while both bounds allow; past them the run fails with the store's
/// error, and a restart resumes from the last commit. Lance's own default, 3 retries, gives up within
/// about a second: a store restart or a network blip then stops the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreRetrySpec {
    /// Retries of one request before the run fails. Default 30: with the jittered backoff the
    /// timeout decides first (10 retries waited 18 s in all against a store down for 30 s, and the
    /// run failed).
    #[serde(default = "default_store_max_retries")]
    pub max_retries: usize,
    /// No retry starts later than this many seconds after the request's first try. Default 60.
    #[serde(default = "default_store_retry_timeout_s")]
    pub timeout_s: u64,
}

impl Default for StoreRetrySpec {
    fn default() -> Self {
        Self {
            max_retries: default_store_max_retries(),
            timeout_s: default_store_retry_timeout_s(),
        }
    }
}

fn default_store_max_retries() -> usize {
    30
}

fn default_store_retry_timeout_s() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// Vector column, e.g. emb_256; `text` for a full-text index.
    pub column: String,
    /// ivf_pq (default) or ivf_hnsw_sq for vector columns; fts for the text column (`lexembed search
    /// --mode fts|hybrid`).
    #[serde(default, rename = "type")]
    pub kind: IndexTypeSpec,
    #[serde(default)]
    pub num_partitions: Option<usize>,
    #[serde(default)]
    pub num_sub_vectors: Option<usize>,
}

impl std::fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSpec")
            .field("uri", &self.uri)
            .field("mode", &self.mode)
            .field("resume", &self.resume)
            .field("storage_options", &redacted(&self.storage_options))
            .field("retry", &self.retry)
            .field("indexes", &self.indexes)
            .finish()
    }
}
