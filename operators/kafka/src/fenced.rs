//! Fenced commits: a batch keeps only the rows that are still this replica's to commit, and they land
//! on exactly the Lance version that decided so.
//!
//! The fence drops rows of partitions this replica no longer owns and rows at offsets another replica
//! has committed (Lance records every commit's offsets). A decision read from version `v` holds only
//! while `v` is the latest, so the commit is conditional on it: when another commit landed first (a
//! replica that took these partitions over while this one was paused, or simply a busy group), the
//! offsets are re-read, the batch re-fenced and the commit retried. A replica that lost its partitions
//! therefore never lands rows their new owner committed, however long it was stalled. With upserts the
//! commit is a merge-insert (rows replace their id's row, deletions remove ids), fenced the same way.

use arrow_schema::SchemaRef;
use lance::Dataset;
use lexembed_lance::{CommitRecord, Conditional, DatasetLocation, PendingAppend};
use tracing::{debug, warn};

use crate::batch::ClosedBatch;
use crate::error::{KafkaError, Result};
use crate::offsets::{LanceOffsets, Partition};

/// Commit attempts before giving up: each failed attempt means another commit landed meanwhile, so
/// this many in a row is a group committing far faster than this replica can (the error says so).
const MAX_ATTEMPTS: usize = 64;

/// How a batch's changes land.
#[derive(Debug, Clone)]
pub enum BatchWrite {
    /// Rows appended.
    Append,
    /// Rows (of this embedded schema) replace their id's row, deletions remove ids.
    Upsert(SchemaRef),
}

/// What a fenced commit did.
#[derive(Debug, Default)]
pub struct FencedCommit {
    /// The version committed; `None` when the fence left no row to commit.
    pub version: Option<u64>,
    /// Rows (and dead letters) the re-fences dropped.
    pub dropped: usize,
    /// Attempts superseded by another commit.
    pub conflicts: usize,
}

/// Drops what is not this replica's to commit: partitions `owned` refuses, and offsets below where
/// Lance says the partition resumes. Returns how many rows and dead letters were dropped.
pub fn fence(
    offsets: &LanceOffsets,
    closed: &mut ClosedBatch,
    owned: &impl Fn(&Partition) -> bool,
) -> Result<usize> {
    let dropped =
        closed.retain(|p, o| owned(p) && offsets.next_offset(p).is_none_or(|next| o >= next))?;
    if dropped > 0 {
        warn!(
            dropped,
            "dropped rows committed elsewhere or no longer owned"
        );
    }
    Ok(dropped)
}

/// Commits `closed`'s rows (already fenced against `offsets`) as one Lance commit on the version the
/// fence read, re-reading and re-fencing whenever another commit lands first. `record` describes the
/// commit from the offsets known at the attempt (its checkpoint folds them in).
pub async fn commit_fenced(
    location: &DatasetLocation,
    write: &BatchWrite,
    offsets: &mut LanceOffsets,
    closed: &mut ClosedBatch,
    owned: &impl Fn(&Partition) -> bool,
    record: impl Fn(&LanceOffsets, &ClosedBatch) -> CommitRecord,
) -> Result<FencedCommit> {
    let mut done = FencedCommit::default();
    let mut pending = PendingAppend::new(closed.docs.clone());
    while closed.has_changes() {
        if done.conflicts >= MAX_ATTEMPTS {
            return Err(KafkaError::Runtime(format!(
                "{}: {MAX_ATTEMPTS} commits in a row were superseded by other commits; \
                 the dataset is committed to faster than this replica can fence (fewer replicas, \
                 or larger batches)",
                location.uri
            )));
        }
        let attempt = record(offsets, closed);
        let landed = match write {
            BatchWrite::Append => {
                location
                    .append_if_latest(offsets.dataset(), &mut pending, &attempt)
                    .await?
            }
            BatchWrite::Upsert(schema) => {
                let changes = closed.changes(schema)?;
                location
                    .upsert_if_latest(offsets.dataset(), changes, &attempt)
                    .await?
            }
        };
        match landed {
            Conditional::Committed(ds) => {
                done.version = Some(committed(offsets, *ds).await?);
                return Ok(done);
            }
            Conditional::Superseded => {
                done.conflicts += 1;
                offsets.refresh().await?;
                let dropped = fence(offsets, closed, owned)?;
                debug!(dropped, "another commit landed first: re-fenced");
                if dropped > 0 {
                    done.dropped += dropped;
                    pending.replace_rows(closed.docs.clone());
                }
            }
        }
    }
    Ok(done)
}

async fn committed(offsets: &mut LanceOffsets, ds: Dataset) -> Result<u64> {
    let version = ds.version().version;
    offsets.committed(ds).await?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchLimits, MicroBatch};
    use lexembed_lance::KafkaCommit;
    use lexembed_pipeline::source::rows::Doc;
    use std::time::Duration;

    fn batch(p: &Partition, offsets: std::ops::Range<i64>) -> ClosedBatch {
        let y = "name: k\nsource:\n  kind: kafka\n  kafka: {brokers: b, topics: [t], group_id: g}\nsink: {uri: o, mode: append}\n";
        let spec = lexembed_pipeline::spec::parse(y, std::path::Path::new("k.yaml"))
            .unwrap()
            .source;
        let schema = lexembed_lance::schema::documents(&[]).unwrap();
        let limits = BatchLimits {
            rows: 1 << 20,
            bytes: 1 << 30,
            linger: Duration::from_secs(60),
        };
        let mut b = MicroBatch::new(schema, &spec, limits);
        for o in offsets {
            let doc = Doc {
                id: format!("{}-{o}", p.partition),
                text: format!("text {o}"),
                metadata: vec![],
            };
            b.push_doc(p, o, None, &doc);
        }
        b.close(0).unwrap()
    }

    fn record(offsets: &LanceOffsets, closed: &ClosedBatch) -> CommitRecord {
        CommitRecord {
            kafka: Some(KafkaCommit {
                group: "g".into(),
                ranges: closed.ranges.clone(),
                checkpoint: Some(offsets.checkpoint_with(&closed.ranges)),
            }),
            ..CommitRecord::default()
        }
    }

    async fn ids(location: &DatasetLocation) -> Vec<String> {
        use futures::TryStreamExt;
        let ds = location.open().await.unwrap();
        let batches: Vec<arrow_array::RecordBatch> = ds
            .scan()
            .project(&["id"])
            .unwrap()
            .try_into_stream()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut ids: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let col = b.column(0).as_any();
                let a = col.downcast_ref::<arrow_array::StringArray>().unwrap();
                a.iter().map(|s| s.unwrap().to_string()).collect::<Vec<_>>()
            })
            .collect();
        ids.sort();
        ids
    }

    /// The broker-free race of two replicas on one partition: both fence against the same version
    /// (the old owner stalled, the new one read the same offsets); the first commit lands, the second
    /// is superseded, re-fences, and lands only what the first did not cover.
    #[tokio::test]
    async fn two_writers_fencing_one_partition_land_each_offset_once() {
        let dir = tempfile::tempdir().unwrap();
        let location = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let p = Partition::new("t", 0);
        let owned = |_: &Partition| true;
        // A first commit, so both writers start from a dataset and an offset.
        let mut seed = LanceOffsets::new(location.clone(), "g");
        let mut first = batch(&p, 0..4);
        commit_fenced(
            &location,
            &BatchWrite::Append,
            &mut seed,
            &mut first,
            &owned,
            record,
        )
        .await
        .unwrap();
        let (mut a_offsets, mut b_offsets) = (
            LanceOffsets::new(location.clone(), "g"),
            LanceOffsets::new(location.clone(), "g"),
        );
        let (mut a, mut b) = (batch(&p, 4..10), batch(&p, 4..12));
        for (offsets, closed) in [(&mut a_offsets, &mut a), (&mut b_offsets, &mut b)] {
            offsets.refresh().await.unwrap();
            assert_eq!(fence(offsets, closed, &owned).unwrap(), 0);
        }
        let landed_a = commit_fenced(
            &location,
            &BatchWrite::Append,
            &mut a_offsets,
            &mut a,
            &owned,
            record,
        )
        .await
        .unwrap();
        assert_eq!((landed_a.version, landed_a.conflicts), (Some(2), 0));
        let landed_b = commit_fenced(
            &location,
            &BatchWrite::Append,
            &mut b_offsets,
            &mut b,
            &owned,
            record,
        )
        .await
        .unwrap();
        assert_eq!(landed_b.conflicts, 1, "{landed_b:?}");
        assert_eq!(landed_b.dropped, 6, "offsets 4..10 were a's");
        assert_eq!(landed_b.version, Some(3));
        let want: Vec<String> = {
            let mut v: Vec<String> = (0..12).map(|o| format!("0-{o}")).collect();
            v.sort();
            v
        };
        assert_eq!(ids(&location).await, want, "every offset exactly once");
        let mut fresh = LanceOffsets::new(location.clone(), "g");
        fresh.refresh().await.unwrap();
        assert_eq!(fresh.next_offset(&p), Some(12));
    }

    /// A writer whose every row another replica committed meanwhile lands nothing at all.
    #[tokio::test]
    async fn a_stalled_writer_whose_rows_were_taken_over_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let location = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let p = Partition::new("t", 3);
        let owned = |_: &Partition| true;
        let mut stalled = LanceOffsets::new(location.clone(), "g");
        let mut stale = batch(&p, 0..5);
        stalled.refresh().await.unwrap(); // no dataset yet: the stalled writer would create it
        let mut other = LanceOffsets::new(location.clone(), "g");
        let mut taken = batch(&p, 0..8);
        commit_fenced(
            &location,
            &BatchWrite::Append,
            &mut other,
            &mut taken,
            &owned,
            record,
        )
        .await
        .unwrap();
        let landed = commit_fenced(
            &location,
            &BatchWrite::Append,
            &mut stalled,
            &mut stale,
            &owned,
            record,
        )
        .await
        .unwrap();
        assert_eq!(landed.version, None, "{landed:?}");
        assert_eq!(landed.dropped, 5);
        assert_eq!(ids(&location).await.len(), 8);
    }

    /// Recovery after maintenance: commits, a compaction and an index build on top (not commits of
    /// the group), then a cleanup of every old version. A cold start finds every partition's offset
    /// and reads one commit, not the history (which is gone).
    #[tokio::test]
    async fn offsets_survive_compaction_and_a_cleanup_of_every_old_version() {
        let dir = tempfile::tempdir().unwrap();
        let location = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let (p0, p1) = (Partition::new("t", 0), Partition::new("t", 1));
        let owned = |_: &Partition| true;
        let mut offsets = LanceOffsets::new(location.clone(), "g");
        for (p, range) in [(&p0, 0..3), (&p1, 0..2), (&p0, 3..6), (&p1, 2..9)] {
            let mut closed = batch(p, range);
            offsets.refresh().await.unwrap();
            commit_fenced(
                &location,
                &BatchWrite::Append,
                &mut offsets,
                &mut closed,
                &owned,
                record,
            )
            .await
            .unwrap();
        }
        let mut ds = location.open().await.unwrap();
        lexembed_lance::compact(&mut ds).await.unwrap();
        let done = lexembed_lance::cleanup(&location, None).await.unwrap();
        assert!(done.versions_removed >= 5, "{done:?}");
        let mut cold = LanceOffsets::new(location.clone(), "g");
        cold.refresh().await.unwrap();
        assert_eq!(
            (cold.next_offset(&p0), cold.next_offset(&p1)),
            (Some(6), Some(9))
        );
        assert_eq!(
            cold.commits_read(),
            1,
            "recovery read more than the recovery commit"
        );
        // And a commit after the cleanup is found on top of it.
        let mut closed = batch(&p0, 6..8);
        commit_fenced(
            &location,
            &BatchWrite::Append,
            &mut cold,
            &mut closed,
            &owned,
            record,
        )
        .await
        .unwrap();
        let mut again = LanceOffsets::new(location.clone(), "g");
        again.refresh().await.unwrap();
        assert_eq!(
            (again.next_offset(&p0), again.next_offset(&p1)),
            (Some(8), Some(9))
        );
        assert!(again.commits_read() <= 2, "{}", again.commits_read());
    }
}
