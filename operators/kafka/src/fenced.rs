//! Fenced commits: a batch keeps only the rows that are still this replica's to commit, and they land
//! on exactly the Lance version that decided so.
//!
//! The fence drops rows of partitions this replica no longer owns and rows at offsets another replica
//! has committed (Lance records every commit's offsets). A decision read from version `v` holds only
//! while `v` is the latest, so the commit is conditional on it: when another commit landed first (a
//! replica that took these partitions over while this one was paused, or simply a busy group), the
//! offsets are re-read, the batch re-fenced and the commit retried (after the policy's backoff, so that
//! writers that lost together do not retry together). A replica that lost its partitions
//! therefore never lands rows their new owner committed, however long it was stalled. With upserts the
//! commit is a merge-insert (rows replace their id's row, deletions remove ids), fenced the same way.

use std::sync::Arc;
use std::time::Duration;

use arrow_schema::SchemaRef;
use lance::Dataset;
use lexembed_lance::{CommitRecord, Conditional, DatasetLocation, PendingAppend};
use tracing::{debug, warn};

use crate::batch::ClosedBatch;
use crate::commit_policy::RetryPace;
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
    /// How long the attempt that landed held the version open: from reading it to the answer.
    pub attempt: std::time::Duration,
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

/// The rows of `closed` on their way into a commit: for an append, their data files written now
/// (against `base`, the dataset as last seen), before any fence, so that the conditional commit
/// itself is a manifest step only. Upserts and a dataset not created yet write at commit time.
pub async fn prepare(
    location: &DatasetLocation,
    write: &BatchWrite,
    base: Option<Arc<Dataset>>,
    closed: &ClosedBatch,
) -> Result<PendingAppend> {
    let mut pending = PendingAppend::new(closed.docs.clone());
    if let (BatchWrite::Append, Some(base)) = (write, base)
        && closed.docs.num_rows() > 0
    {
        location.write_files(base, &mut pending).await?;
    }
    Ok(pending)
}

/// Reads the commits landed since `offsets` last looked and fences `closed` against them (see
/// [`fence`]); rows dropped are dropped from `pending` too (its files are written again).
pub async fn refence(
    offsets: &mut LanceOffsets,
    closed: &mut ClosedBatch,
    pending: &mut PendingAppend,
    owned: &impl Fn(&Partition) -> bool,
) -> Result<usize> {
    offsets.refresh().await?;
    let dropped = fence(offsets, closed, owned)?;
    if dropped > 0 {
        pending.replace_rows(closed.docs.clone());
    }
    Ok(dropped)
}

/// [`prepare`], [`refence`] and [`commit_fenced`] in a row, for a writer that shares no commit gate
/// (nothing else revokes its partitions meanwhile) and has no dead letters to deliver between the
/// fence and the commit: the operator's commit path as the benchmarks drive it.
pub async fn commit_gathered(
    location: &DatasetLocation,
    write: &BatchWrite,
    retry: RetryPace,
    offsets: &mut LanceOffsets,
    closed: &mut ClosedBatch,
    owned: &impl Fn(&Partition) -> bool,
    record: impl Fn(&LanceOffsets, &ClosedBatch) -> CommitRecord,
) -> Result<FencedCommit> {
    let mut pending = prepare(location, write, offsets.dataset(), closed).await?;
    let dropped = refence(offsets, closed, &mut pending, owned).await?;
    let mut done = commit_fenced(
        location, write, retry, offsets, closed, pending, owned, record,
    )
    .await?;
    done.dropped += dropped;
    Ok(done)
}

/// Commits `closed`'s rows (already fenced against `offsets`) as one Lance commit on the version the
/// fence read, re-reading and re-fencing whenever another commit lands first. `pending` holds the same
/// rows for an append, its data files possibly written already (`DatasetLocation::write_files`), so an
/// attempt only commits a manifest. `record` describes the commit from the offsets known at the
/// attempt (its checkpoint folds them in). A lost attempt waits as `retry` says before the re-read.
#[allow(clippy::too_many_arguments)]
pub async fn commit_fenced(
    location: &DatasetLocation,
    write: &BatchWrite,
    retry: RetryPace,
    offsets: &mut LanceOffsets,
    closed: &mut ClosedBatch,
    mut pending: PendingAppend,
    owned: &impl Fn(&Partition) -> bool,
    record: impl Fn(&LanceOffsets, &ClosedBatch) -> CommitRecord,
) -> Result<FencedCommit> {
    let mut done = FencedCommit::default();
    let mut rng = fastrand::Rng::new();
    while closed.has_changes() {
        if done.conflicts >= MAX_ATTEMPTS {
            return Err(KafkaError::Superseded {
                uri: location.uri.clone(),
                attempts: MAX_ATTEMPTS,
            });
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
                done.attempt = attempt_since_read(offsets);
                done.version = Some(committed(offsets, *ds).await?);
                return Ok(done);
            }
            Conditional::Superseded => {
                done.conflicts += 1;
                let wait = retry.wait(done.conflicts, attempt_since_read(offsets), &mut rng);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
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

/// How long an attempt held the version it commits on open: from the moment the offsets asked for
/// that version (the start of the refresh that found it: every commit landing after that supersedes
/// it) to now. Timed from the fence instead, the refresh's reads were missed, and at 25 ms a request
/// the group's intervals settled at a third of the dataset's true utilisation.
fn attempt_since_read(offsets: &LanceOffsets) -> Duration {
    offsets.read_at().map_or(Duration::ZERO, |t| t.elapsed())
}

async fn committed(offsets: &mut LanceOffsets, ds: Dataset) -> Result<u64> {
    let version = ds.version().version;
    offsets.committed(ds).await?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lexembed_lance::KafkaCommit;

    fn batch(p: &Partition, offsets: std::ops::Range<i64>) -> ClosedBatch {
        crate::batch::fixtures::closed(p, offsets, 0)
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

    /// A fenced append of `closed` by a writer that owns every partition.
    async fn append(
        location: &DatasetLocation,
        offsets: &mut LanceOffsets,
        closed: &mut ClosedBatch,
    ) -> Result<FencedCommit> {
        let pending = PendingAppend::new(closed.docs.clone());
        let owned = |_: &Partition| true;
        commit_fenced(
            location,
            &BatchWrite::Append,
            RetryPace::backoff(),
            offsets,
            closed,
            pending,
            &owned,
            record,
        )
        .await
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
        append(&location, &mut seed, &mut first).await.unwrap();
        let (mut a_offsets, mut b_offsets) = (
            LanceOffsets::new(location.clone(), "g"),
            LanceOffsets::new(location.clone(), "g"),
        );
        let (mut a, mut b) = (batch(&p, 4..10), batch(&p, 4..12));
        for (offsets, closed) in [(&mut a_offsets, &mut a), (&mut b_offsets, &mut b)] {
            offsets.refresh().await.unwrap();
            assert_eq!(fence(offsets, closed, &owned).unwrap(), 0);
        }
        let landed_a = append(&location, &mut a_offsets, &mut a).await.unwrap();
        assert_eq!((landed_a.version, landed_a.conflicts), (Some(2), 0));
        let landed_b = append(&location, &mut b_offsets, &mut b).await.unwrap();
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

    /// Eight writers, one partition each, committing gathered batches to one dataset at once (the
    /// commit policy's adaptive interval, data files written before the fence), with a compaction
    /// running beside them: every offset lands exactly once, each partition's recorded offset is its
    /// end, and the superseded attempts are counted, not failed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn eight_gathering_writers_and_a_compaction_land_every_offset_once() {
        use crate::commit_policy::{CommitPolicy, Gatherer};
        let dir = tempfile::tempdir().unwrap();
        let location = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        // The dataset exists first, as it does once a group has run.
        let mut seed = LanceOffsets::new(location.clone(), "g");
        let mut first = batch(&Partition::new("t", 99), 0..1);
        append(&location, &mut seed, &mut first).await.unwrap();
        let policy = CommitPolicy {
            interval: std::time::Duration::from_millis(20),
            max_interval: std::time::Duration::from_millis(400),
            rows: 10_000,
            retry: RetryPace::backoff(),
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let compactor = {
            let (location, stop) = (location.clone(), stop.clone());
            tokio::spawn(async move {
                let mut runs = 0;
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                    let mut ds = location.open().await.unwrap();
                    lexembed_lance::compact(&mut ds).await.unwrap();
                    runs += 1;
                }
                runs
            })
        };
        let mut writers = Vec::new();
        for w in 0..8 {
            let location = location.clone();
            writers.push(tokio::spawn(async move {
                let p = Partition::new("t", w);
                let owned = |q: &Partition| q == &p;
                let mut offsets = LanceOffsets::new(location.clone(), "g");
                let mut gathered = Gatherer::new(policy);
                let (mut commits, mut superseded) = (0, 0);
                for k in 0..20i64 {
                    gathered.push(batch(&p, k * 25..(k + 1) * 25));
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    if gathered.is_due() || k == 19 {
                        let mut closed = ClosedBatch::concat(gathered.take()).unwrap().unwrap();
                        let done = commit_gathered(
                            &location,
                            &BatchWrite::Append,
                            RetryPace::backoff(),
                            &mut offsets,
                            &mut closed,
                            &owned,
                            record,
                        )
                        .await
                        .unwrap();
                        assert_eq!(done.dropped, 0, "nobody else owns {p}");
                        gathered.landed(&done);
                        commits += 1;
                        superseded += done.conflicts;
                    }
                }
                (commits, superseded)
            }));
        }
        let mut commits = 0;
        for w in writers {
            commits += w.await.unwrap().0;
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        assert!(
            compactor.await.unwrap() >= 1,
            "no compaction ran beside the writers"
        );
        assert!(
            commits < 8 * 20,
            "the writers gathered nothing: {commits} commits"
        );
        let mut want: Vec<String> = (0..8)
            .flat_map(|w| (0..500).map(move |o| format!("{w}-{o}")))
            .chain(["99-0".to_string()])
            .collect();
        want.sort();
        assert_eq!(ids(&location).await, want, "every offset exactly once");
        let mut fresh = LanceOffsets::new(location.clone(), "g");
        fresh.refresh().await.unwrap();
        for w in 0..8 {
            assert_eq!(fresh.next_offset(&Partition::new("t", w)), Some(500));
        }
    }

    /// A writer whose every row another replica committed meanwhile lands nothing at all.
    #[tokio::test]
    async fn a_stalled_writer_whose_rows_were_taken_over_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let location = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        let p = Partition::new("t", 3);
        let mut stalled = LanceOffsets::new(location.clone(), "g");
        let mut stale = batch(&p, 0..5);
        stalled.refresh().await.unwrap(); // no dataset yet: the stalled writer would create it
        let mut other = LanceOffsets::new(location.clone(), "g");
        let mut taken = batch(&p, 0..8);
        append(&location, &mut other, &mut taken).await.unwrap();
        let landed = append(&location, &mut stalled, &mut stale).await.unwrap();
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
        let mut offsets = LanceOffsets::new(location.clone(), "g");
        for (p, range) in [(&p0, 0..3), (&p1, 0..2), (&p0, 3..6), (&p1, 2..9)] {
            let mut closed = batch(p, range);
            offsets.refresh().await.unwrap();
            append(&location, &mut offsets, &mut closed).await.unwrap();
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
        append(&location, &mut cold, &mut closed).await.unwrap();
        let mut again = LanceOffsets::new(location.clone(), "g");
        again.refresh().await.unwrap();
        assert_eq!(
            (again.next_offset(&p0), again.next_offset(&p1)),
            (Some(8), Some(9))
        );
        assert!(again.commits_read() <= 2, "{}", again.commits_read());
    }
}
