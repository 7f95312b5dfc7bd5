//! Conditional appends: a commit that lands only on the version its writer read (compare-and-set on
//! the dataset version), for writers whose right to commit was decided from that version.
//!
//! A plain Lance append is rebased over whatever landed since its read version: right for independent
//! writers, wrong for a Kafka replica whose fence ("these offsets are still mine to commit") was read
//! from that version. A replica that was paused past its group's timeouts would then land rows that
//! the replica which took its partitions over had committed meanwhile. Here the commit goes through a
//! commit handler that refuses every version but `read + 1`, so a commit either lands directly on what
//! the writer fenced against or not at all ([`Conditional::Superseded`]): the writer re-reads, re-fences
//! and retries. The rows' files are written once and re-committed as they are when a retry keeps them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::RecordBatch;
use futures::stream::BoxStream;
use lance::Dataset;
use lance::dataset::transaction::{Operation, Transaction};
use lance::dataset::{CommitBuilder, InsertBuilder, WriteMode};
use lance::io::ObjectStore;
use lance::table::format::{IndexMetadata, Manifest};
use lance_table::io::commit::{
    CommitError, CommitHandler, ManifestLocation, ManifestNamingScheme, ManifestWriter,
    PredecessorIdentity, commit_handler_from_url,
};
use object_store::ObjectStore as RawObjectStore;
use object_store::path::Path;
use tracing::debug;

use crate::commit::CommitRecord;
use crate::error::{Result, StoreError, lance_err};
use crate::store::DatasetLocation;

/// What a conditional append did.
#[derive(Debug)]
pub enum Conditional {
    /// The commit landed on the version the writer read; the dataset as committed.
    Committed(Box<Dataset>),
    /// Another commit landed first (or another writer created the dataset): nothing was committed.
    Superseded,
}

/// Rows on their way into a conditional append. The data files are written on the first attempt and
/// kept, so a retry that keeps every row commits the same files again instead of rewriting them.
pub struct PendingAppend {
    rows: RecordBatch,
    /// The first attempt's uncommitted transaction (an Append, or the Overwrite of a create).
    written: Option<Transaction>,
}

impl PendingAppend {
    pub fn new(rows: RecordBatch) -> Self {
        Self {
            rows,
            written: None,
        }
    }

    /// The rows changed (a re-fence dropped some): their files are written again on the next attempt.
    pub fn replace_rows(&mut self, rows: RecordBatch) {
        self.rows = rows;
        self.written = None;
    }

    /// The data files written so far, as fragments to append.
    fn fragments(&self) -> Option<Vec<lance::table::format::Fragment>> {
        match &self.written.as_ref()?.operation {
            Operation::Append { fragments } | Operation::Overwrite { fragments, .. } => {
                Some(fragments.clone())
            }
            _ => None,
        }
    }
}

impl DatasetLocation {
    /// Commits `pending` with `record` only if `base` is still the latest version, or, with no `base`,
    /// only as the dataset's creation. The model, dims and schema are checked as for any append.
    pub async fn append_if_latest(
        &self,
        base: Option<Arc<Dataset>>,
        pending: &mut PendingAppend,
        record: &CommitRecord,
    ) -> Result<Conditional> {
        match base {
            Some(ds) => self.append_on(ds, pending, record).await,
            None => self.create_with(pending, record).await,
        }
    }

    /// Writes `pending`'s data files for an append to `base` (or any later version), unless they are
    /// written already. Called before the fence, this keeps the conditional commit to its manifest
    /// step: the shorter that step, the fewer commits of other writers land inside it.
    pub async fn write_files(&self, base: Arc<Dataset>, pending: &mut PendingAppend) -> Result<()> {
        if pending.fragments().is_some() {
            return Ok(());
        }
        self.check_appendable(&base, &pending.rows.schema())?;
        let tx = InsertBuilder::new(base)
            .with_params(&self.write_params(WriteMode::Append, &CommitRecord::default()))
            .execute_uncommitted(vec![pending.rows.clone()])
            .await
            .map_err(lance_err(&self.uri))?;
        pending.written = Some(tx);
        Ok(())
    }

    async fn append_on(
        &self,
        base: Arc<Dataset>,
        pending: &mut PendingAppend,
        record: &CommitRecord,
    ) -> Result<Conditional> {
        self.check_appendable(&base, &pending.rows.schema())?;
        self.write_files(base.clone(), pending).await?;
        let fragments = pending.fragments().unwrap_or_default();
        let tx = record.stamp(Transaction::new(
            base.version().version,
            Operation::Append { fragments },
            None,
        ));
        Ok(match self.commit_on(base, tx).await? {
            Some(ds) => Conditional::Committed(Box::new(ds)),
            None => Conditional::Superseded,
        })
    }

    /// Commits `tx` as the version right after `base`, or nothing (`None`) when another commit took
    /// that version first.
    pub(crate) async fn commit_on(
        &self,
        base: Arc<Dataset>,
        tx: Transaction,
    ) -> Result<Option<Dataset>> {
        let read = base.version().version;
        let inner = commit_handler_from_url(&self.uri, &self.store_params())
            .await
            .map_err(lance_err(&self.uri))?;
        let handler = Arc::new(ExactVersion::new(inner, read + 1));
        let committed = CommitBuilder::new(base)
            .with_commit_handler(handler.clone())
            .with_max_retries(0)
            .execute(tx)
            .await;
        match committed {
            Ok(ds) => Ok(Some(ds)),
            Err(_) if handler.refused() => {
                debug!(uri = %self.uri, read, "another commit landed first: not committed");
                Ok(None)
            }
            Err(e) => Err(lance_err(&self.uri)(e)),
        }
    }

    /// The dataset does not exist (as the writer last saw it): create it strictly, or step back.
    async fn create_with(
        &self,
        pending: &mut PendingAppend,
        record: &CommitRecord,
    ) -> Result<Conditional> {
        let tx = match pending.written.take() {
            Some(tx) if matches!(tx.operation, Operation::Overwrite { .. }) => tx,
            _ => {
                let written = InsertBuilder::new(self.uri.as_str())
                    .with_params(&self.write_params(WriteMode::Create, record))
                    .execute_uncommitted(vec![pending.rows.clone()])
                    .await;
                match written {
                    Err(lance::Error::DatasetAlreadyExists { .. }) => {
                        return Ok(Conditional::Superseded);
                    }
                    written => written.map_err(lance_err(&self.uri))?,
                }
            }
        };
        let tx = record.stamp(tx);
        pending.written = Some(tx.clone());
        match self
            .create_or_append(tx, &pending.rows.schema(), true)
            .await
        {
            Ok(ds) => Ok(Conditional::Committed(Box::new(ds))),
            Err(StoreError::AlreadyExists(_)) => Ok(Conditional::Superseded),
            Err(e) => Err(e),
        }
    }
}

/// A commit handler that lets only one version through: the one right after the writer's read. Every
/// other method is the dataset's own handler's.
#[derive(Debug)]
struct ExactVersion {
    inner: Arc<dyn CommitHandler>,
    version: u64,
    refused: AtomicBool,
}

impl ExactVersion {
    fn new(inner: Arc<dyn CommitHandler>, version: u64) -> Self {
        Self {
            inner,
            version,
            refused: AtomicBool::new(false),
        }
    }

    /// Whether the commit lost its version: another had landed first (refused here), or another
    /// writer took the very version at the same time (the store's conditional put refused it).
    fn refused(&self) -> bool {
        self.refused.load(Ordering::Acquire)
    }

    fn lost(&self) -> CommitError {
        self.refused.store(true, Ordering::Release);
        CommitError::CommitConflict
    }

    /// Runs the inner handler's `commit` (not started yet: a future does nothing until awaited) only
    /// for the one version let through; a conflict it reports loses the version too.
    async fn guarded<T>(
        &self,
        version: u64,
        commit: impl std::future::Future<Output = std::result::Result<T, CommitError>>,
    ) -> std::result::Result<T, CommitError> {
        if version != self.version {
            return Err(self.lost());
        }
        commit.await.map_err(|e| match e {
            CommitError::CommitConflict => self.lost(),
            other => other,
        })
    }
}

#[async_trait::async_trait]
impl CommitHandler for ExactVersion {
    fn is_version_not_found_definitive(&self) -> bool {
        self.inner.is_version_not_found_definitive()
    }

    fn propagate_commit_error_after_success(&self) -> bool {
        self.inner.propagate_commit_error_after_success()
    }

    async fn resolve_latest_location(
        &self,
        base_path: &Path,
        object_store: &ObjectStore,
    ) -> lance::Result<ManifestLocation> {
        self.inner
            .resolve_latest_location(base_path, object_store)
            .await
    }

    async fn resolve_version_location(
        &self,
        base_path: &Path,
        version: u64,
        object_store: &dyn RawObjectStore,
    ) -> lance::Result<ManifestLocation> {
        self.inner
            .resolve_version_location(base_path, version, object_store)
            .await
    }

    async fn version_exists(
        &self,
        base_path: &Path,
        version: u64,
        object_store: &dyn RawObjectStore,
        naming_scheme: ManifestNamingScheme,
    ) -> lance::Result<bool> {
        self.inner
            .version_exists(base_path, version, object_store, naming_scheme)
            .await
    }

    fn list_detached_manifest_locations<'a>(
        &self,
        base_path: &Path,
        object_store: &'a ObjectStore,
    ) -> BoxStream<'a, lance::Result<ManifestLocation>> {
        self.inner
            .list_detached_manifest_locations(base_path, object_store)
    }

    fn list_manifest_locations<'a>(
        &self,
        base_path: &Path,
        object_store: &'a ObjectStore,
        sorted_descending: bool,
    ) -> BoxStream<'a, lance::Result<ManifestLocation>> {
        self.inner
            .list_manifest_locations(base_path, object_store, sorted_descending)
    }

    fn list_manifest_locations_since<'a>(
        &self,
        base_path: &Path,
        object_store: &'a ObjectStore,
        since_version: u64,
    ) -> BoxStream<'a, lance::Result<ManifestLocation>> {
        self.inner
            .list_manifest_locations_since(base_path, object_store, since_version)
    }

    async fn commit(
        &self,
        manifest: &mut Manifest,
        indices: Option<Vec<IndexMetadata>>,
        base_path: &Path,
        object_store: &ObjectStore,
        manifest_writer: ManifestWriter,
        naming_scheme: ManifestNamingScheme,
        transaction: Option<lance::table::format::Transaction>,
    ) -> std::result::Result<ManifestLocation, CommitError> {
        let version = manifest.version;
        let commit = self.inner.commit(
            manifest,
            indices,
            base_path,
            object_store,
            manifest_writer,
            naming_scheme,
            transaction,
        );
        self.guarded(version, commit).await
    }

    fn supports_predecessor_condition(&self) -> bool {
        self.inner.supports_predecessor_condition()
    }

    async fn resolve_latest_identity(
        &self,
        base_path: &Path,
        object_store: &ObjectStore,
    ) -> lance::Result<Option<PredecessorIdentity>> {
        self.inner
            .resolve_latest_identity(base_path, object_store)
            .await
    }

    async fn resolve_identity(
        &self,
        base_path: &Path,
        object_store: &ObjectStore,
        version: u64,
    ) -> lance::Result<Option<PredecessorIdentity>> {
        self.inner
            .resolve_identity(base_path, object_store, version)
            .await
    }

    async fn commit_after(
        &self,
        manifest: &mut Manifest,
        indices: Option<Vec<IndexMetadata>>,
        base_path: &Path,
        object_store: &ObjectStore,
        manifest_writer: ManifestWriter,
        naming_scheme: ManifestNamingScheme,
        transaction: Option<lance::table::format::Transaction>,
        predecessor: &PredecessorIdentity,
    ) -> std::result::Result<ManifestLocation, CommitError> {
        let version = manifest.version;
        let commit = self.inner.commit_after(
            manifest,
            indices,
            base_path,
            object_store,
            manifest_writer,
            naming_scheme,
            transaction,
            predecessor,
        );
        self.guarded(version, commit).await
    }

    async fn forget_version(
        &self,
        base_path: &Path,
        version: u64,
        identity: &str,
    ) -> lance::Result<()> {
        self.inner
            .forget_version(base_path, version, identity)
            .await
    }

    async fn delete(&self, base_path: &Path) -> lance::Result<()> {
        self.inner.delete(base_path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int32Array;
    use arrow_schema::{DataType, Field, Schema};

    fn batch(values: &[i32]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(values.to_vec()))]).unwrap()
    }

    async fn rows(ds: &Dataset) -> usize {
        ds.count_rows(None).await.unwrap()
    }

    /// Two writers read the same version; the first commit lands, the second is superseded (a plain
    /// append would have landed both); after re-reading, the second lands its same files.
    #[tokio::test]
    async fn a_commit_lands_only_on_the_version_its_writer_read() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let none = CommitRecord::default();
        loc.append(None, batch(&[0]), &none).await.unwrap();
        let read = Arc::new(loc.open().await.unwrap());
        let (mut a, mut b) = (
            PendingAppend::new(batch(&[1, 2])),
            PendingAppend::new(batch(&[3])),
        );
        let first = loc
            .append_if_latest(Some(read.clone()), &mut a, &none)
            .await
            .unwrap();
        assert!(matches!(first, Conditional::Committed(ref ds) if ds.version().version == 2));
        let second = loc
            .append_if_latest(Some(read), &mut b, &none)
            .await
            .unwrap();
        assert!(matches!(second, Conditional::Superseded), "{second:?}");
        assert_eq!(
            rows(&loc.open().await.unwrap()).await,
            3,
            "b landed nothing"
        );
        let files = b.fragments().unwrap();
        let latest = Arc::new(loc.open().await.unwrap());
        let retried = loc
            .append_if_latest(Some(latest), &mut b, &none)
            .await
            .unwrap();
        let Conditional::Committed(ds) = retried else {
            panic!("the retry on the latest version was refused")
        };
        assert_eq!((ds.version().version, rows(&ds).await), (3, 4));
        let committed: Vec<String> = ds
            .get_fragments()
            .iter()
            .flat_map(|f| f.metadata().files.iter().map(|d| d.path.clone()))
            .collect();
        assert!(
            files
                .iter()
                .flat_map(|f| f.files.iter())
                .all(|d| committed.contains(&d.path)),
            "the retry wrote its files again"
        );
    }

    /// Writers racing for the very same version (the store's conditional put decides): one lands, the
    /// others are superseded, none fails (on S3 the losers used to fail with a commit conflict).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writers_racing_for_one_version_are_superseded_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let none = CommitRecord::default();
        loc.append(None, batch(&[0]), &none).await.unwrap();
        let read = Arc::new(loc.open().await.unwrap());
        let mut writers = Vec::new();
        for i in 0..8 {
            let (loc, read) = (loc.clone(), read.clone());
            writers.push(tokio::spawn(async move {
                let mut pending = PendingAppend::new(batch(&[i]));
                loc.append_if_latest(Some(read), &mut pending, &CommitRecord::default())
                    .await
            }));
        }
        let mut landed = 0;
        for w in writers {
            match w.await.unwrap() {
                Ok(Conditional::Committed(_)) => landed += 1,
                Ok(Conditional::Superseded) => {}
                Err(e) => panic!("a writer failed instead of being superseded: {e}"),
            }
        }
        assert_eq!(landed, 1);
        assert_eq!(rows(&loc.open().await.unwrap()).await, 2);
    }

    /// With no dataset seen, the conditional append is a strict create: a writer that lost the create
    /// race is superseded (it must re-fence against the winner's commit), never appended.
    #[tokio::test]
    async fn a_writer_that_saw_no_dataset_only_creates_it() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let none = CommitRecord::default();
        let mut a = PendingAppend::new(batch(&[1, 2]));
        // A writes its files for the create, then B creates the dataset.
        a.written = Some(
            InsertBuilder::new(loc.uri.as_str())
                .with_params(&loc.write_params(WriteMode::Create, &none))
                .execute_uncommitted(vec![batch(&[1, 2])])
                .await
                .unwrap(),
        );
        loc.append(None, batch(&[3]), &none).await.unwrap();
        let lost = loc.append_if_latest(None, &mut a, &none).await.unwrap();
        assert!(matches!(lost, Conditional::Superseded), "{lost:?}");
        // And a writer that starts after B's create is superseded before writing anything.
        let mut c = PendingAppend::new(batch(&[4]));
        let late = loc.append_if_latest(None, &mut c, &none).await.unwrap();
        assert!(matches!(late, Conditional::Superseded), "{late:?}");
        assert_eq!(rows(&loc.open().await.unwrap()).await, 1);
        // A's files then land as an append on B's dataset.
        let latest = Arc::new(loc.open().await.unwrap());
        let landed = loc
            .append_if_latest(Some(latest), &mut a, &none)
            .await
            .unwrap();
        assert!(matches!(landed, Conditional::Committed(ref ds) if ds.version().version == 2));
        assert_eq!(rows(&loc.open().await.unwrap()).await, 3);
    }
}
