//! The operator: poll → micro-batch → encoder stage → writer (fence → dead letters → one Lance commit
//! recording the batch's offset ranges → Kafka offset commit for lag tools).
//!
//! Three threads, so the model never waits for Kafka or Lance: this one polls and builds micro-batches
//! (rebalances run here, inside `poll`); the encoder stage tokenizes and embeds the next closed
//! batches (at most `encoder.ahead`, default 2, so memory stays bounded); the writer (`writer.rs`)
//! commits them in order. A commit never overlaps a revocation: the writer holds the commit gate from
//! its fence to its Lance commit, and the revocation callback takes the gate before it gives the
//! partitions up, so every commit drops the rows of partitions revoked before it and of offsets
//! another replica committed (read from Lance), which keeps the dataset exactly-once through crashes,
//! restarts and rebalances. Backpressure: when the stage is full, this thread waits to hand over the
//! next batch and polls nothing; librdkafka's prefetch is capped (`queued.max.messages.kbytes`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

use lexembed_encoder::EncodeStage;
use lexembed_encoder::stage::DEFAULT_AHEAD;
use lexembed_lance::schema::TEXT_COLUMN;
use lexembed_lance::{DatasetLocation, SinkMode};
use lexembed_pipeline::spec::{KafkaSourceSpec, LoadedSpec, OnBadRecord, StartPosition};
use lexembed_pipeline::{PipelineModel, sink_location};
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::batch::{BatchLimits, ClosedBatch, DeadLetter, MicroBatch};
use crate::broker_watch::{ANSWER_WAIT, BrokerWatch};
use crate::context::{OperatorContext, Shared};
use crate::dead_letter::DeadLetterSink;
use crate::error::{KafkaError, Result, client_err};
use crate::fenced::BatchWrite;
use crate::link::{BrokerLink, is_transport_failure};
use crate::message::message_change;
use crate::metrics::{BadRecordFate, Count, Metrics};
use crate::offsets::{LanceOffsets, Partition};
use lexembed_pipeline::source::rows::Change;

#[cfg(feature = "test-hooks")]
pub use crate::writer::{CRASH_AFTER_COMMITS_ENV, PAUSE_BEFORE_COMMIT_ENV};

/// Options of a run that are not part of the spec.
#[derive(Clone, Default)]
pub struct OperatorOptions {
    /// Address for /metrics, /healthz, /readyz (e.g. `0.0.0.0:9464`); `None`: not served.
    pub http_addr: Option<String>,
    /// Stop (flush, commit, leave the group) after this long without messages once partitions are
    /// assigned: for backfills from a topic and for tests. `None`: run until SIGTERM/SIGINT.
    pub exit_when_idle: Option<Duration>,
    /// Set to stop from another thread (the binary's SIGTERM/SIGINT handlers set it).
    pub stop: Option<Arc<AtomicBool>>,
    /// `/metrics`' body: the binary's Prometheus exporter (the operator records through the
    /// `metrics` facade).
    pub render_metrics: Option<crate::http::RenderMetrics>,
}

/// What a run did (also printed as JSON at exit).
#[derive(Debug, Clone, Default, Serialize)]
pub struct OperatorSummary {
    pub pipeline: String,
    pub dataset: String,
    pub consumed: u64,
    pub embedded: u64,
    pub written: u64,
    /// Ids deleted (upserts: tombstones and null texts).
    pub deleted: u64,
    pub dead_lettered: u64,
    pub skipped: u64,
    pub dropped_not_owned: u64,
    pub commits: u64,
    pub seconds: f64,
    /// From the first message consumed to the last batch committed (throughput's denominator).
    pub busy_seconds: f64,
    pub encoder_seconds: f64,
}

/// How long the main loop may go without polling: while `ahead` closed batches wait for the model it
/// blocks, so (ahead + 1) batches of `max_batch_seconds`, plus a minute for the commit and a rebalance.
/// librdkafka's `max.poll.interval.ms` (unless the spec's properties set it) and `/healthz`'s stall
/// limit both come from it: a slow model is not mistaken for a stuck consumer.
pub fn poll_budget(k: &KafkaSourceSpec, ahead: usize) -> Duration {
    let derived = Duration::from_secs((ahead.max(1) as u64 + 1) * k.max_batch_seconds.max(1) + 60);
    k.properties
        .get("max.poll.interval.ms")
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(derived, Duration::from_millis)
}

/// The Kafka client settings of a spec: lexembed's defaults (the poll interval from `poll_budget`),
/// then the spec's pass-through properties.
pub fn client_config(k: &KafkaSourceSpec, ahead: usize) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &k.brokers)
        .set("group.id", &k.group_id)
        .set("client.id", "lexembed")
        // Lance holds the offsets; Kafka's are committed by hand after each Lance commit.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match k.start {
                StartPosition::Earliest => "earliest",
                StartPosition::Latest => "latest",
            },
        )
        // Bounded prefetch: the backpressure limit while a batch is embedded.
        .set("queued.max.messages.kbytes", "16384")
        // Per-partition lag for /metrics (lexembed_kafka_partition_lag).
        .set("statistics.interval.ms", "5000")
        .set(
            "max.poll.interval.ms",
            poll_budget(k, ahead).as_millis().to_string(),
        );
    for (key, value) in &k.properties {
        cfg.set(key, value);
    }
    cfg
}

/// Settings for the dead-letter producer: the brokers and the spec's properties, less the
/// consumer-only ones (librdkafka warns about those on a producer).
pub fn producer_config(k: &KafkaSourceSpec) -> ClientConfig {
    const CONSUMER_ONLY: [&str; 13] = [
        "statistics.interval.ms",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "auto.offset.reset",
        "partition.assignment.strategy",
        "group.instance.id",
        "group.protocol",
        "group.remote.assignor",
        "isolation.level",
        "queued.max.messages.kbytes",
        "queued.min.messages",
        "check.crcs",
    ];
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &k.brokers)
        .set("client.id", "lexembed-dead-letters");
    for (key, value) in &k.properties {
        if !CONSUMER_ONLY.contains(&key.as_str()) && !key.starts_with("fetch.") {
            cfg.set(key, value);
        }
    }
    cfg
}

pub(crate) struct Operator<'a> {
    pub(crate) loaded: &'a LoadedSpec,
    pub(crate) kafka: &'a KafkaSourceSpec,
    pub(crate) model: PipelineModel,
    pub(crate) schema: arrow_schema::SchemaRef,
    pub(crate) location: DatasetLocation,
    /// Append, or upsert (`sink.mode: upsert`).
    pub(crate) write: BatchWrite,
    pub(crate) rt: Handle,
    pub(crate) shared: Arc<Shared>,
    /// Dropped by `Operator`'s own `Drop`, only once the consumer has closed: rdkafka's drop polls
    /// until the group close completes, with no bound (after a broker restart it waited past 600 s).
    pub(crate) consumer: std::mem::ManuallyDrop<BaseConsumer<OperatorContext>>,
    pub(crate) dead_letters: Option<DeadLetterSink>,
    pub(crate) metrics: Arc<Metrics>,
    #[cfg(feature = "test-hooks")]
    pub(crate) crash_after: Option<u64>,
    #[cfg(feature = "test-hooks")]
    pub(crate) pause_before: Option<(u64, Duration)>,
}

/// Runs the Kafka operator of `loaded` until `opts.stop` is set or `opts.exit_when_idle`. Lance I/O
/// runs on `io` (the caller's runtime); the operator's own threads block on it.
pub fn run_operator(
    loaded: &LoadedSpec,
    kafka: &KafkaSourceSpec,
    opts: &OperatorOptions,
    io: &Handle,
) -> Result<OperatorSummary> {
    let started = Instant::now();
    let stop = opts.stop.clone().unwrap_or_default();
    let op = Operator::open(loaded, kafka, io.clone())?;
    if let Some(addr) = &opts.http_addr {
        let endpoint = crate::http::Endpoint {
            metrics: op.metrics.clone(),
            render: opts.render_metrics.clone(),
            stall_after: poll_budget(kafka, loaded.spec.encoder.ahead.unwrap_or(DEFAULT_AHEAD)),
        };
        crate::http::serve(addr, endpoint, io)?;
    }
    let result = op.run(&stop, opts.exit_when_idle);
    op.close();
    result?;
    let m = &op.metrics;
    Ok(OperatorSummary {
        pipeline: loaded.spec.name.clone(),
        dataset: op.location.uri.clone(),
        consumed: m.get(Count::Consumed),
        embedded: m.get(Count::Embedded),
        written: m.get(Count::Written),
        deleted: m.get(Count::Deleted),
        dead_lettered: m.bad_records(BadRecordFate::DeadLettered),
        skipped: m.bad_records(BadRecordFate::Skipped),
        dropped_not_owned: m.get(Count::DroppedNotOwned),
        commits: m.get(Count::Commits),
        seconds: started.elapsed().as_secs_f64(),
        busy_seconds: m.busy_seconds(),
        encoder_seconds: m.encoder_seconds(),
    })
}

impl<'a> Operator<'a> {
    fn open(loaded: &'a LoadedSpec, kafka: &'a KafkaSourceSpec, rt: Handle) -> Result<Self> {
        let spec = &loaded.spec;
        let model = PipelineModel::open(loaded)?;
        let schema = model.schema(&spec.source.metadata_fields)?;
        let location = sink_location(loaded);
        // Refuse a dataset written by another model, dims or schema before consuming anything.
        rt.block_on(location.check_writable(SinkMode::from(spec.sink.mode), &schema))?;
        let metrics = Arc::new(Metrics::new(&spec.name));
        let shared = Arc::new(Shared::new(
            LanceOffsets::new(location.clone(), &kafka.group_id),
            rt.clone(),
            kafka.start,
            metrics.clone(),
            Arc::new(BrokerLink::new(&kafka.brokers, metrics.clone())),
        ));
        let cfg = client_config(kafka, spec.encoder.ahead.unwrap_or(DEFAULT_AHEAD));
        let consumer: BaseConsumer<OperatorContext> = cfg
            .create_with_context(OperatorContext {
                shared: shared.clone(),
            })
            .map_err(client_err("creating the consumer"))?;
        let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(client_err(format!("subscribing to {topics:?}")))?;
        let dead_letters = kafka
            .dead_letter_topic
            .as_deref()
            .map(|t| DeadLetterSink::new(&producer_config(kafka), t))
            .transpose()?;
        info!(
            pipeline = %spec.name, group = %kafka.group_id, ?topics, dataset = %location.uri,
            model = %model.written_by, "Kafka operator started"
        );
        let write = match SinkMode::from(spec.sink.mode) {
            SinkMode::Upsert => BatchWrite::Upsert(schema.clone()),
            _ => BatchWrite::Append,
        };
        Ok(Self {
            loaded,
            kafka,
            model,
            schema,
            location,
            write,
            rt,
            shared,
            consumer: std::mem::ManuallyDrop::new(consumer),
            dead_letters,
            metrics,
            #[cfg(feature = "test-hooks")]
            crash_after: std::env::var(CRASH_AFTER_COMMITS_ENV)
                .ok()
                .and_then(|v| v.parse().ok()),
            #[cfg(feature = "test-hooks")]
            pause_before: crate::writer::pause_from_env(),
        })
    }

    /// Polls on this thread while the encoder stage and the writer run beside it; returns when the
    /// writer has committed every batch handed over (or the first error of either side).
    fn run(&self, stop: &AtomicBool, exit_when_idle: Option<Duration>) -> Result<()> {
        let ahead = self.loaded.spec.encoder.ahead.unwrap_or(DEFAULT_AHEAD);
        let (to_stage, closed) = sync_channel::<ClosedBatch>(ahead.max(1));
        let texts = |c: &ClosedBatch| {
            (c.docs.num_rows() > 0)
                .then(|| c.docs.column_by_name(TEXT_COLUMN).cloned())
                .flatten()
        };
        let stage = EncodeStage::spawn(self.model.stage(), ahead, closed, texts)?;
        let writer_stopped = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let writer = std::thread::Builder::new()
                .name("lexembed-writer".into())
                .spawn_scoped(scope, || {
                    let written = self.write_all(stage);
                    writer_stopped.store(true, Ordering::Release);
                    written
                })
                .map_err(|e| KafkaError::Runtime(format!("starting the writer thread: {e}")))?;
            let polled = self.poll(stop, exit_when_idle, &to_stage, &writer_stopped);
            drop(to_stage); // the stage ends, and the writer once it has committed what it has
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(KafkaError::Runtime("the writer thread panicked".into())));
            // The writer's error is the cause when both failed (the poll loop stops because of it).
            written.and(polled)
        })
    }

    /// The poll loop: messages into micro-batches, closed batches to the encoder stage, until a stop,
    /// idleness, a rebalance failure or the writer stopping.
    fn poll(
        &self,
        stop: &AtomicBool,
        exit_when_idle: Option<Duration>,
        to_stage: &SyncSender<ClosedBatch>,
        writer_stopped: &AtomicBool,
    ) -> Result<()> {
        let source = &self.loaded.spec.source;
        let limits = BatchLimits {
            rows: source.batch_rows,
            bytes: self.kafka.max_batch_bytes,
            linger: Duration::from_millis(self.kafka.linger_ms),
        };
        let docs_schema = lexembed_lance::schema::documents(&source.metadata_fields)?;
        let mut batch = MicroBatch::new(docs_schema, source, limits);
        // Since when polls have returned nothing (None while messages flow or a batch is being
        // committed): the clock of `exit_when_idle`.
        let mut idle_since: Option<Instant> = None;
        // Since when polls have returned nothing, whatever else happened (the broker watch's clock).
        let mut quiet_since: Option<Instant> = None;
        let mut broker = BrokerWatch::new(
            &self.kafka.brokers,
            &self.kafka.topics[0],
            BROKER_GIVE_UP,
            producer_config(self.kafka),
            self.shared.link.clone(),
        );
        // Next offset expected per partition (duplicates after a seek are dropped).
        let mut positions: HashMap<Partition, i64> = HashMap::new();
        let hand_over = |closed: ClosedBatch| {
            to_stage
                .send(closed)
                .map_err(|_| KafkaError::Runtime("the encoder stage stopped".into()))
        };
        while !stop.load(Ordering::Relaxed) && !writer_stopped.load(Ordering::Acquire) {
            self.metrics.beat();
            let wait = batch
                .time_left()
                .unwrap_or(Duration::from_millis(200))
                .min(Duration::from_millis(200));
            let polled = self.consumer.poll(wait);
            if let Some(e) = self.shared.take_failure() {
                return Err(e);
            }
            if let Some(change) = self.shared.take_change() {
                // Idleness counts from the latest assignment: a join that waited for a dead member's
                // session to expire must still read its partitions.
                idle_since = None;
                for p in &change.revoked {
                    positions.remove(p);
                }
                positions.extend(change.starts);
                if !batch.is_empty() && !change.revoked.is_empty() {
                    // Rows of revoked partitions are not ours to commit; commit the rest now.
                    let mut closed = batch.close(self.shared.generation())?;
                    let dropped = closed.retain(|p, _| !change.revoked.contains(p))?;
                    self.metrics.add(Count::DroppedNotOwned, dropped);
                    hand_over(closed)?;
                }
            }
            match polled {
                Some(Ok(m)) => {
                    idle_since = None;
                    quiet_since = None;
                    broker.heard();
                    self.take_message(&m, &mut batch, &mut positions)?;
                }
                Some(Err(e)) if is_transport_failure(&e) => {
                    self.shared.link.failed(&e);
                }
                Some(Err(e)) => warn!(error = %e, "consumer error (librdkafka retries)"),
                None => {
                    idle_since.get_or_insert_with(Instant::now);
                    let quiet = quiet_since.get_or_insert_with(Instant::now).elapsed();
                    broker.quiet(&self.consumer, quiet)?;
                }
            }
            if batch.is_ready() {
                hand_over(batch.close(self.shared.generation())?)?;
                idle_since = None; // the time spent handing over is not idleness
            }
            // Idle with a batch in hand (a linger longer than the idle time) still stops: the batch in
            // hand is committed on the way out. Idleness counts only once the group has assigned
            // partitions to this replica (a first join can wait for a dead member's session), but a
            // replica that lost its partitions and is not given any back within the idle time stops
            // too: librdkafka can stay stuck rejoining after a broker restart, and a backfill must end.
            if let Some(idle) = exit_when_idle
                && self.shared.was_ever_assigned()
                && idle_since.is_some_and(|t| t.elapsed() >= idle)
            {
                match self.read_to_the_end(&positions) {
                    Ok(()) => {
                        info!(
                            idle_s = idle.as_secs_f64(),
                            "no messages: stopping (exit_when_idle)"
                        );
                        break;
                    }
                    Err(NotRead::Unanswered(why)) => broker.unanswered(why)?,
                    Err(NotRead::Behind(why)) => {
                        broker.answered();
                        info!(%why, "no messages, but the topic is not read to its end: waiting on");
                    }
                }
                idle_since = Some(Instant::now());
            }
        }
        if !batch.is_empty() && !writer_stopped.load(Ordering::Acquire) {
            info!(
                rows = batch.rows(),
                "stopping: committing the batch in hand"
            );
            hand_over(batch.close(self.shared.generation())?)?;
        }
        Ok(())
    }

    /// Whether the topics are read to their end: no messages for a while is no proof when the broker
    /// is down or frozen (librdkafka then returns nothing too) or this replica's partitions were
    /// revoked meanwhile, and a backfill that stopped then would exit 0 with the rest of the topic
    /// unread (the faults harness: a third of the records, after a broker SIGKILL or a 30 s freeze).
    /// The broker must answer, and every partition of the topics must be read to its high watermark
    /// by someone: this replica's position, the group's offsets in Lance, or the group's committed
    /// offset in Kafka (partitions of dead letters only, or `start: latest` resolved there).
    fn read_to_the_end(
        &self,
        positions: &HashMap<Partition, i64>,
    ) -> std::result::Result<(), NotRead> {
        let mut parts = TopicPartitionList::new();
        for topic in &self.kafka.topics {
            let md = self
                .consumer
                .fetch_metadata(Some(topic), ANSWER_WAIT)
                .map_err(|e| {
                    NotRead::Unanswered(format!("the broker did not answer for topic {topic}: {e}"))
                })?;
            for t in md.topics() {
                for p in t.partitions() {
                    parts.add_partition(t.name(), p.id());
                }
            }
        }
        let group = self
            .consumer
            .committed_offsets(parts.clone(), ANSWER_WAIT)
            .map_err(|e| {
                NotRead::Unanswered(format!("the group coordinator did not answer: {e}"))
            })?;
        // Read under the offsets' lock, which the writer's commits take: released before the
        // watermarks are asked for (up to ANSWER_WAIT a partition).
        let in_lance: HashMap<Partition, i64> = {
            let mut lance = self.shared.offsets();
            self.rt.block_on(lance.refresh()).map_err(|e| {
                NotRead::Behind(format!("reading the group's offsets in Lance: {e}"))
            })?;
            parts
                .elements()
                .iter()
                .map(|e| Partition::new(e.topic(), e.partition()))
                .filter_map(|p| lance.next_offset(&p).map(|o| (p, o)))
                .collect()
        };
        for e in parts.elements() {
            let p = Partition::new(e.topic(), e.partition());
            let (low, high) = self
                .consumer
                .fetch_watermarks(e.topic(), e.partition(), ANSWER_WAIT)
                .map_err(|err| {
                    NotRead::Unanswered(format!("the broker did not answer for {p}'s end: {err}"))
                })?;
            let in_kafka = group
                .find_partition(e.topic(), e.partition())
                .and_then(|c| c.offset().to_raw());
            let read_to = [
                Some(low),
                positions.get(&p).copied().filter(|_| self.shared.owns(&p)),
                in_lance.get(&p).copied(),
                in_kafka,
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(low);
            if high > read_to {
                return Err(NotRead::Behind(format!(
                    "{p} has {} messages past offset {read_to} not read yet",
                    high - read_to
                )));
            }
        }
        Ok(())
    }

    fn take_message(
        &self,
        m: &rdkafka::message::BorrowedMessage<'_>,
        batch: &mut MicroBatch,
        positions: &mut HashMap<Partition, i64>,
    ) -> Result<()> {
        let p = Partition::new(m.topic(), m.partition());
        let offset = m.offset();
        if !self.shared.owns(&p) {
            return Ok(());
        }
        if positions.get(&p).is_some_and(|&next| offset < next) {
            return Ok(()); // already in the batch or committed
        }
        positions.insert(p.clone(), offset + 1);
        self.metrics.consumed_one();
        let ts = m.timestamp().to_millis();
        match message_change(
            m.payload(),
            m.key(),
            &self.loaded.spec.source,
            self.kafka.key_as_id,
        ) {
            Ok(Change::Row(doc)) => batch.push_doc(&p, offset, ts, &doc),
            Ok(Change::Delete(id)) => batch.push_delete(&p, offset, ts, id),
            Err(refusal) => {
                if self.dead_letters.is_none()
                    && self.loaded.spec.source.on_bad_record == OnBadRecord::Fail
                {
                    return Err(KafkaError::BadRecord {
                        topic: p.topic,
                        partition: p.partition,
                        offset,
                        reason: refusal.message,
                    });
                }
                warn!(partition = %p, offset, reason = %refusal.message, "bad record");
                batch.push_dead(
                    DeadLetter {
                        partition: p,
                        offset,
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        kind: refusal.kind,
                        reason: refusal.message,
                    },
                    ts,
                );
            }
        }
        Ok(())
    }

    /// Leaves the group cleanly (revocation runs, the coordinator reassigns at once).
    fn close(&self) {
        self.consumer.unsubscribe();
        let _ = self.consumer.poll(Duration::from_millis(100));
    }

    /// Closes the consumer (leave the group, revocation callbacks), waiting at most `CLOSE_WAIT`.
    /// True when it closed; otherwise the coordinator drops the member after its session timeout.
    fn close_consumer(&self) -> bool {
        if let Err(e) = self.consumer.close_queue() {
            warn!(error = %e, "closing the consumer");
            return false;
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        while !self.consumer.closed() {
            if Instant::now() > deadline {
                warn!(
                    waited_s = CLOSE_WAIT.as_secs(),
                    "the consumer did not close in time: leaving it to the group's session timeout"
                );
                return false;
            }
            let _ = self.consumer.poll(Duration::from_millis(100));
        }
        true
    }
}

/// How long shutting down waits for the consumer group to let the consumer go.
const CLOSE_WAIT: Duration = Duration::from_secs(30);
/// A broker silent this long ends the run (non-zero; the restart reconnects): a broker restart or a
/// 30 s outage is ridden out, a librdkafka client left disconnected is not kept forever.
const BROKER_GIVE_UP: Duration = Duration::from_secs(60);

/// Why `exit_when_idle` does not stop yet.
enum NotRead {
    /// The broker (or the group coordinator) did not answer.
    Unanswered(String),
    /// Messages remain past what the group has read, or the offsets could not be read.
    Behind(String),
}

impl Drop for Operator<'_> {
    fn drop(&mut self) {
        if self.close_consumer() {
            // SAFETY: the consumer is dropped once, here, and not used after: `self` is being dropped.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.consumer) };
        }
        // Otherwise the consumer is leaked rather than dropped: its drop would poll until the close
        // completes, which can be forever; the process exits next.
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec(extra: serde_json::Value) -> KafkaSourceSpec {
        let mut v = serde_json::json!({"brokers": "b:9092", "topics": ["t"], "group_id": "g"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    /// A slow model is not a stuck consumer: the poll interval and the stall limit grow with the batch
    /// time and the batches waiting ahead; an explicit max.poll.interval.ms wins.
    #[test]
    fn the_poll_budget_follows_the_batch_time() {
        assert_eq!(
            poll_budget(&spec(serde_json::json!({})), 2),
            Duration::from_secs(960)
        );
        let slow = spec(serde_json::json!({"max_batch_seconds": 900}));
        assert_eq!(poll_budget(&slow, 2), Duration::from_secs(2760));
        let cfg = client_config(&slow, 2);
        assert_eq!(cfg.get("max.poll.interval.ms"), Some("2760000"));
        let set = spec(serde_json::json!({"properties": {"max.poll.interval.ms": "600000"}}));
        assert_eq!(poll_budget(&set, 2), Duration::from_secs(600));
        assert_eq!(
            client_config(&set, 2).get("max.poll.interval.ms"),
            Some("600000")
        );
    }
}
