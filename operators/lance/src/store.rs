//! Opening, checking and committing to a Lance dataset of embeddings.
//!
//! A write is one Lance commit: every row of the stream or none. The commit's transaction properties
//! record what it holds (pipeline, sources, model, dims, offsets) so a later run can resume or refuse.
//! Before writing to an existing dataset the model, dims and schema are checked: a mismatch is an
//! error, never a silent mix.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatchReader;
use arrow_schema::Schema;
use lance::Dataset;
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::{InsertBuilder, WriteMode, WriteParams};
use lance::io::{ObjectStoreParams, StorageOptionsAccessor};
use tracing::info;

use crate::error::{Result, StoreError, lance_err};
use crate::schema::{difference, written_by};

/// Where a dataset lives and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct DatasetLocation {
    /// Local path or object-store URI (`s3://bucket/path`).
    pub uri: String,
    /// Passed to Lance's object store (endpoint, region, credentials, …).
    pub storage_options: HashMap<String, String>,
}

/// How a write treats an existing dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkMode {
    /// Fail if the dataset exists.
    #[default]
    Create,
    /// Add rows to the dataset (created when missing).
    Append,
    /// Replace the dataset's rows with a new version.
    Overwrite,
}

/// What one commit produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSummary {
    pub version: u64,
    pub rows_total: usize,
}

impl DatasetLocation {
    pub fn local(path: impl Into<String>) -> Self {
        Self {
            uri: path.into(),
            storage_options: HashMap::new(),
        }
    }

    fn store_params(&self) -> Option<ObjectStoreParams> {
        if self.storage_options.is_empty() {
            return None;
        }
        Some(ObjectStoreParams {
            storage_options_accessor: Some(Arc::new(StorageOptionsAccessor::with_static_options(
                self.storage_options.clone(),
            ))),
            ..ObjectStoreParams::default()
        })
    }

    /// The latest version, or `None` when there is no dataset at the URI.
    pub async fn open_if_exists(&self) -> Result<Option<Dataset>> {
        let builder =
            DatasetBuilder::from_uri(&self.uri).with_storage_options(self.storage_options.clone());
        match builder.load().await {
            Ok(ds) => Ok(Some(ds)),
            Err(lance::Error::DatasetNotFound { .. }) => Ok(None),
            Err(e) => Err(lance_err(&self.uri)(e)),
        }
    }

    /// The latest version; a missing dataset is an error.
    pub async fn open(&self) -> Result<Dataset> {
        self.open_if_exists()
            .await?
            .ok_or_else(|| StoreError::NotFound(self.uri.clone()))
    }

    /// Refuses writes the dataset cannot take: create over an existing dataset, or append with another
    /// model, dims or schema. Returns the existing dataset, if any.
    pub async fn check_writable(&self, mode: SinkMode, schema: &Schema) -> Result<Option<Dataset>> {
        let Some(ds) = self.open_if_exists().await? else {
            return Ok(None);
        };
        match mode {
            SinkMode::Create => Err(StoreError::AlreadyExists(self.uri.clone())),
            SinkMode::Overwrite => Ok(Some(ds)),
            SinkMode::Append => {
                let found = Schema::from(ds.schema());
                if let (Some(have), Some(want)) =
                    (written_by(found.metadata()), written_by(schema.metadata()))
                    && have != want
                {
                    return Err(StoreError::ModelMismatch {
                        uri: self.uri.clone(),
                        found_model: have.model_id,
                        found_dims: have.dims,
                        model: want.model_id,
                        dims: want.dims,
                    });
                }
                if let Some(d) = difference(schema, &found) {
                    return Err(StoreError::SchemaMismatch {
                        uri: self.uri.clone(),
                        difference: d,
                    });
                }
                Ok(Some(ds))
            }
        }
    }

    /// Writes every batch of `reader` as one commit carrying `properties`. Streams: memory stays bounded
    /// whatever the input size; an error from the reader aborts the write and commits nothing.
    pub async fn commit(
        &self,
        mode: SinkMode,
        reader: Box<dyn RecordBatchReader + Send>,
        properties: HashMap<String, String>,
    ) -> Result<CommitSummary> {
        let exists = self.open_if_exists().await?.is_some();
        let mode = match (mode, exists) {
            (SinkMode::Create, true) => return Err(StoreError::AlreadyExists(self.uri.clone())),
            (SinkMode::Append, true) => WriteMode::Append,
            (SinkMode::Overwrite, true) => WriteMode::Overwrite,
            (_, false) => WriteMode::Create,
        };
        let params = WriteParams {
            mode,
            store_params: self.store_params(),
            transaction_properties: Some(Arc::new(properties)),
            ..WriteParams::default()
        };
        let ds = InsertBuilder::new(self.uri.as_str())
            .with_params(&params)
            .execute_stream(reader)
            .await
            .map_err(lance_err(&self.uri))?;
        let rows_total = ds.count_rows(None).await.map_err(lance_err(&self.uri))?;
        let version = ds.version().version;
        info!(uri = %self.uri, version, rows_total, "committed");
        Ok(CommitSummary {
            version,
            rows_total,
        })
    }
}

/// The transaction properties of every version, oldest first (versions without a transaction file or
/// properties are skipped).
pub async fn commit_history(ds: &Dataset) -> Result<Vec<(u64, HashMap<String, String>)>> {
    let versions = ds.versions().await.map_err(lance_err(ds.uri()))?;
    let mut out = Vec::with_capacity(versions.len());
    for v in versions {
        let tx = ds
            .read_transaction_by_version(v.version)
            .await
            .map_err(lance_err(ds.uri()))?;
        if let Some(props) = tx.and_then(|t| t.transaction_properties) {
            out.push((v.version, props.as_ref().clone()));
        }
    }
    Ok(out)
}
