//! The operator's writer: embedded micro-batches from the encoder stage, gathered in order and
//! committed together when the commit policy says (`commit_policy`: an adaptive interval, a row
//! bound). For each gather: its data files written first, then under the commit gate, fence (drop rows
//! of partitions revoked meanwhile and offsets another replica committed, read from Lance), deliver its
//! dead letters, append its rows as one Lance commit that records the offsets it covers and lands only
//! on the version the fence read (`fenced`), then commit those offsets to Kafka for lag tools.

use std::time::Instant;

use lexembed_encoder::{EncodeStage, Next, Staged};
use lexembed_lance::{CommitRecord, KafkaCommit};
use lexembed_pipeline::with_vectors;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::warn;

use crate::batch::ClosedBatch;
use crate::commit_policy::{CommitPolicy, Gatherer, RetryPace};
use crate::error::Result;
use crate::fenced::{FencedCommit, commit_fenced, prepare, refence};
use crate::metrics::{BadRecordFate, Count};
use crate::offsets::{LanceOffsets, Partition};
use crate::operator::Operator;

/// Test hook (feature `test-hooks` only): abort the process right after the Nth Lance commit, before
/// its Kafka offset commit.
#[cfg(feature = "test-hooks")]
pub const CRASH_AFTER_COMMITS_ENV: &str = "LEXEMBED_TEST_CRASH_AFTER_LANCE_COMMITS";

/// Test hook (feature `test-hooks` only): `N:SECONDS` stalls the writer for SECONDS after fencing its
/// Nth commit, under the commit gate, as a long GC or VM pause would.
#[cfg(feature = "test-hooks")]
pub const PAUSE_BEFORE_COMMIT_ENV: &str = "LEXEMBED_TEST_PAUSE_BEFORE_LANCE_COMMIT";

/// The pause `PAUSE_BEFORE_COMMIT_ENV` asks for: before which commit (1-based), and for how long.
#[cfg(feature = "test-hooks")]
pub(crate) fn pause_from_env() -> Option<(u64, std::time::Duration)> {
    let v = std::env::var(PAUSE_BEFORE_COMMIT_ENV).ok()?;
    let (n, secs) = v.split_once(':')?;
    Some((
        n.parse().ok()?,
        std::time::Duration::from_secs_f64(secs.parse().ok()?),
    ))
}

impl Operator<'_> {
    /// Commits every batch the stage yields, in order, gathered by the commit policy (one commit per
    /// interval); stops at the first error. What is gathered when the stage ends is committed.
    pub(crate) fn write_all(&self, mut stage: EncodeStage<ClosedBatch>) -> Result<()> {
        let mut gathered = Gatherer::new(CommitPolicy::from_spec(self.kafka));
        let mut model_seconds = self.model.encoder.stats().model_seconds();
        let mut encoder_seconds = 0.0;
        loop {
            match stage.next_within(gathered.wait()) {
                Next::Ready(staged) => {
                    let closed = self.join_vectors(staged?)?;
                    let now = self.model.encoder.stats().model_seconds();
                    encoder_seconds += now - model_seconds;
                    model_seconds = now;
                    if !gathered.accepts(&closed) {
                        self.flush(&mut gathered, &mut encoder_seconds)?;
                    }
                    gathered.push(closed);
                }
                Next::Waiting => {}
                Next::Ended => break,
            }
            self.metrics.buffered(gathered.rows(), gathered.interval());
            if gathered.is_due() {
                self.flush(&mut gathered, &mut encoder_seconds)?;
            }
        }
        if !gathered.is_empty() {
            self.flush(&mut gathered, &mut encoder_seconds)?;
        }
        Ok(())
    }

    /// The batch with its documents replaced by the embedded rows (documents plus one vector column
    /// per dim), so the fence filters rows and vectors together.
    fn join_vectors(&self, staged: Staged<ClosedBatch>) -> Result<ClosedBatch> {
        let mut closed = staged.item;
        // No vectors: no rows (a batch of dead letters only), so nothing to append.
        let Some(vectors) = staged.vectors else {
            return Ok(closed);
        };
        closed.docs = with_vectors(&self.schema, &closed.docs, vectors?)?;
        self.metrics.add(Count::Embedded, closed.docs.num_rows());
        Ok(closed)
    }

    /// Commits everything gathered as one batch, and tells the gatherer how contended it was.
    fn flush(&self, gathered: &mut Gatherer, encoder_seconds: &mut f64) -> Result<()> {
        let Some(closed) = ClosedBatch::concat(gathered.take())? else {
            return Ok(());
        };
        let retry = gathered.policy().retry;
        let done = self.commit(closed, retry, std::mem::take(encoder_seconds))?;
        gathered.landed(&done);
        self.metrics.buffered(gathered.rows(), gathered.interval());
        Ok(())
    }

    /// Data files, then under the commit gate: fence, dead letters, one Lance commit on the version
    /// the fence read; then the Kafka offsets. Returns what the Lance commit did (nothing, when the
    /// fence left no change to commit).
    fn commit(
        &self,
        mut closed: ClosedBatch,
        retry: RetryPace,
        encoder_seconds: f64,
    ) -> Result<FencedCommit> {
        let started = Instant::now();
        // The rows' files are written before the gate and the fence: the conditional commit is then
        // a manifest step only, and a re-fence that keeps every row commits these same files.
        let base = self.shared.offsets().dataset();
        let mut pending = self
            .rt
            .block_on(prepare(&self.location, &self.write, base, &closed))?;
        let gate = self.shared.commit_gate();
        // Rows of partitions revoked since the batch closed are stale even if the partition came back
        // (it was re-read from its Lance offset).
        let shared = &self.shared;
        let generation = closed.generation;
        let owned = |p: &Partition| shared.owns(p) && !shared.revoked_since(p, generation);
        let mut offsets = shared.offsets();
        let dropped = self
            .rt
            .block_on(refence(&mut offsets, &mut closed, &mut pending, &owned))?;
        self.metrics.add(Count::DroppedNotOwned, dropped);
        if closed.is_empty() {
            return Ok(FencedCommit::default());
        }
        let fate = match &self.dead_letters {
            Some(sink) => {
                sink.deliver(&closed.dead)?;
                BadRecordFate::DeadLettered
            }
            None => BadRecordFate::Skipped,
        };
        for dead in &closed.dead {
            self.metrics.bad_record(dead.kind, fate);
        }
        let mut landed = FencedCommit::default();
        // Nothing to commit when every record was dead-lettered: the offsets then go to Kafka only (a
        // restart resumes there when Lance holds no offset of the partition).
        if closed.has_changes() {
            #[cfg(feature = "test-hooks")]
            self.pause_hook();
            let done = self.rt.block_on(commit_fenced(
                &self.location,
                &self.write,
                retry,
                &mut offsets,
                &mut closed,
                pending,
                &owned,
                |offsets, closed| self.commit_record(offsets, closed),
            ))?;
            self.metrics.add(Count::DroppedNotOwned, done.dropped);
            self.metrics.add(Count::CommitConflicts, done.conflicts);
            if let Some(version) = done.version {
                let superseded = done.conflicts;
                let n = closed.docs.num_rows();
                self.metrics.add(Count::Written, n);
                self.metrics.add(Count::Deleted, closed.deleted.len());
                self.metrics.add(Count::Commits, 1);
                for (p, &(_, next)) in &closed.ranges {
                    self.metrics.committed_offset(p, next);
                }
                tracing::debug!(rows = n, version, superseded, "committed");
                #[cfg(feature = "test-hooks")]
                self.crash_hook();
            }
            landed = done;
        }
        drop(offsets);
        drop(gate);
        self.commit_kafka(&closed);
        let lag = closed.oldest_timestamp_ms.map(|t| now_ms() - t);
        let commit_seconds = started.elapsed().as_secs_f64();
        self.metrics.observe_commit(commit_seconds);
        self.metrics
            .observe_batch(commit_seconds + encoder_seconds, encoder_seconds, lag);
        self.metrics.batch_done();
        Ok(landed)
    }

    fn commit_record(&self, offsets: &LanceOffsets, closed: &ClosedBatch) -> CommitRecord {
        CommitRecord {
            pipeline: Some(self.loaded.spec.name.clone()),
            written_by: Some(self.model.written_by.clone()),
            kafka: Some(KafkaCommit {
                group: self.kafka.group_id.clone(),
                ranges: closed.ranges.clone(),
                checkpoint: Some(offsets.checkpoint_with(&closed.ranges)),
            }),
            ..CommitRecord::default()
        }
    }

    /// Commits the batch's next offsets to the group (for lag tools, and where a partition without a
    /// Lance offset resumes; Lance stays the source of truth, so a failure here is only logged).
    fn commit_kafka(&self, closed: &ClosedBatch) {
        let mut tpl = TopicPartitionList::new();
        for (p, &(_, next)) in &closed.ranges {
            if let Err(e) = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(next)) {
                warn!(partition = %p, error = %e, "offset not added to the Kafka commit");
            }
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            warn!(error = %e, "Kafka offset commit failed (Lance holds the offsets; lag tools may lag)");
        }
    }

    /// The test-only stall between the fence and the Lance commit.
    #[cfg(feature = "test-hooks")]
    fn pause_hook(&self) {
        if let Some((n, pause)) = self.pause_before
            && self.metrics.get(Count::Commits) + 1 == n
        {
            warn!(
                seconds = pause.as_secs_f64(),
                "{PAUSE_BEFORE_COMMIT_ENV}: stalling before the commit"
            );
            std::thread::sleep(pause);
        }
    }

    /// The test-only crash between the Lance and the Kafka commit.
    #[cfg(feature = "test-hooks")]
    fn crash_hook(&self) {
        if let Some(limit) = self.crash_after
            && self.metrics.get(Count::Commits) >= limit
        {
            warn!(
                "{CRASH_AFTER_COMMITS_ENV} reached: aborting between the Lance and the Kafka commit"
            );
            std::process::abort();
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
