//! The operator loop: poll → micro-batch → (on close) fence → dead letters → encoder → one Lance
//! commit recording the batch's offset ranges → Kafka offset commit for lag tools.
//!
//! Everything runs on one thread, so a rebalance (which rdkafka runs inside `poll`) never overlaps a
//! commit: before each commit the batch drops rows of partitions revoked meanwhile and rows another
//! replica has already committed (read from Lance), which keeps the dataset exactly-once through
//! crashes, restarts and rebalances. Backpressure is the loop itself: while a batch is embedded and
//! committed nothing is polled, and librdkafka's prefetch is capped (`queued.max.messages.kbytes`),
//! so memory stays bounded whatever the produce rate.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lexembed_encoder::{Dim, Encoder};
use lexembed_lance::schema::{WrittenBy, embedded_dataset};
use lexembed_lance::{CommitRecord, DatasetLocation, KafkaCommit, SinkMode};
use lexembed_pipeline::spec::{KafkaSourceSpec, LoadedSpec, OnBadRecord, StartPosition};
use lexembed_pipeline::{embed_batch, open_encoder, output_dims, sink_location};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;
use tracing::{info, warn};

use crate::batch::{BatchLimits, ClosedBatch, DeadLetter, MicroBatch};
use crate::context::{OperatorContext, Shared};
use crate::dead_letter::DeadLetterSink;
use crate::error::{KafkaError, Result, client_err};
use crate::message::message_doc;
use crate::metrics::Metrics;
use crate::offsets::{LanceOffsets, Partition};

/// Test hook (feature `test-hooks` only): abort the process right after the Nth Lance commit, before
/// its Kafka offset commit.
#[cfg(feature = "test-hooks")]
pub const CRASH_AFTER_COMMITS_ENV: &str = "LEXEMBED_TEST_CRASH_AFTER_LANCE_COMMITS";

/// Options of a run that are not part of the spec.
#[derive(Debug, Clone, Default)]
pub struct OperatorOptions {
    /// Address for /metrics, /healthz, /readyz (e.g. `0.0.0.0:9464`); `None`: not served.
    pub http_addr: Option<String>,
    /// Stop (flush, commit, leave the group) after this long without messages once partitions are
    /// assigned: for backfills from a topic and for tests. `None`: run until SIGTERM/SIGINT.
    pub exit_when_idle: Option<Duration>,
    /// Set to stop from another thread (the binary's SIGTERM/SIGINT handlers set it).
    pub stop: Option<Arc<AtomicBool>>,
}

/// What a run did (also printed as JSON at exit).
#[derive(Debug, Clone, Default, Serialize)]
pub struct OperatorSummary {
    pub pipeline: String,
    pub dataset: String,
    pub consumed: u64,
    pub embedded: u64,
    pub written: u64,
    pub dead_lettered: u64,
    pub skipped: u64,
    pub dropped_not_owned: u64,
    pub commits: u64,
    pub seconds: f64,
    /// From the first message consumed to the last batch committed (throughput's denominator).
    pub busy_seconds: f64,
    pub encoder_seconds: f64,
}

/// The Kafka client settings of a spec: lexembed's defaults, then the spec's pass-through properties.
pub fn client_config(k: &KafkaSourceSpec) -> ClientConfig {
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
        .set("queued.max.messages.kbytes", "16384");
    for (key, value) in &k.properties {
        cfg.set(key, value);
    }
    cfg
}

/// Settings for the dead-letter producer: the brokers and the spec's properties, less the
/// consumer-only ones (librdkafka warns about those on a producer).
pub fn producer_config(k: &KafkaSourceSpec) -> ClientConfig {
    const CONSUMER_ONLY: [&str; 12] = [
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

struct Operator<'a> {
    loaded: &'a LoadedSpec,
    kafka: &'a KafkaSourceSpec,
    encoder: Encoder,
    dims: Vec<Dim>,
    schema: arrow_schema::SchemaRef,
    location: DatasetLocation,
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    consumer: BaseConsumer<OperatorContext>,
    dead_letters: Option<DeadLetterSink>,
    metrics: Arc<Metrics>,
    #[cfg(feature = "test-hooks")]
    crash_after: Option<u64>,
}

/// Runs the Kafka operator of `loaded` until `opts.stop` is set or `opts.exit_when_idle`.
pub fn run_operator(loaded: &LoadedSpec, opts: &OperatorOptions) -> Result<OperatorSummary> {
    let started = Instant::now();
    let stop = opts.stop.clone().unwrap_or_default();
    let op = Operator::open(loaded)?;
    if let Some(addr) = &opts.http_addr {
        crate::http::serve(addr, op.metrics.clone(), Duration::from_secs(300))?;
    }
    let result = op.run(&stop, opts.exit_when_idle);
    op.close();
    result?;
    let m = &op.metrics;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    Ok(OperatorSummary {
        pipeline: loaded.spec.name.clone(),
        dataset: op.location.uri.clone(),
        consumed: get(&m.consumed),
        embedded: get(&m.embedded),
        written: get(&m.written),
        dead_lettered: get(&m.dead_lettered),
        skipped: get(&m.skipped),
        dropped_not_owned: get(&m.dropped_not_owned),
        commits: get(&m.commits),
        seconds: started.elapsed().as_secs_f64(),
        busy_seconds: m.busy_seconds(),
        encoder_seconds: m.encoder_seconds(),
    })
}

impl<'a> Operator<'a> {
    fn open(loaded: &'a LoadedSpec) -> Result<Self> {
        let spec = &loaded.spec;
        let kafka = spec.source.kafka.as_ref().ok_or_else(|| {
            KafkaError::Runtime("this pipeline's source is not kafka (source.kafka)".into())
        })?;
        let encoder = open_encoder(&spec.encoder, |p| loaded.resolve(p))?;
        let dims = output_dims(&spec.encoder, &encoder);
        let schema = embedded_dataset(
            &encoder.model().model_id,
            &dims,
            &spec.source.metadata_fields,
        )?;
        let location = sink_location(loaded);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| KafkaError::Runtime(format!("starting the I/O runtime: {e}")))?;
        // Refuse a dataset written by another model, dims or schema before consuming anything.
        rt.block_on(location.check_writable(SinkMode::Append, &schema))?;
        let metrics = Arc::new(Metrics::default());
        let shared = Arc::new(Shared::new(
            LanceOffsets::new(location.clone(), &kafka.group_id),
            rt.handle().clone(),
            kafka.start,
            metrics.clone(),
        ));
        let cfg = client_config(kafka);
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
            model = %encoder.model().model_id, "Kafka operator started"
        );
        Ok(Self {
            loaded,
            kafka,
            encoder,
            dims,
            schema,
            location,
            rt,
            shared,
            consumer,
            dead_letters,
            metrics,
            #[cfg(feature = "test-hooks")]
            crash_after: std::env::var(CRASH_AFTER_COMMITS_ENV)
                .ok()
                .and_then(|v| v.parse().ok()),
        })
    }

    /// The test-only crash between the Lance and the Kafka commit.
    #[cfg(feature = "test-hooks")]
    fn crash_hook(&self) {
        if let Some(limit) = self.crash_after
            && self.metrics.commits.load(Ordering::Relaxed) >= limit
        {
            warn!(
                "{CRASH_AFTER_COMMITS_ENV} reached: aborting between the Lance and the Kafka commit"
            );
            std::process::abort();
        }
    }

    fn run(&self, stop: &AtomicBool, exit_when_idle: Option<Duration>) -> Result<()> {
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
        // Next offset expected per partition (duplicates after a seek are dropped).
        let mut positions: HashMap<Partition, i64> = HashMap::new();
        while !stop.load(Ordering::Relaxed) {
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
                    let mut closed = batch.close()?;
                    let dropped = closed.retain(|p, _| !change.revoked.contains(p))?;
                    Metrics::add(&self.metrics.dropped_not_owned, dropped);
                    self.flush(closed)?;
                }
            }
            match polled {
                Some(Ok(m)) => {
                    idle_since = None;
                    self.take_message(&m, &mut batch, &mut positions)?;
                }
                Some(Err(e)) => warn!(error = %e, "consumer error (librdkafka retries)"),
                None => {
                    idle_since.get_or_insert_with(Instant::now);
                }
            }
            if batch.is_ready() {
                let closed = batch.close()?;
                self.flush(closed)?;
                idle_since = None; // the time spent committing is not idleness
            }
            if let Some(idle) = exit_when_idle
                && batch.is_empty()
                && self.shared.assigned_count() > 0
                && idle_since.is_some_and(|t| t.elapsed() >= idle)
            {
                info!(
                    idle_s = idle.as_secs_f64(),
                    "no messages: stopping (exit_when_idle)"
                );
                break;
            }
        }
        if !batch.is_empty() {
            info!(
                rows = batch.rows(),
                "stopping: committing the batch in hand"
            );
            let closed = batch.close()?;
            self.flush(closed)?;
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
        match message_doc(
            m.payload(),
            m.key(),
            &self.loaded.spec.source,
            self.kafka.key_as_id,
        ) {
            Ok(doc) => batch.push_doc(&p, offset, ts, &doc),
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

    /// Fence, dead letters, embed, one Lance commit, then the Kafka offsets.
    fn flush(&self, mut closed: ClosedBatch) -> Result<()> {
        let started = Instant::now();
        self.fence(&mut closed)?;
        if closed.is_empty() {
            return Ok(());
        }
        match &self.dead_letters {
            Some(sink) => {
                sink.deliver(&closed.dead)?;
                Metrics::add(&self.metrics.dead_lettered, closed.dead.len());
            }
            None => Metrics::add(&self.metrics.skipped, closed.dead.len()),
        }
        let encoding = Instant::now();
        let rows = embed_batch(&self.encoder, &self.dims, &self.schema, &closed.docs)?;
        let encoder_seconds = encoding.elapsed().as_secs_f64();
        Metrics::add(&self.metrics.embedded, rows.num_rows());
        if rows.num_rows() > 0 {
            // Nothing to append when every record was dead-lettered: the offsets then go to Kafka
            // only (after a crash those records may be dead-lettered again).
            let n = rows.num_rows();
            let base = self.shared.offsets().dataset();
            let record = self.commit_record(&closed);
            let ds = self
                .rt
                .block_on(self.location.append(base, rows, &record))?;
            let version = ds.version().version;
            self.rt.block_on(self.shared.offsets().committed(ds))?;
            Metrics::add(&self.metrics.written, n);
            Metrics::add(&self.metrics.commits, 1);
            tracing::debug!(rows = n, version, "committed batch");
            #[cfg(feature = "test-hooks")]
            self.crash_hook();
        }
        self.commit_kafka(&closed);
        let lag = closed.oldest_timestamp_ms.map(|t| now_ms() - t);
        self.metrics
            .observe_batch(started.elapsed().as_secs_f64(), encoder_seconds, lag);
        self.metrics.batch_done();
        Ok(())
    }

    /// Drops rows of partitions revoked meanwhile and rows another replica committed already.
    fn fence(&self, closed: &mut ClosedBatch) -> Result<()> {
        let shared = self.shared.clone();
        let mut offsets = shared.offsets();
        self.rt.block_on(offsets.refresh())?;
        let dropped = closed
            .retain(|p, o| shared.owns(p) && offsets.next_offset(p).is_none_or(|next| o >= next))?;
        if dropped > 0 {
            warn!(
                dropped,
                "dropped rows committed elsewhere or no longer owned"
            );
            Metrics::add(&self.metrics.dropped_not_owned, dropped);
        }
        Ok(())
    }

    fn commit_record(&self, closed: &ClosedBatch) -> CommitRecord {
        CommitRecord {
            pipeline: Some(self.loaded.spec.name.clone()),
            written_by: Some(WrittenBy::new(&self.encoder.model().model_id, &self.dims)),
            kafka: Some(KafkaCommit {
                group: self.kafka.group_id.clone(),
                ranges: closed.ranges.clone(),
                checkpoint: Some(self.shared.offsets().checkpoint_with(&closed.ranges)),
            }),
            ..CommitRecord::default()
        }
    }

    /// Commits the batch's next offsets to the group (for lag tools; Lance stays the source of truth,
    /// so a failure here is only logged).
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

    /// Leaves the group cleanly (revocation runs, the coordinator reassigns at once).
    fn close(&self) {
        self.consumer.unsubscribe();
        let _ = self.consumer.poll(Duration::from_millis(100));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
