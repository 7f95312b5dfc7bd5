//! The operator's metrics and health state. Counts go two ways: to atomics the run's summary and the
//! health endpoints read, and to the `metrics` facade, labelled (`pipeline`; `kind` of a bad record;
//! `topic` and `partition` of lag and offsets), where whatever recorder the binary installed (the
//! Prometheus exporter) collects them. Names and help texts are here and in the README's
//! observability section.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use metrics::{
    Label, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

use crate::offsets::Partition;
use lexembed_pipeline::source::RefusalKind;

/// Upper bounds of `lexembed_batch_seconds` (the binary gives them to the exporter).
pub const BATCH_SECONDS_BUCKETS: [f64; 15] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// What the operator counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Consumed,
    Embedded,
    Written,
    /// Rows deleted (upserts: tombstones and null texts).
    Deleted,
    /// Rows dropped before a commit because another replica had committed them or the partition
    /// was revoked (not lost: their owner writes them).
    DroppedNotOwned,
    Commits,
    /// Commit attempts superseded by another replica's commit (then re-fenced and retried).
    CommitConflicts,
    Rebalances,
    /// Failed connection attempts to a broker (librdkafka reconnects by itself).
    TransportErrors,
    /// Offset commits to the group that failed (Lance holds the offsets).
    OffsetCommitFailures,
}

impl Count {
    const ALL: [Count; 10] = [
        Count::Consumed,
        Count::Embedded,
        Count::Written,
        Count::Deleted,
        Count::DroppedNotOwned,
        Count::Commits,
        Count::CommitConflicts,
        Count::Rebalances,
        Count::TransportErrors,
        Count::OffsetCommitFailures,
    ];

    fn name(self) -> &'static str {
        match self {
            Count::Consumed => "lexembed_messages_consumed_total",
            Count::Embedded => "lexembed_rows_embedded_total",
            Count::Written => "lexembed_rows_written_total",
            Count::Deleted => "lexembed_rows_deleted_total",
            Count::DroppedNotOwned => "lexembed_rows_dropped_not_owned_total",
            Count::Commits => "lexembed_lance_commits_total",
            Count::CommitConflicts => "lexembed_lance_commit_conflicts_total",
            Count::Rebalances => "lexembed_rebalances_total",
            Count::TransportErrors => "lexembed_kafka_transport_errors_total",
            Count::OffsetCommitFailures => "lexembed_kafka_offset_commit_failures_total",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Count::Consumed => "Messages read from Kafka.",
            Count::Embedded => "Rows embedded.",
            Count::Written => "Rows committed to Lance.",
            Count::Deleted => "Rows deleted by upserts (tombstones, null texts).",
            Count::DroppedNotOwned => {
                "Rows dropped before a commit: revoked or committed by another replica."
            }
            Count::Commits => "Lance commits.",
            Count::CommitConflicts => {
                "Commit attempts superseded by another commit (re-fenced, then retried)."
            }
            Count::Rebalances => "Partition assignments and revocations.",
            Count::TransportErrors => {
                "Failed connection attempts to a broker (librdkafka reconnects by itself)."
            }
            Count::OffsetCommitFailures => {
                "Offset commits to the consumer group that failed (Lance holds the offsets; lag tools lag)."
            }
        }
    }
}

/// Where a bad record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRecordFate {
    DeadLettered,
    Skipped,
}

pub struct Metrics {
    pipeline: String,
    counts: [AtomicU64; Count::ALL.len()],
    /// The recorder's counters of `counts`, registered once: `add` runs per message, and a lookup
    /// by name and label (with a label string to allocate) each time would be work on the hot path.
    recorded: [metrics::Counter; Count::ALL.len()],
    /// Bad records by fate (`BadRecordFate as usize`).
    bad: [AtomicU64; 2],
    encoder_us: AtomicU64,
    /// Set once the consumer joined the group (an assignment, even of no partition) and Lance was
    /// reachable; cleared by a rebalance error.
    ready: AtomicBool,
    /// The main loop's last turn (for /healthz).
    heartbeat: Mutex<Instant>,
    /// First message consumed and last batch finished: the busy span, for throughput.
    span: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Metrics {
    /// Metrics of pipeline `pipeline` (a label on every series).
    pub fn new(pipeline: &str) -> Self {
        describe();
        Self {
            pipeline: pipeline.to_string(),
            counts: Default::default(),
            recorded: Count::ALL.map(|c| counter!(c.name(), "pipeline" => pipeline.to_string())),
            bad: Default::default(),
            encoder_us: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            heartbeat: Mutex::new(Instant::now()),
            span: Mutex::new((None, None)),
        }
    }

    pub fn add(&self, what: Count, n: usize) {
        self.counts[what as usize].fetch_add(n as u64, Ordering::Relaxed);
        self.recorded[what as usize].increment(n as u64);
    }

    pub fn get(&self, what: Count) -> u64 {
        self.counts[what as usize].load(Ordering::Relaxed)
    }

    /// A record that could not become a row, by its refusal kind.
    pub fn bad_record(&self, kind: RefusalKind, fate: BadRecordFate) {
        self.bad[fate as usize].fetch_add(1, Ordering::Relaxed);
        let name = match fate {
            BadRecordFate::DeadLettered => "lexembed_messages_dead_lettered_total",
            BadRecordFate::Skipped => "lexembed_messages_skipped_total",
        };
        counter!(name, "pipeline" => self.pipeline.clone(), "kind" => kind.name()).increment(1);
    }

    /// Bad records so far that went `fate`'s way.
    pub fn bad_records(&self, fate: BadRecordFate) -> u64 {
        self.bad[fate as usize].load(Ordering::Relaxed)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
        gauge!("lexembed_ready", "pipeline" => self.pipeline.clone())
            .set(f64::from(u8::from(ready)));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether the consumer's connection to the brokers is up (see `link`).
    pub fn broker_connected(&self, up: bool) {
        gauge!("lexembed_kafka_broker_connected", "pipeline" => self.pipeline.clone())
            .set(f64::from(u8::from(up)));
    }

    /// Messages of `p` not yet committed to Lance, as the broker counts them.
    pub fn partition_lag(&self, p: &Partition, messages: i64) {
        gauge!("lexembed_kafka_partition_lag", self.partition_labels(p))
            .set(messages.max(0) as f64);
    }

    /// The next offset of `p` that Lance holds (the commit's end of the partition's range).
    pub fn committed_offset(&self, p: &Partition, next: i64) {
        gauge!("lexembed_kafka_committed_offset", self.partition_labels(p)).set(next as f64);
    }

    /// A partition this replica gave up: its lag here reads 0 from now on, so that `sum` and `max`
    /// over replicas count the lag once, at the replica that owns the partition.
    pub fn gave_up_partition(&self, p: &Partition) {
        gauge!("lexembed_kafka_partition_lag", self.partition_labels(p)).set(0.0);
    }

    fn partition_labels(&self, p: &Partition) -> Vec<Label> {
        vec![
            Label::new("pipeline", self.pipeline.clone()),
            Label::new("topic", p.topic.clone()),
            Label::new("partition", p.partition.to_string()),
        ]
    }

    pub fn beat(&self) {
        if let Ok(mut h) = self.heartbeat.lock() {
            *h = Instant::now();
        }
    }

    /// Seconds since the main loop last turned.
    pub fn since_heartbeat(&self) -> f64 {
        self.heartbeat
            .lock()
            .map_or(f64::INFINITY, |h| h.elapsed().as_secs_f64())
    }

    pub fn observe_batch(&self, seconds: f64, encoder_seconds: f64, lag_ms: Option<i64>) {
        let pipeline = self.pipeline.clone();
        histogram!("lexembed_batch_seconds", "pipeline" => pipeline.clone()).record(seconds);
        self.encoder_us
            .fetch_add((encoder_seconds * 1e6) as u64, Ordering::Relaxed);
        histogram!("lexembed_encoder_seconds", "pipeline" => pipeline.clone())
            .record(encoder_seconds);
        if let Some(l) = lag_ms {
            gauge!("lexembed_end_to_end_lag_seconds", "pipeline" => pipeline)
                .set(l.max(0) as f64 / 1e3);
        }
    }

    /// Rows embedded and gathered but not yet committed, and the commit interval now (it lengthens
    /// while other replicas' commits supersede this one's).
    pub fn buffered(&self, rows: usize, interval: std::time::Duration) {
        gauge!("lexembed_rows_buffered", "pipeline" => self.pipeline.clone()).set(rows as f64);
        gauge!("lexembed_commit_interval_seconds", "pipeline" => self.pipeline.clone())
            .set(interval.as_secs_f64());
    }

    /// One Lance commit's time (data files, fence, conditional commit with its retries).
    pub fn observe_commit(&self, seconds: f64) {
        histogram!("lexembed_commit_seconds", "pipeline" => self.pipeline.clone()).record(seconds);
    }

    /// Marks a consumed message (the busy span starts at the first).
    pub fn consumed_one(&self) {
        self.add(Count::Consumed, 1);
        if let Ok(mut s) = self.span.lock() {
            s.0.get_or_insert_with(Instant::now);
        }
    }

    /// Marks a finished batch (the busy span ends at the last).
    pub fn batch_done(&self) {
        if let Ok(mut s) = self.span.lock() {
            s.1 = Some(Instant::now());
        }
    }

    /// Seconds from the first message consumed to the last batch finished.
    pub fn busy_seconds(&self) -> f64 {
        match self.span.lock().map(|s| *s) {
            Ok((Some(a), Some(b))) if b > a => (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }

    pub fn encoder_seconds(&self) -> f64 {
        self.encoder_us.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// Help texts for the recorder (idempotent).
fn describe() {
    for c in Count::ALL {
        describe_counter!(c.name(), c.help());
    }
    describe_counter!(
        "lexembed_messages_dead_lettered_total",
        "Records sent to the dead-letter topic, by refusal kind."
    );
    describe_counter!(
        "lexembed_messages_skipped_total",
        "Bad records skipped (no dead-letter topic), by refusal kind."
    );
    describe_histogram!(
        "lexembed_encoder_seconds",
        "Time inside the encoder per batch (the sum is the encoder's busy time)."
    );
    describe_gauge!(
        "lexembed_end_to_end_lag_seconds",
        "Age of the oldest message of the last committed batch at its commit."
    );
    describe_gauge!(
        "lexembed_ready",
        "Whether the operator is a member of its consumer group and reached Lance."
    );
    describe_gauge!(
        "lexembed_kafka_broker_connected",
        "1 while the consumer's connection to the brokers is up, 0 from a transport failure until \
         the broker answers again."
    );
    describe_gauge!(
        "lexembed_kafka_partition_lag",
        "Messages of the partition after its consumer-group offset (librdkafka's consumer_lag)."
    );
    describe_gauge!(
        "lexembed_kafka_committed_offset",
        "Next offset of the partition that Lance holds."
    );
    describe_histogram!(
        "lexembed_batch_seconds",
        "Work per commit: embedding the batches it gathered, dead letters, the commit."
    );
    describe_histogram!(
        "lexembed_commit_seconds",
        "One Lance commit: data files, fence, the conditional commit and its retries."
    );
    describe_gauge!(
        "lexembed_rows_buffered",
        "Rows embedded and gathered, not yet committed (bounded by kafka.commit_rows)."
    );
    describe_gauge!(
        "lexembed_commit_interval_seconds",
        "The commit interval now: kafka.commit_interval_ms, longer while commits are superseded."
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    /// What the operator reports reaches the recorder with its labels, and the summary's atomics
    /// agree.
    #[test]
    fn counts_reach_the_recorder_labelled_and_the_summary() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let m = metrics::with_local_recorder(&recorder, || {
            let m = Metrics::new("boe");
            m.add(Count::Written, 5);
            m.bad_record(RefusalKind::NotJson, BadRecordFate::Skipped);
            m.bad_record(RefusalKind::NotJson, BadRecordFate::Skipped);
            let p = Partition {
                topic: "docs".into(),
                partition: 3,
            };
            m.partition_lag(&p, 42);
            m.observe_batch(0.3, 0.2, Some(1500));
            m
        });
        assert_eq!(m.get(Count::Written), 5);
        let seen: Vec<(String, Vec<String>, DebugValue)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (name, labels) = key.key().clone().into_parts();
                let labels = labels
                    .iter()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                (name.as_str().to_string(), labels, value)
            })
            .collect();
        let find = |name: &str| {
            seen.iter()
                .find(|(n, _, _)| n == name)
                .unwrap_or_else(|| panic!("{name} missing: {seen:?}"))
        };
        assert_eq!(
            find("lexembed_rows_written_total").2,
            DebugValue::Counter(5)
        );
        let skipped = find("lexembed_messages_skipped_total");
        assert_eq!(skipped.1, ["pipeline=boe", "kind=not_json"]);
        assert_eq!(skipped.2, DebugValue::Counter(2));
        let lag = find("lexembed_kafka_partition_lag");
        assert_eq!(lag.1, ["pipeline=boe", "topic=docs", "partition=3"]);
        assert_eq!(lag.2, DebugValue::Gauge(42.0.into()));
    }
}
