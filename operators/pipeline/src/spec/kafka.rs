//! The `kafka:` block of a Kafka source: brokers, topics and group, where a new group starts, dead
//! letters, micro-batching and the commit policy (how embedded batches are gathered into commits).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::redacted;

/// Where a new consumer group starts on a partition for which the Lance dataset records no offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    #[default]
    Earliest,
    Latest,
}

/// A Kafka source: messages are JSON objects (or the key is the id), micro-batched into record batches.
/// Offsets live in the Lance dataset's commits (the source of truth); the group's committed offsets are
/// only updated for lag tools.
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// Bootstrap servers, e.g. `broker-0:9092,broker-1:9092`.
    pub brokers: String,
    pub topics: Vec<String>,
    /// Consumer group: replicas with the same group share the partitions.
    pub group_id: String,
    #[serde(default)]
    pub start: StartPosition,
    /// Take the document id from the message key instead of `id_field`.
    #[serde(default)]
    pub key_as_id: bool,
    /// Records that cannot become rows go here, with headers naming the error and where they came
    /// from. Without one, `on_bad_record` decides (skip: count and log; fail: stop).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// A batch is flushed after this many milliseconds from its first message, if not full before.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// A batch is flushed when its texts reach this many bytes (bounds memory and encoder work;
    /// about bytes/4 tokens for Latin-script text).
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// The longest one batch may take to embed and commit on this hardware (a large model on CPU:
    /// minutes). The main loop stops polling while `encoder.ahead` batches wait for the model, so
    /// librdkafka's `max.poll.interval.ms` and `/healthz`'s stall limit are derived from it: (ahead + 1)
    /// batches plus a minute. Default 300.
    #[serde(
        default = "default_max_batch_seconds",
        deserialize_with = "number_or_variable"
    )]
    pub max_batch_seconds: u64,
    /// Embedded batches are gathered and committed to Lance together once the oldest has waited this
    /// many milliseconds (or `commit_rows` are gathered): one commit per interval, not per batch, so
    /// many replicas can share one dataset (a dataset takes commits one after another). While the
    /// dataset is busy with the group's commits the interval lengthens (up to `commit_interval_max_ms`,
    /// with jitter), and it shrinks back as the dataset quiets. 0: every batch is its own commit until
    /// a busy dataset lengthens the interval. Default 1000.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// The longest the interval grows to while the dataset is busy. Default 30000.
    #[serde(default = "default_commit_interval_max_ms")]
    pub commit_interval_max_ms: u64,
    /// Commit as soon as this many rows are gathered, whatever the interval: bounds the memory of
    /// rows embedded but not yet committed (each gather draws its bound between half this and this,
    /// so replicas fed at one rate do not commit in step). Default 65536: about 760 MB at the
    /// production model's six columns; a smaller bound caps the interval before it can grow as far
    /// as a slow store needs with many replicas (16 replicas at 2,000 rows/s behind 25 ms per
    /// request lost 2.1 attempts per commit at 16384, 0.5 at 65536).
    #[serde(default = "default_commit_rows")]
    pub commit_rows: usize,
    /// librdkafka properties passed through (security.protocol, sasl.*, ssl.*, …); use ${ENV} for
    /// secrets. `enable.auto.commit`, `group.id` and `bootstrap.servers` are set by lexembed.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSourceSpec")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group_id", &self.group_id)
            .field("start", &self.start)
            .field("key_as_id", &self.key_as_id)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("linger_ms", &self.linger_ms)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("max_batch_seconds", &self.max_batch_seconds)
            .field("commit_interval_ms", &self.commit_interval_ms)
            .field("commit_interval_max_ms", &self.commit_interval_max_ms)
            .field("commit_rows", &self.commit_rows)
            .field("properties", &redacted(&self.properties))
            .finish()
    }
}

fn default_linger_ms() -> u64 {
    500
}
/// A number written as such, or as the string a `${VAR}` became (`max_batch_seconds:
/// ${LEXEMBED_MAX_BATCH_SECONDS:-300}`, as the chart writes it).
fn number_or_variable<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(u64),
        Text(String),
    }
    match Written::deserialize(d)? {
        Written::Number(n) => Ok(n),
        // The first pass reads the spec before `${VAR}`s are replaced; the second reads the value.
        Written::Text(t) if t.contains("${") => Ok(default_max_batch_seconds()),
        Written::Text(t) => t.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!("expected a whole number of seconds, got {t:?}"))
        }),
    }
}

fn default_max_batch_seconds() -> u64 {
    300
}

fn default_max_batch_bytes() -> usize {
    8 << 20
}

fn default_commit_interval_ms() -> u64 {
    1000
}

fn default_commit_interval_max_ms() -> u64 {
    30_000
}

/// `commit_rows` when the spec does not set it (see [`KafkaSourceSpec::commit_rows`]).
pub const DEFAULT_COMMIT_ROWS: usize = 65_536;

fn default_commit_rows() -> usize {
    DEFAULT_COMMIT_ROWS
}
