//! Kafka offsets recorded in Lance: the source of truth for where each partition resumes.
//!
//! Every Lance commit of the operator carries, in its transaction properties, the consumer group and,
//! per topic-partition, the half-open offset range `[start, next)` its rows (and dead letters) cover.
//! `LanceOffsets` folds those properties into "next offset per partition", reading only the versions
//! committed since it last looked, so refreshing on every assignment and before every commit is cheap.
//! Commits also carry a checkpoint of every partition's next offset, so a cold start reads back from
//! the newest version only to the newest checkpoint, not through the whole history; and never below
//! the recovery commit of a `lexembed cleanup`, which holds every group's offsets at its version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use lance::Dataset;
use lexembed_lance::{
    Checkpoint, CommitRecord, DatasetLocation, KafkaCommit, OffsetRanges, recovery_version,
};
use tracing::{debug, info};

use crate::error::{KafkaError, Result};

/// Commit records read at once by a refresh.
const CONCURRENT_READS: usize = 16;

/// A topic-partition (the commit record's type: Lance records offsets per partition).
pub type Partition = lexembed_lance::TopicPartition;

/// Offset ranges `[start, next)` per partition, as one commit records them.
pub type Ranges = OffsetRanges;

/// The next offset per partition that the dataset's commits of one consumer group cover.
pub struct LanceOffsets {
    location: DatasetLocation,
    group: String,
    /// Latest version folded in (0: none yet).
    seen: u64,
    /// Commits read so far (what recovery costs).
    commits_read: u64,
    next: HashMap<Partition, i64>,
    dataset: Option<Arc<Dataset>>,
    /// When the version in `dataset` was asked for: a commit on it races every commit that lands from
    /// then on, so its attempt is timed from here.
    read_at: Option<Instant>,
}

impl LanceOffsets {
    pub fn new(location: DatasetLocation, group: &str) -> Self {
        Self {
            location,
            group: group.to_string(),
            seen: 0,
            commits_read: 0,
            next: HashMap::new(),
            dataset: None,
            read_at: None,
        }
    }

    pub fn location(&self) -> &DatasetLocation {
        &self.location
    }

    /// The latest dataset version known (after `refresh`), if the dataset exists.
    pub fn dataset(&self) -> Option<Arc<Dataset>> {
        self.dataset.clone()
    }

    /// When the latest version known was asked for (the start of the refresh that found it, or the
    /// moment this replica's own commit made it), if any was.
    pub fn read_at(&self) -> Option<Instant> {
        self.read_at
    }

    /// Commits read so far: a cold start reads back only to the newest checkpoint or recovery.
    pub fn commits_read(&self) -> u64 {
        self.commits_read
    }

    /// Where `p` resumes: one past the last offset a commit covers, or `None` if none does.
    pub fn next_offset(&self, p: &Partition) -> Option<i64> {
        self.next.get(p).copied()
    }

    /// Folds in every version committed since the last refresh (by any replica).
    pub async fn refresh(&mut self) -> Result<()> {
        let asked = Instant::now();
        let ds = match &self.dataset {
            Some(ds) => {
                let mut ds = ds.as_ref().clone();
                ds.checkout_latest()
                    .await
                    .map_err(|e| self.err(ds.version().version, e.to_string()))?;
                ds
            }
            None => match self.location.open_if_exists().await? {
                Some(ds) => ds,
                None => return Ok(()),
            },
        };
        self.fold_versions(&ds).await?;
        self.dataset = Some(Arc::new(ds));
        self.read_at = Some(asked);
        Ok(())
    }

    /// Records a commit this replica just made (its dataset handle is the newest view).
    pub async fn committed(&mut self, ds: Dataset) -> Result<()> {
        let made = Instant::now();
        self.fold_versions(&ds).await?;
        self.dataset = Some(Arc::new(ds));
        self.read_at = Some(made);
        Ok(())
    }

    /// Every partition's next offset as known now, with `ranges` (a batch about to be committed) folded
    /// in: the checkpoint that batch's commit carries.
    pub fn checkpoint_with(&self, ranges: &Ranges) -> Checkpoint {
        let mut all: Ranges = self
            .next
            .iter()
            .map(|(p, &n)| (p.clone(), (n, n)))
            .collect();
        for (p, &(s, n)) in ranges {
            let e = all.entry(p.clone()).or_insert((s, n));
            e.1 = e.1.max(n);
        }
        Checkpoint {
            ranges: all,
            at_version: self.seen,
        }
    }

    /// Folds versions (seen, latest], newest first; on a cold start the newest checkpoint ends the walk
    /// at its version. A cleanup's recovery commit (named by the dataset config) holds everything below
    /// it, and the versions below may be gone: the walk never goes under it.
    async fn fold_versions(&mut self, ds: &Dataset) -> Result<()> {
        let latest = ds.version().version;
        let cold = self.seen == 0;
        let mut floor = self.seen;
        let mut reads = 0u64;
        if let Some(rv) = recovery_version(ds).filter(|&rv| rv > floor && rv <= latest) {
            reads += 1;
            if let Some(next) = self
                .record(ds, rv)
                .await?
                .recovery
                .and_then(|mut r| r.offsets.remove(&self.group))
            {
                self.fold(next.into_iter().map(|(p, n)| (p, (n, n))).collect());
            }
            floor = rv;
        }
        if cold {
            // Newest first, one at a time: the newest checkpoint ends the walk.
            let mut v = latest;
            while v > floor {
                reads += 1;
                if let Some(kafka) = self.group_record(ds, v).await? {
                    self.fold(kafka.ranges);
                    if let Some(cp) = kafka.checkpoint {
                        self.fold(cp.ranges);
                        floor = floor.max(cp.at_version);
                    }
                }
                v -= 1;
            }
        } else {
            // Every version since the last look, read concurrently: with many writers a refresh
            // meets one commit per other writer, and on object storage each read is a round trip
            // inside the window in which another commit can supersede this writer's.
            let records: Vec<Option<KafkaCommit>> =
                futures::stream::iter((floor + 1..=latest).map(|v| self.group_record(ds, v)))
                    .buffered(CONCURRENT_READS)
                    .try_collect()
                    .await?;
            reads += records.len() as u64;
            for kafka in records.into_iter().flatten() {
                self.fold(kafka.ranges);
            }
        }
        if cold {
            info!(
                from = floor,
                to = latest,
                commits_read = reads,
                "recovered the offsets recorded in Lance"
            );
        } else {
            debug!(
                from = floor,
                to = latest,
                commits_read = reads,
                "folded Lance commits into offsets"
            );
        }
        self.seen = self.seen.max(latest);
        self.commits_read += reads;
        Ok(())
    }

    fn fold(&mut self, ranges: Ranges) {
        for (p, (_, next)) in ranges {
            let e = self.next.entry(p).or_insert(next);
            *e = (*e).max(next);
        }
    }

    /// Version `v`'s offsets of this group, if its commit holds any.
    async fn group_record(&self, ds: &Dataset, v: u64) -> Result<Option<KafkaCommit>> {
        Ok(self
            .record(ds, v)
            .await?
            .kafka
            .filter(|k| k.group == self.group))
    }

    /// What version `v`'s commit holds (nothing when another writer made it without lexembed's record).
    async fn record(&self, ds: &Dataset, v: u64) -> Result<CommitRecord> {
        let tx = ds
            .read_transaction_by_version(v)
            .await
            .map_err(|e| self.err(v, e.to_string()))?;
        let Some(props) = tx.and_then(|t| t.transaction_properties) else {
            return Ok(CommitRecord::default());
        };
        CommitRecord::from_properties(&props).map_err(|e| self.err(v, e.to_string()))
    }

    fn err(&self, version: u64, message: String) -> KafkaError {
        KafkaError::Offsets {
            uri: self.location.uri.clone(),
            version,
            message,
        }
    }
}
