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
use lance::dataset::transaction::{Operation, Transaction};
use lance::dataset::{CommitBuilder, InsertBuilder, WriteMode, WriteParams};
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
    /// A dataset at `uri` (a local path or `s3://…`) with no explicit store options: on object
    /// storage Lance then takes the endpoint, region and credentials from the `AWS_*` environment.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
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
        let write_mode = match (mode, exists) {
            (SinkMode::Create, true) => return Err(StoreError::AlreadyExists(self.uri.clone())),
            (SinkMode::Append, true) => WriteMode::Append,
            (SinkMode::Overwrite, true) => WriteMode::Overwrite,
            (_, false) => WriteMode::Create,
        };
        let params = self.write_params(write_mode, properties);
        let builder = InsertBuilder::new(self.uri.as_str()).with_params(&params);
        let ds = if exists {
            builder
                .execute_stream(reader)
                .await
                .map_err(lance_err(&self.uri))?
        } else {
            let tx = builder
                .execute_uncommitted_stream(reader)
                .await
                .map_err(lance_err(&self.uri))?;
            self.create_or_append(tx, mode == SinkMode::Create).await?
        };
        let rows_total = ds.count_rows(None).await.map_err(lance_err(&self.uri))?;
        let version = ds.version().version;
        info!(uri = %self.uri, version, rows_total, "committed");
        Ok(CommitSummary {
            version,
            rows_total,
        })
    }

    /// Appends `batch` as one commit carrying `properties`, on top of `base` (the caller's latest view;
    /// `None` when there was no dataset). Concurrent appenders all succeed: Lance rebases an append on
    /// versions committed meanwhile. When two writers race to create the dataset, the loser appends.
    pub async fn append(
        &self,
        base: Option<Arc<Dataset>>,
        batch: arrow_array::RecordBatch,
        properties: HashMap<String, String>,
    ) -> Result<Dataset> {
        let base = match base {
            Some(ds) => Some(ds),
            None => self.open_if_exists().await?.map(Arc::new),
        };
        let append = |ds: Arc<Dataset>, batch: arrow_array::RecordBatch| {
            let params = self.write_params(WriteMode::Append, properties.clone());
            async move {
                InsertBuilder::new(ds)
                    .with_params(&params)
                    .execute(vec![batch])
                    .await
                    .map_err(lance_err(&self.uri))
            }
        };
        if let Some(ds) = base {
            return append(ds, batch).await;
        }
        let created = InsertBuilder::new(self.uri.as_str())
            .with_params(&self.write_params(WriteMode::Create, properties.clone()))
            .execute_uncommitted(vec![batch.clone()])
            .await;
        match created {
            Ok(tx) => self.create_or_append(tx, false).await,
            // Created by another writer since we looked.
            Err(lance::Error::DatasetAlreadyExists { .. }) => {
                append(Arc::new(self.open().await?), batch).await
            }
            Err(e) => Err(lance_err(&self.uri)(e)),
        }
    }

    fn write_params(&self, mode: WriteMode, properties: HashMap<String, String>) -> WriteParams {
        WriteParams {
            mode,
            store_params: self.store_params(),
            transaction_properties: Some(Arc::new(properties)),
            ..WriteParams::default()
        }
    }

    /// Commits a create transaction (files already written) strictly. A plain commit is not safe: if
    /// another writer created the dataset while this one wrote its files, Lance would commit this
    /// Create as an Overwrite on top, dropping the other writer's rows. Strictly, the loser fails;
    /// unless `exclusive`, its files are then committed as an Append on the dataset the winner made.
    async fn create_or_append(&self, tx: Transaction, exclusive: bool) -> Result<Dataset> {
        let mut commit = CommitBuilder::new(self.uri.as_str()).with_max_retries(0);
        if let Some(sp) = self.store_params() {
            commit = commit.with_store_params(sp);
        }
        let lost = match commit.execute(tx.clone()).await {
            Ok(ds) if ds.version().version == 1 => return Ok(ds),
            Ok(ds) => {
                return Err(StoreError::Invalid(format!(
                    "{}: creating the dataset committed version {} instead of 1",
                    self.uri,
                    ds.version().version
                )));
            }
            Err(e) => e,
        };
        let Some(ds) = self.open_if_exists().await? else {
            return Err(lance_err(&self.uri)(lost));
        };
        if exclusive {
            return Err(StoreError::AlreadyExists(self.uri.clone()));
        }
        let Operation::Overwrite { fragments, .. } = tx.operation else {
            return Err(lance_err(&self.uri)(lost));
        };
        info!(uri = %self.uri, "another writer created the dataset first: appending");
        let mut append =
            Transaction::new(ds.version().version, Operation::Append { fragments }, None);
        append.transaction_properties = tx.transaction_properties;
        CommitBuilder::new(Arc::new(ds))
            .execute(append)
            .await
            .map_err(lance_err(&self.uri))
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, RecordBatch};
    use arrow_schema::{DataType, Field};

    fn batch(values: &[i32]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(values.to_vec()))]).unwrap()
    }

    /// The race `append` guards against: writer A has written its files for a Create when writer B
    /// creates the dataset. A's strict commit must fail (not overwrite B's rows), and `append` then
    /// lands A's rows on top of B's.
    #[tokio::test]
    async fn a_create_that_loses_the_race_fails_instead_of_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let params = WriteParams {
            mode: WriteMode::Create,
            ..WriteParams::default()
        };
        let write_a = || async {
            InsertBuilder::new(loc.uri.as_str())
                .with_params(&params)
                .execute_uncommitted(vec![batch(&[1, 2])])
                .await
                .unwrap()
        };
        let (a, a_again) = (write_a().await, write_a().await);
        loc.append(None, batch(&[3]), HashMap::new()).await.unwrap(); // B wins
        let strict = CommitBuilder::new(loc.uri.as_str())
            .with_max_retries(0)
            .execute(a)
            .await;
        assert!(strict.is_err(), "the losing create was committed");
        // What `append` does with the loser's files: commit them as an Append on the winner's dataset.
        let ds = loc.create_or_append(a_again, false).await.unwrap();
        assert_eq!(
            ds.count_rows(None).await.unwrap(),
            3,
            "rows of both writers"
        );
        assert_eq!(ds.version().version, 2);
    }
}
