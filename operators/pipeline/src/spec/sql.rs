//! The `sql:` block of a SQL source: the query whose rows are the documents, and the tables it reads.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A SQL source: the query's rows are the documents (`id_field`, `text_field`, `metadata_fields` name
/// its columns; any type is read as text). Runs once, like a file source: one commit.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlSourceSpec {
    /// e.g. `SELECT id, text, law FROM docs WHERE law LIKE 'boe-a-2015%'`.
    pub query: String,
    /// Table name → file: `.lance` (a Lance dataset, local or `s3://`), `.parquet`, `.csv` (with a
    /// header), `.jsonl`/`.json` (newline-delimited). Relative paths are relative to the spec file.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
}
