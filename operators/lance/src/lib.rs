//! lexembed's Lance store. Owns the embedded dataset's schema (from `schemas/`), atomic commits that
//! record what they hold (and, where a writer's right to commit was read from a version, land only on
//! it), the checks that refuse a model or schema mismatch, vector search, indexes, compaction and a
//! cleanup of old versions that keeps what resume and offset recovery need. Knows nothing of where
//! rows come from (sources) or how they were embedded beyond the model id and dims it records.

pub mod cleanup;
pub mod commit;
pub mod conditional;
pub mod error;
pub mod fulltext;
pub mod hybrid;
pub mod index;
pub(crate) mod keys;
pub mod mode;
pub mod schema;
pub mod search;
pub mod store;
pub mod upsert;

pub use cleanup::{CleanupSummary, cleanup, recovery_version};
pub use commit::{Checkpoint, CommitRecord, KafkaCommit, OffsetRanges, Recovery, TopicPartition};
pub use conditional::{Conditional, PendingAppend};
pub use error::{Result, StoreError};
pub use fulltext::{build_fts_index, fts_hits, require_fts_index};
pub use hybrid::{DEFAULT_RRF_K, Query, reciprocal_rank_fusion, search};
pub use index::{IndexKind, IndexParams, build_index, compact, vector_columns};
/// The Lance dataset handle every function here takes (callers need not depend on lance for it).
pub use lance::Dataset;
pub use mode::{SearchMode, UnknownSearchMode};
pub use search::{
    Hit, QueryEmbedding, SearchOptions, check_query_model, check_query_with_hint,
    checked_query_prompt, hits, nearest, nearest_schema,
};
pub use store::{CommitSummary, DatasetLocation, SinkMode, commit_history};
pub use upsert::{ChangeLog, Changes, ID_COLUMN, UpsertSummary};
