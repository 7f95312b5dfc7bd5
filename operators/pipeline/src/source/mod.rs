//! Sources: where documents come from. Each yields `DocBatch`es — Arrow record batches with the
//! documents schema (`id`, `text`, metadata as nullable text) — and reports bad records with their
//! place. Sources never embed and never write.

mod batches;
mod csv;
pub mod file;
mod json;
mod parquet;
pub mod rows;

use std::path::PathBuf;

use arrow_array::RecordBatch;

pub use rows::{Deletion, RefusalKind};

/// A record that could not become a row, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub path: PathBuf,
    /// 1-based line (JSONL, CSV counting the header) or row (Parquet).
    pub line: usize,
    /// Why, as a stable kind (`not_json`, `missing_text`, `too_large`, …): summaries count by it.
    pub kind: RefusalKind,
    pub reason: String,
}

/// Documents from one file, ready for the encoder.
#[derive(Debug, Clone)]
pub struct DocBatch {
    pub batch: RecordBatch,
    pub skipped: Vec<BadRecord>,
    /// Ids the source deletes, placed among the batch's rows (`sink.mode: upsert`).
    pub deleted: Vec<Deletion>,
}

impl DocBatch {
    /// No rows, no bad records, no deletions: nothing to pass on.
    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0 && self.skipped.is_empty() && self.deleted.is_empty()
    }
}
