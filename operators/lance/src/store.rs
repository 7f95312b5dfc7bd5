//! Opening, checking and committing to a Lance dataset of embeddings.
//!
//! A write is one Lance commit: every row of the stream or none. The commit's transaction properties
//! record what it holds (pipeline, sources, model, dims, offsets) so a later run can resume or refuse.
//! Before writing to an existing dataset the model, dims and schema are checked: a mismatch is an
//! error, never a silent mix.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::Schema;
use lance::Dataset;
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::transaction::{Operation, Transaction};
use lance::dataset::{CommitBuilder, InsertBuilder, WriteMode, WriteParams};
use lance::io::{ObjectStoreParams, StorageOptionsAccessor};
use lance_datafusion::utils::StreamingWriteSource;
use tracing::info;

use crate::commit::CommitRecord;
use crate::error::{Result, StoreError, lance_err};
use crate::schema::{difference, written_by};

/// Where a dataset lives and how to reach it.
#[derive(Clone, Default)]
pub struct DatasetLocation {
    /// Local path or object-store URI (`s3://bucket/path`).
    pub uri: String,
    /// Passed to Lance's object store (endpoint, region, credentials, …).
    pub storage_options: HashMap<String, String>,
}

/// The store options may hold credentials: their keys only.
impl std::fmt::Debug for DatasetLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&str> = self.storage_options.keys().map(String::as_str).collect();
        keys.sort_unstable();
        f.debug_struct("DatasetLocation")
            .field("uri", &self.uri)
            .field("storage_options (values redacted)", &keys)
            .finish()
    }
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
    /// Replace rows whose id exists, add the others, delete ids (created when missing): see
    /// [`crate::upsert`].
    Upsert,
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

    pub(crate) fn store_params(&self) -> Option<ObjectStoreParams> {
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
                self.check_appendable(&ds, schema)?;
                Ok(Some(ds))
            }
            SinkMode::Upsert => {
                self.check_upsertable(&ds)?;
                self.check_appendable(&ds, schema)?;
                Ok(Some(ds))
            }
        }
    }

    /// Refuses rows of `schema` for `ds` when the model, dims or columns differ.
    pub(crate) fn check_appendable(&self, ds: &Dataset, schema: &Schema) -> Result<()> {
        let found = Schema::from(ds.schema());
        if let (Some(have), Some(want)) =
            (written_by(found.metadata()), written_by(schema.metadata()))
            && have != want
        {
            return Err(StoreError::ModelMismatch {
                uri: self.uri.clone(),
                found: Box::new(have),
                want: Box::new(want),
            });
        }
        match difference(schema, &found) {
            Some(d) => Err(StoreError::SchemaMismatch {
                uri: self.uri.clone(),
                difference: d,
            }),
            None => Ok(()),
        }
    }

    /// Writes every batch of `source` (a record-batch reader or stream) as one commit that records
    /// `record`. Streams: memory stays bounded whatever the input size; an error from the source aborts
    /// the write and commits nothing. A new dataset is created strictly (see `create_or_append`).
    pub async fn commit(
        &self,
        mode: SinkMode,
        source: impl StreamingWriteSource + 'static,
        record: &CommitRecord,
    ) -> Result<CommitSummary> {
        let exists = self.open_if_exists().await?.is_some();
        let write_mode = match mode {
            SinkMode::Create if exists => return Err(StoreError::AlreadyExists(self.uri.clone())),
            SinkMode::Create => WriteMode::Create,
            SinkMode::Append => WriteMode::Append,
            SinkMode::Overwrite => WriteMode::Overwrite,
            SinkMode::Upsert => {
                return Err(StoreError::Invalid(
                    "an upsert is a merge, not a plain write: commit it with `upsert`".into(),
                ));
            }
        };
        let schema = source.arrow_schema();
        let params = self.write_params(write_mode, record);
        let builder = InsertBuilder::new(self.uri.as_str()).with_params(&params);
        let ds = if exists {
            builder
                .execute_stream(source)
                .await
                .map_err(lance_err(&self.uri))?
        } else {
            // Lance looks for the dataset again: with another writer's create in between, a strict
            // create fails here, and an append or overwrite goes on that writer's dataset.
            let tx = match builder.execute_uncommitted_stream(source).await {
                Err(lance::Error::DatasetAlreadyExists { .. }) => {
                    return Err(StoreError::AlreadyExists(self.uri.clone()));
                }
                written => written.map_err(lance_err(&self.uri))?,
            };
            self.commit_written(tx, &schema, mode).await?
        };
        let rows_total = ds.count_rows(None).await.map_err(lance_err(&self.uri))?;
        let version = ds.version().version;
        info!(uri = %self.uri, version, rows_total, "committed");
        Ok(CommitSummary {
            version,
            rows_total,
        })
    }

    /// Commits files written for a dataset that did not exist when the write began.
    async fn commit_written(
        &self,
        tx: Transaction,
        schema: &Schema,
        mode: SinkMode,
    ) -> Result<Dataset> {
        if tx.read_version == 0 {
            return self
                .create_or_append(tx, schema, mode == SinkMode::Create)
                .await;
        }
        let ds = self.open().await?;
        if mode == SinkMode::Append {
            self.check_appendable(&ds, schema)?;
        }
        CommitBuilder::new(Arc::new(ds))
            .execute(tx)
            .await
            .map_err(lance_err(&self.uri))
    }

    /// Appends `batch` as one commit that records `record`, on top of `base` (the caller's latest view;
    /// `None` when there was no dataset). Concurrent appenders all succeed: Lance rebases an append on
    /// versions committed meanwhile. When two writers race to create the dataset, the loser appends.
    /// Rows of another model, dims or schema than the dataset's are refused.
    pub async fn append(
        &self,
        base: Option<Arc<Dataset>>,
        batch: arrow_array::RecordBatch,
        record: &CommitRecord,
    ) -> Result<Dataset> {
        let base = match base {
            Some(ds) => Some(ds),
            None => self.open_if_exists().await?.map(Arc::new),
        };
        let append = |ds: Arc<Dataset>, batch: arrow_array::RecordBatch| {
            let checked = self.check_appendable(&ds, &batch.schema());
            let params = self.write_params(WriteMode::Append, record);
            async move {
                checked?;
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
            .with_params(&self.write_params(WriteMode::Create, record))
            .execute_uncommitted(vec![batch.clone()])
            .await;
        match created {
            Ok(tx) => self.create_or_append(tx, &batch.schema(), false).await,
            // Created by another writer since we looked.
            Err(lance::Error::DatasetAlreadyExists { .. }) => {
                append(Arc::new(self.open().await?), batch).await
            }
            Err(e) => Err(lance_err(&self.uri)(e)),
        }
    }

    pub(crate) fn write_params(&self, mode: WriteMode, record: &CommitRecord) -> WriteParams {
        WriteParams {
            mode,
            store_params: self.store_params(),
            transaction_properties: Some(Arc::new(record.to_properties())),
            ..WriteParams::default()
        }
    }

    /// Commits a create transaction (files already written) strictly. A plain commit is not safe: if
    /// another writer created the dataset while this one wrote its files, Lance would commit this
    /// Create as an Overwrite on top, dropping the other writer's rows. Strictly, the loser fails;
    /// unless `exclusive`, its files are then committed as an Append on the dataset the winner made,
    /// after the same model, dims and schema checks as any append (its rows are of `schema`).
    pub(crate) async fn create_or_append(
        &self,
        tx: Transaction,
        schema: &Schema,
        exclusive: bool,
    ) -> Result<Dataset> {
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
        if self.created_by(&ds, &tx).await? {
            // Our own create landed although the call reported an error (a lost reply, a timeout):
            // done, and its files must not be appended a second time.
            info!(uri = %self.uri, "the dataset was created by this very commit: nothing to retry");
            return Ok(ds);
        }
        if exclusive {
            return Err(StoreError::AlreadyExists(self.uri.clone()));
        }
        self.check_appendable(&ds, schema)?;
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

impl DatasetLocation {
    /// Whether version 1 of `ds` is the commit of `tx` (transactions carry a unique id).
    async fn created_by(&self, ds: &Dataset, tx: &Transaction) -> Result<bool> {
        let first = ds
            .read_transaction_by_version(1)
            .await
            .map_err(lance_err(&self.uri))?;
        Ok(first.is_some_and(|t| t.uuid == tx.uuid))
    }
}

/// What every version's commit holds, oldest first, from the newest recovery commit on (it holds
/// everything before it; versions without a transaction file or properties are skipped).
pub async fn commit_history(ds: &Dataset) -> Result<Vec<(u64, CommitRecord)>> {
    let from = crate::cleanup::recovery_version(ds).unwrap_or(0);
    let versions = ds.versions().await.map_err(lance_err(ds.uri()))?;
    let mut out = Vec::with_capacity(versions.len());
    for v in versions.into_iter().filter(|v| v.version >= from) {
        let tx = ds
            .read_transaction_by_version(v.version)
            .await
            .map_err(lance_err(ds.uri()))?;
        if let Some(props) = tx.and_then(|t| t.transaction_properties) {
            out.push((v.version, CommitRecord::from_properties(&props)?));
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

    /// A writer's create at `loc`, files written and not committed (what `commit` holds before its
    /// strict commit).
    async fn uncommitted_create(loc: &DatasetLocation, rows: RecordBatch) -> Transaction {
        let params = WriteParams {
            mode: WriteMode::Create,
            ..WriteParams::default()
        };
        InsertBuilder::new(loc.uri.as_str())
            .with_params(&params)
            .execute_uncommitted(vec![rows])
            .await
            .unwrap()
    }

    /// The race `append` guards against: writer A has written its files for a Create when writer B
    /// creates the dataset. A's strict commit must fail (not overwrite B's rows), and `append` then
    /// lands A's rows on top of B's.
    #[tokio::test]
    async fn a_create_that_loses_the_race_fails_instead_of_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let a = uncommitted_create(&loc, batch(&[1, 2])).await;
        let a_again = uncommitted_create(&loc, batch(&[1, 2])).await;
        let none = CommitRecord::default();
        loc.append(None, batch(&[3]), &none).await.unwrap(); // B wins
        let strict = CommitBuilder::new(loc.uri.as_str())
            .with_max_retries(0)
            .execute(a)
            .await;
        assert!(strict.is_err(), "the losing create was committed");
        // What `append` does with the loser's files: commit them as an Append on the winner's dataset.
        let ds = loc
            .create_or_append(a_again, &batch(&[]).schema(), false)
            .await
            .unwrap();
        assert_eq!(
            ds.count_rows(None).await.unwrap(),
            3,
            "rows of both writers"
        );
        assert_eq!(ds.version().version, 2);
    }

    /// Sixteen `--shard` runs finishing at the same moment, each appending its rows as one commit
    /// (`commit`, the file runner's): every one lands, Lance rebasing each append over those that
    /// landed first, and none fails for having lost a race.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sixteen_shard_commits_at_the_same_moment_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        loc.append(None, batch(&[-1]), &CommitRecord::default())
            .await
            .unwrap();
        let start = Arc::new(tokio::sync::Barrier::new(16));
        let mut shards = Vec::new();
        for shard in 0..16 {
            let (loc, start) = (loc.clone(), start.clone());
            shards.push(tokio::spawn(async move {
                let rows: Vec<i32> = (0..100).map(|r| shard * 100 + r).collect();
                let b = batch(&rows);
                let reader: Box<dyn arrow_array::RecordBatchReader + Send> = Box::new(
                    arrow_array::RecordBatchIterator::new(vec![Ok(b.clone())], b.schema()),
                );
                start.wait().await;
                loc.commit(SinkMode::Append, reader, &CommitRecord::default())
                    .await
            }));
        }
        for s in shards {
            s.await.unwrap().expect("a shard's append failed");
        }
        let ds = loc.open().await.unwrap();
        assert_eq!(ds.count_rows(None).await.unwrap(), 1 + 16 * 100);
        assert_eq!(ds.version().version, 17, "one commit per shard");
    }

    /// Two pipelines with different models race to create one new URI: the loser's files must not be
    /// appended to the winner's dataset (a silent mix of models); it fails with the model mismatch.
    #[tokio::test]
    async fn the_create_race_loser_is_checked_like_any_append() {
        use crate::schema::embedded_dataset;
        use lexembed_encoder::Dim;
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let rows = |model: &str| {
            let by = crate::schema::WrittenBy::new(model, &[Dim(2)], Default::default());
            let schema = embedded_dataset(&by, &[]).unwrap();
            let list = arrow_array::FixedSizeListArray::try_new(
                Arc::new(Field::new("item", DataType::Float32, true)),
                2,
                Arc::new(arrow_array::Float32Array::from(vec![0.6, 0.8])),
                None,
            )
            .unwrap();
            RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(arrow_array::StringArray::from(vec![model])),
                    Arc::new(arrow_array::StringArray::from(vec!["t"])),
                    Arc::new(list),
                ],
            )
            .unwrap()
        };
        let m1 = rows("m1");
        let a = uncommitted_create(&loc, m1.clone()).await;
        let none = CommitRecord::default();
        loc.append(None, rows("m2"), &none).await.unwrap(); // m2 wins
        let lost = loc.create_or_append(a, &m1.schema(), false).await;
        assert!(
            matches!(lost, Err(StoreError::ModelMismatch { .. })),
            "{lost:?}"
        );
        let ds = loc.open().await.unwrap();
        assert_eq!(
            ds.count_rows(None).await.unwrap(),
            1,
            "only the winner's row"
        );
        // The same through `append`, which finds the dataset already there.
        let again = loc.append(None, m1, &none).await;
        assert!(
            matches!(again, Err(StoreError::ModelMismatch { .. })),
            "{again:?}"
        );
    }

    #[test]
    fn debug_shows_no_credentials() {
        let mut loc = DatasetLocation::new("s3://b/d.lance");
        loc.storage_options
            .insert("aws_secret_access_key".into(), "hunter2-secret".into());
        let shown = format!("{loc:?}");
        assert!(
            shown.contains("aws_secret_access_key") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    /// A create whose commit landed but whose call failed (a lost reply, a timeout) is retried: the
    /// retry must recognise its own commit, not append the same files again (nor call the dataset
    /// someone else's).
    #[tokio::test]
    async fn a_retried_create_that_had_landed_is_not_committed_twice() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let tx = uncommitted_create(&loc, batch(&[1, 2])).await;
        // The commit lands; the caller never hears of it.
        CommitBuilder::new(loc.uri.as_str())
            .execute(tx.clone())
            .await
            .unwrap();
        let schema = batch(&[]).schema();
        for exclusive in [false, true] {
            let ds = loc
                .create_or_append(tx.clone(), &schema, exclusive)
                .await
                .unwrap();
            assert_eq!(
                ds.count_rows(None).await.unwrap(),
                2,
                "exclusive: {exclusive}"
            );
            assert_eq!(ds.version().version, 1);
        }
    }
}
