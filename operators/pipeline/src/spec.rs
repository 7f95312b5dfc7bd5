//! The pipeline spec: what a user writes in `pipelines/*.yaml`, parsed into typed structs.
//!
//! Owns parsing (`${ENV}` replaced inside parsed string values, unknown keys and wrong types reported
//! with file, line and column) and validation of combinations serde cannot express. The JSON Schema that editors use is
//! generated from these types (`lexembed schema`). Runs nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};

/// A pipeline: where text comes from, how it is embedded, where vectors go.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Name recorded with every commit; `--resume` only skips sources this pipeline committed.
    pub name: String,
    pub source: SourceSpec,
    #[serde(default)]
    pub encoder: EncoderSpec,
    pub sink: SinkSpec,
    /// Evaluation of the sink dataset over held-out QA pairs (`lexembed eval --pipeline FILE`).
    #[serde(default)]
    pub eval: Option<EvalSpec>,
}

/// Scheduled IR evaluation of the dataset this pipeline writes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// QA pairs: JSONL, Parquet or a Lance table (relative to the spec file).
    pub qa: String,
    /// Lance table the results are appended to.
    #[serde(default)]
    pub history: Option<String>,
    /// Cron schedule (five fields, crontab(5)), e.g. "0 3 * * *" (UTC), or with a time zone
    /// `{cron: "0 3 * * *", tz: Europe/Madrid}`; without one, `lexembed eval --pipeline` runs once.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// Dims to evaluate (default: every vector column of the dataset).
    #[serde(default)]
    pub dims: Vec<u32>,
    /// Fail when a watched metric falls more than this against the previous comparable run.
    #[serde(default)]
    pub max_drop: Option<f64>,
    /// Metrics watched for drops (default cosine_ndcg@10).
    #[serde(default)]
    pub watch: Vec<String>,
    /// Floors: metric → smallest allowed value at every dim.
    #[serde(default)]
    pub min: BTreeMap<String, f64>,
}

/// When a scheduled job runs: a cron expression read in UTC, or on a time zone's wall clock.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ScheduleSpec {
    /// Five fields in UTC: `"0 3 * * *"`.
    Utc(String),
    /// `{cron: "0 3 * * *", tz: Europe/Madrid}`: 03:00 Madrid time, summer and winter.
    Zoned(ZonedSchedule),
}

/// A cron expression on a time zone's wall clock.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZonedSchedule {
    /// Five fields: minute hour day-of-month month day-of-week.
    pub cron: String,
    /// IANA time zone name, e.g. Europe/Madrid (default UTC).
    #[serde(default)]
    pub tz: Option<String>,
}

impl ScheduleSpec {
    /// The cron expression.
    pub fn cron(&self) -> &str {
        match self {
            Self::Utc(cron) | Self::Zoned(ZonedSchedule { cron, .. }) => cron,
        }
    }

    /// The time zone, when one is named.
    pub fn tz(&self) -> Option<&str> {
        match self {
            Self::Utc(_) => None,
            Self::Zoned(z) => z.tz.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// JSONL, CSV or Parquet files (one path or a glob).
    File,
    /// A Kafka consumer group (the `kafka:` block); runs until stopped.
    Kafka,
    /// A SQL query over tables (the `sql:` block) whose rows are the documents.
    Sql,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Jsonl,
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRecord {
    /// Stop the run; nothing of it is committed.
    #[default]
    Fail,
    /// Skip the record, count it and log why.
    Skip,
}

/// Where documents come from: one kind of input (typed, so a Kafka run always has its `kafka` block)
/// and the record settings every kind shares. Written as `kind:` plus that kind's key
/// ([`SourceFields`]): serde's `flatten` cannot sit beside `deny_unknown_fields`, so the YAML shape
/// is read into [`SourceFields`] (unknown keys refused with their line) and converted here.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "SourceFields", into = "SourceFields")]
pub struct SourceSpec {
    pub input: SourceInput,
    /// Field holding the document id.
    pub id_field: String,
    /// Field holding the text to embed.
    pub text_field: String,
    /// Fields copied to the dataset as nullable text columns.
    pub metadata_fields: Vec<String>,
    pub on_bad_record: OnBadRecord,
    /// Rows per record batch (and per encoder call).
    pub batch_rows: usize,
    /// Longest text accepted, in bytes.
    pub max_text_bytes: usize,
    /// Longest id accepted, in bytes.
    pub max_id_bytes: usize,
    /// Longest value of each metadata field, in bytes.
    pub max_metadata_bytes: usize,
    /// Whether a record whose text is null deletes its id (set by `sink.mode: upsert`; a Kafka
    /// tombstone deletes its key).
    pub deletes: bool,
}

/// The three kinds of source.
#[derive(Debug, Clone)]
pub enum SourceInput {
    /// Files: one path or a glob, relative to the spec file; the format from the extension unless set.
    File {
        path: String,
        format: Option<FileFormat>,
    },
    /// A Kafka consumer group; runs until stopped.
    Kafka(KafkaSourceSpec),
    /// A SQL query whose rows are the documents; runs once.
    Sql(SqlSourceSpec),
}

impl SourceInput {
    /// As the spec's `kind` spells it.
    pub fn kind(&self) -> SourceKind {
        match self {
            Self::File { .. } => SourceKind::File,
            Self::Kafka(_) => SourceKind::Kafka,
            Self::Sql(_) => SourceKind::Sql,
        }
    }
}

impl SourceKind {
    /// As the spec spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Kafka => "kafka",
            Self::Sql => "sql",
        }
    }
}

/// The `source:` block as written: `kind` and the key that kind needs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceFields {
    pub kind: SourceKind,
    /// kind file: file path or glob (`data/*.jsonl`); relative paths are relative to the spec file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// kind kafka: brokers, topics, group, dead letters, micro-batching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSourceSpec>,
    /// kind sql: a query and the tables it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlSourceSpec>,
    /// kind file: format; default from the extension (.jsonl/.ndjson/.json: JSON objects one per
    /// line, or one array of them; .csv; .parquet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// Field holding the document id (strings; JSON numbers are accepted and written as text).
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Field holding the text to embed.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Fields copied to the dataset as nullable text columns.
    #[serde(default)]
    pub metadata_fields: Vec<String>,
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
    /// Rows per record batch (and per encoder call).
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Longest text accepted, in bytes; longer records are bad records.
    #[serde(default = "default_max_text_bytes")]
    pub max_text_bytes: usize,
    /// Longest id accepted, in bytes; longer ids make bad records.
    #[serde(default = "default_max_id_bytes")]
    pub max_id_bytes: usize,
    /// Longest value of each metadata field, in bytes; longer values make bad records.
    #[serde(default = "default_max_metadata_bytes")]
    pub max_metadata_bytes: usize,
}

/// What [`SourceSpec`]'s conversion refuses: a kind without its key, or a key of another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SourceShapeError {
    #[error("source.path: kind file needs a path (file or glob)")]
    FileWithoutPath,
    #[error("source.kafka: kind kafka needs a kafka block (brokers, topics, group_id)")]
    KafkaWithoutBlock,
    #[error("source.sql: kind sql needs a sql block (query, tables)")]
    SqlWithoutBlock,
    #[error("source.{0}: only for kind {1}")]
    OtherKindsKey(&'static str, &'static str),
}

impl SourceShapeError {
    /// Field and reason, when `message` is one of these (serde carries them as text).
    fn recognise(message: &str) -> Option<(String, String)> {
        let keys = [
            ("path", "file"),
            ("format", "file"),
            ("kafka", "kafka"),
            ("sql", "sql"),
        ];
        let known = [
            Self::FileWithoutPath,
            Self::KafkaWithoutBlock,
            Self::SqlWithoutBlock,
        ]
        .into_iter()
        .chain(keys.map(|(key, kind)| Self::OtherKindsKey(key, kind)));
        known
            .map(|e| e.to_string())
            .find(|text| text == message)
            .and_then(|text| {
                let (field, why) = text.split_once(": ")?;
                Some((field.to_string(), why.to_string()))
            })
    }
}

impl TryFrom<SourceFields> for SourceSpec {
    type Error = SourceShapeError;

    /// The kind's own key must be there, and no other kind's.
    fn try_from(f: SourceFields) -> std::result::Result<Self, SourceShapeError> {
        let misplaced = [
            ("path", f.path.is_some(), SourceKind::File),
            ("format", f.format.is_some(), SourceKind::File),
            ("kafka", f.kafka.is_some(), SourceKind::Kafka),
            ("sql", f.sql.is_some(), SourceKind::Sql),
        ];
        if let Some((key, _, kind)) = misplaced.iter().find(|(_, set, k)| *set && *k != f.kind) {
            return Err(SourceShapeError::OtherKindsKey(key, kind.name()));
        }
        let input = match (f.kind, f.path, f.kafka, f.sql) {
            (SourceKind::File, Some(path), ..) => SourceInput::File {
                path,
                format: f.format,
            },
            (SourceKind::Kafka, _, Some(kafka), _) => SourceInput::Kafka(kafka),
            (SourceKind::Sql, .., Some(sql)) => SourceInput::Sql(sql),
            (SourceKind::File, ..) => return Err(SourceShapeError::FileWithoutPath),
            (SourceKind::Kafka, ..) => return Err(SourceShapeError::KafkaWithoutBlock),
            (SourceKind::Sql, ..) => return Err(SourceShapeError::SqlWithoutBlock),
        };
        Ok(Self {
            input,
            id_field: f.id_field,
            text_field: f.text_field,
            metadata_fields: f.metadata_fields,
            on_bad_record: f.on_bad_record,
            batch_rows: f.batch_rows,
            max_text_bytes: f.max_text_bytes,
            max_id_bytes: f.max_id_bytes,
            max_metadata_bytes: f.max_metadata_bytes,
            deletes: false,
        })
    }
}

impl From<SourceSpec> for SourceFields {
    fn from(s: SourceSpec) -> Self {
        let kind = s.input.kind();
        let (mut path, mut format, mut kafka, mut sql) = (None, None, None, None);
        match s.input {
            SourceInput::File { path: p, format: f } => (path, format) = (Some(p), f),
            SourceInput::Kafka(k) => kafka = Some(k),
            SourceInput::Sql(q) => sql = Some(q),
        }
        Self {
            kind,
            path,
            kafka,
            sql,
            format,
            id_field: s.id_field,
            text_field: s.text_field,
            metadata_fields: s.metadata_fields,
            on_bad_record: s.on_bad_record,
            batch_rows: s.batch_rows,
            max_text_bytes: s.max_text_bytes,
            max_id_bytes: s.max_id_bytes,
            max_metadata_bytes: s.max_metadata_bytes,
        }
    }
}

/// Editors see the written shape, plus which key each kind requires.
impl JsonSchema for SourceSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SourceSpec".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = SourceFields::json_schema(generator);
        let needs = |kind: &str, key: &str| {
            serde_json::json!({
                "if": {"properties": {"kind": {"const": kind}}},
                "then": {"required": [key]}
            })
        };
        schema.insert(
            "allOf".into(),
            serde_json::json!([
                needs("file", "path"),
                needs("kafka", "kafka"),
                needs("sql", "sql")
            ]),
        );
        schema
    }
}

/// A SQL source: the query's rows are the documents (`id_field`, `text_field`, `metadata_fields` name
/// its columns; any type is read as text). Runs once, like a file source: one commit.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlSourceSpec {
    /// e.g. `SELECT id, text, law FROM docs WHERE law LIKE 'boe-a-2015%'`.
    pub query: String,
    /// Table name → file: `.lance` (a Lance dataset, local or `s3://`), `.parquet`, `.csv` (with a
    /// header), `.jsonl`/`.json` (newline-delimited). Relative paths are relative to the spec file.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
}

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

/// Settings that may hold credentials (`sasl.password`, `aws_secret_access_key`, …) show their keys
/// only: specs end up in logs and error reports.
fn redacted(map: &BTreeMap<String, String>) -> BTreeMap<&str, &'static str> {
    map.keys().map(|k| (k.as_str(), "<redacted>")).collect()
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

impl std::fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSpec")
            .field("uri", &self.uri)
            .field("mode", &self.mode)
            .field("resume", &self.resume)
            .field("storage_options", &redacted(&self.storage_options))
            .field("retry", &self.retry)
            .field("indexes", &self.indexes)
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

/// How text is embedded.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    /// Model directory; default: $LEXEMBED_MODEL, else the all-MiniLM-L6-v2 export setup leaves.
    #[serde(default)]
    pub model: Option<String>,
    /// cpu (default), cuda or tensorrt.
    #[serde(default)]
    pub provider: Option<ProviderSpec>,
    #[serde(default)]
    pub device_id: Option<i32>,
    /// Matryoshka dims written (one column each); default: every dim the model serves.
    #[serde(default)]
    pub dims: Vec<u32>,
    /// Most padded tokens (rows × longest row) per model call; default 1,024 on CPU, 16,384 on GPUs.
    #[serde(default)]
    pub token_budget: Option<usize>,
    /// Most rows per model call; default 256 on CPU, the token budget / 16 on GPUs.
    #[serde(default)]
    pub max_batch_rows: Option<usize>,
    /// Threads inside one ONNX Runtime operator; default every core on CPU, 1 on GPUs.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Graph precision: auto (default: fp16 on cuda/tensorrt when the model has onnx/model_fp16.onnx,
    /// else fp32), fp32 or fp16.
    #[serde(default)]
    pub precision: Option<PrecisionSpec>,
    /// Model sessions running at once (own thread and CUDA stream each); default 1 on CPU, 2 on GPUs.
    #[serde(default)]
    pub streams: Option<usize>,
    /// Document batches read and tokenized ahead of the model (bounds memory); default 2.
    #[serde(default)]
    pub ahead: Option<usize>,
    /// TensorRT engine and timing cache directory (relative to the spec file); engines are rebuilt on
    /// every start without it.
    #[serde(default)]
    pub trt_cache: Option<String>,
    /// The prompt put before every document: one of the model's prompt names (`document`,
    /// `passage`, …), `none`, or `{text: "passage: "}`; default: the model's document prompt
    /// (`config_sentence_transformers.json`), none when it has none. Recorded in the dataset with the
    /// model's query prompt, which every query against it must use.
    #[serde(default)]
    pub prompt: Option<PromptSpec>,
}

/// How a spec chooses the document prompt (see `EncoderSpec::prompt`). Read by hand: serde's
/// untagged enums say only "data did not match any variant".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PromptSpec {
    /// `none`, or one of the model's prompt names.
    Name(String),
    /// A literal prompt.
    Text(PromptText),
}

/// `{text: "passage: "}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptText {
    pub text: String,
}

impl<'de> Deserialize<'de> for PromptSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(PromptVisitor)
    }
}

struct PromptVisitor;

impl<'de> serde::de::Visitor<'de> for PromptVisitor {
    type Value = PromptSpec;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("one of the model's prompt names, none, or {text: \"…\"}")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<PromptSpec, E> {
        Ok(PromptSpec::Name(v.to_string()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        map: A,
    ) -> std::result::Result<PromptSpec, A::Error> {
        let text = PromptText::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(PromptSpec::Text(text))
    }
}

impl From<PromptSpec> for lexembed_encoder::PromptChoice {
    fn from(p: PromptSpec) -> Self {
        match p {
            PromptSpec::Name(n) if n == "none" => Self::None,
            PromptSpec::Name(n) => Self::Named(n),
            PromptSpec::Text(PromptText { text }) => Self::Literal(text),
        }
    }
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderSpec {
    #[default]
    Cpu,
    Cuda,
    #[serde(alias = "trt")]
    Tensorrt,
}

impl From<ProviderSpec> for lexembed_encoder::Provider {
    /// With the encoder's default options for that provider (device, engine cache are set apart).
    fn from(p: ProviderSpec) -> Self {
        match p {
            ProviderSpec::Cpu => Self::Cpu,
            ProviderSpec::Cuda => Self::Cuda(lexembed_encoder::CudaOptions::default()),
            ProviderSpec::Tensorrt => Self::tensorrt(),
        }
    }
}

/// Which graph of the model directory runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionSpec {
    #[default]
    Auto,
    #[serde(alias = "float32")]
    Fp32,
    #[serde(alias = "float16")]
    Fp16,
}

impl From<PrecisionSpec> for lexembed_encoder::Precision {
    fn from(p: PrecisionSpec) -> Self {
        match p {
            PrecisionSpec::Auto => Self::Auto,
            PrecisionSpec::Fp32 => Self::Fp32,
            PrecisionSpec::Fp16 => Self::Fp16,
        }
    }
}

/// Which index to build: a vector index (cosine) or the text column's full-text index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IndexTypeSpec {
    #[default]
    IvfPq,
    IvfHnswSq,
    /// Full-text (inverted) index with a Spanish analyzer, on the `text` column.
    Fts,
}

impl From<IndexTypeSpec> for lexembed_lance::IndexKind {
    fn from(k: IndexTypeSpec) -> Self {
        match k {
            IndexTypeSpec::IvfPq => Self::IvfPq,
            IndexTypeSpec::IvfHnswSq => Self::IvfHnswSq,
            IndexTypeSpec::Fts => Self::Fts,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SinkModeSpec {
    /// Create the dataset; refuse an existing one.
    #[default]
    Create,
    /// Add rows (the dataset is created when missing).
    Append,
    /// Replace the dataset's rows.
    Overwrite,
    /// Replace rows whose id exists, add the others; a record with a null text (a Kafka tombstone)
    /// deletes its id. The latest record of an id wins.
    Upsert,
}

impl SinkModeSpec {
    /// Whether a write keeps the rows it does not name (append, upsert): what resuming and streaming
    /// need.
    pub fn keeps_rows(self) -> bool {
        matches!(self, Self::Append | Self::Upsert)
    }

    /// As the spec spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Append => "append",
            Self::Overwrite => "overwrite",
            Self::Upsert => "upsert",
        }
    }
}

impl From<SinkModeSpec> for lexembed_lance::SinkMode {
    fn from(mode: SinkModeSpec) -> Self {
        match mode {
            SinkModeSpec::Create => Self::Create,
            SinkModeSpec::Append => Self::Append,
            SinkModeSpec::Overwrite => Self::Overwrite,
            SinkModeSpec::Upsert => Self::Upsert,
        }
    }
}

/// Where vectors go.
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// Lance dataset: a local path (relative to the spec file) or `s3://bucket/path`.
    pub uri: String,
    /// create (the default: refuse an existing dataset), append, overwrite, or upsert (replace the
    /// row of each id, add new ids; a null text or a Kafka tombstone deletes its id).
    #[serde(default)]
    pub mode: SinkModeSpec,
    /// With mode append or upsert: skip source files an earlier run of this pipeline already committed.
    #[serde(default)]
    pub resume: bool,
    /// Lance object-store options (endpoint, region, credentials via ${ENV}).
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
    /// How requests to an object store that is slow or unreachable for a while are tried again.
    #[serde(default)]
    pub retry: StoreRetrySpec,
    /// Vector indexes to build after the write.
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
}

/// Object-store retries (the object_store crate's `RetryConfig`, which Lance configures from the
/// store options `client_max_retries` and `client_retry_timeout`; set there, those win). A failed
/// request (connection refused or reset, timeout, 5xx) is tried again after a growing, jittered
/// backoff (0.1 s doubling to 15 s) while both bounds allow; past them the run fails with the store's
/// error, and a restart resumes from the last commit. Lance's own default, 3 retries, gives up within
/// about a second: a store restart or a network blip then stops the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreRetrySpec {
    /// Retries of one request before the run fails. Default 30: with the jittered backoff the
    /// timeout decides first (10 retries waited 18 s in all against a store down for 30 s, and the
    /// run failed).
    #[serde(default = "default_store_max_retries")]
    pub max_retries: usize,
    /// No retry starts later than this many seconds after the request's first try. Default 60.
    #[serde(default = "default_store_retry_timeout_s")]
    pub timeout_s: u64,
}

impl Default for StoreRetrySpec {
    fn default() -> Self {
        Self {
            max_retries: default_store_max_retries(),
            timeout_s: default_store_retry_timeout_s(),
        }
    }
}

fn default_store_max_retries() -> usize {
    30
}

fn default_store_retry_timeout_s() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// Vector column, e.g. emb_256; `text` for a full-text index.
    pub column: String,
    /// ivf_pq (default) or ivf_hnsw_sq for vector columns; fts for the text column (`lexembed search
    /// --mode fts|hybrid`).
    #[serde(default, rename = "type")]
    pub kind: IndexTypeSpec,
    #[serde(default)]
    pub num_partitions: Option<usize>,
    #[serde(default)]
    pub num_sub_vectors: Option<usize>,
}

fn default_id_field() -> String {
    "id".into()
}
fn default_text_field() -> String {
    "text".into()
}
fn default_batch_rows() -> usize {
    512
}
fn default_max_text_bytes() -> usize {
    1 << 20
}
fn default_max_id_bytes() -> usize {
    1 << 10
}
fn default_max_metadata_bytes() -> usize {
    64 << 10
}

/// A parsed spec and the file it came from (relative paths resolve against its directory).
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub file: PathBuf,
    pub spec: PipelineSpec,
}

impl LoadedSpec {
    pub fn load(file: &Path) -> Result<Self> {
        let raw = std::fs::read_to_string(file).map_err(|e| PipelineError::Io {
            path: file.to_path_buf(),
            source: e,
        })?;
        Ok(Self {
            file: file.to_path_buf(),
            spec: parse(&raw, file)?,
        })
    }

    /// `p` resolved against the spec file's directory unless absolute or a URI.
    pub fn resolve(&self, p: &str) -> String {
        if p.contains("://") || Path::new(p).is_absolute() {
            return p.to_string();
        }
        let base = self.file.parent().unwrap_or(Path::new("."));
        base.join(p).display().to_string()
    }
}

/// Parses a spec, then validates it. `${VAR}` / `${VAR:-default}` are replaced inside string values
/// after the YAML is parsed, never in its text: a value is only ever text (a secret such as
/// `p@ss #2`, one starting with `!`, `&` or `*`, or one with a newline stays exactly that string).
/// A variable in a typed field (`provider: ${GPU:-cpu}`) is read as that type once replaced.
pub fn parse(raw: &str, file: &Path) -> Result<PipelineSpec> {
    let located = |e: yaml_serde::Error| {
        let message = e.to_string();
        // The source's kind/key check runs after its mapping is read, where the parser's position
        // is no longer the field's: name the field instead of a wrong line.
        if let Some((field, message)) = SourceShapeError::recognise(&message) {
            let file = file.to_path_buf();
            return PipelineError::Invalid {
                file,
                field,
                message,
            };
        }
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        PipelineError::Spec {
            file: file.to_path_buf(),
            line,
            column,
            message,
        }
    };
    // The spec as written first: syntax, unknown keys and wrong types, with line and column. An
    // error on a line holding a `${VAR}` waits for the value (`provider: ${GPU:-cpu}` is a provider
    // only once replaced): the pass after substitution reports it, without the line.
    check_variables(raw, file)?;
    if let Err(e) = yaml_serde::from_str::<PipelineSpec>(raw) {
        let on_variable = e
            .location()
            .and_then(|l| raw.lines().nth(l.line().saturating_sub(1)))
            .is_some_and(|line| line.contains("${"));
        if !on_variable {
            return Err(located(e));
        }
    }
    let mut value: yaml_serde::Value = yaml_serde::from_str(raw).map_err(located)?;
    substitute(&mut value, file)?;
    let spec = PipelineSpec::deserialize(value).map_err(|e| PipelineError::Spec {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("after replacing ${{VAR}}s: {e}"),
    })?;
    validate(&spec, file)?;
    let mut spec = spec;
    spec.source.deletes = spec.sink.mode == SinkModeSpec::Upsert;
    Ok(spec)
}

/// Replaces `${VAR}`s inside every string value of `value` (mapping keys are left as written).
fn substitute(value: &mut yaml_serde::Value, file: &Path) -> Result<()> {
    use yaml_serde::Value;
    match value {
        Value::String(text) if text.contains("${") => *text = interpolate(text, file)?,
        Value::Sequence(items) => {
            for item in items {
                substitute(item, file)?;
            }
        }
        Value::Mapping(map) => {
            for (_, v) in map.iter_mut() {
                substitute(v, file)?;
            }
        }
        Value::Tagged(tagged) => substitute(&mut tagged.value, file)?,
        _ => {}
    }
    Ok(())
}

/// Every `${VAR}` of the text is closed and set (or has a default): errors name the line and column,
/// which the parsed values no longer carry.
fn check_variables(raw: &str, file: &Path) -> Result<()> {
    for (n, line) in raw.lines().enumerate() {
        interpolate(line, file).map_err(|e| match e {
            PipelineError::Spec {
                column, message, ..
            } => PipelineError::Spec {
                file: file.to_path_buf(),
                line: n + 1,
                column,
                message,
            },
            other => other,
        })?;
    }
    Ok(())
}

fn validate(spec: &PipelineSpec, file: &Path) -> Result<()> {
    let bad = |field: &str, message: String| PipelineError::Invalid {
        file: file.to_path_buf(),
        field: field.to_string(),
        message,
    };
    if let SourceInput::Kafka(k) = &spec.source.input {
        if k.topics.is_empty() {
            return Err(bad("source.kafka.topics", "list at least one topic".into()));
        }
        if !spec.sink.mode.keeps_rows() {
            return Err(bad(
                "sink.mode",
                "a kafka source adds to the dataset: set mode: append (or upsert, to replace and delete rows by id)".into(),
            ));
        }
        if k.commit_rows == 0 {
            return Err(bad(
                "source.kafka.commit_rows",
                "must be at least 1 (it bounds the rows gathered before a commit)".into(),
            ));
        }
        if k.commit_interval_max_ms < k.commit_interval_ms {
            return Err(bad(
                "source.kafka.commit_interval_max_ms",
                format!(
                    "{} is below commit_interval_ms ({}): the interval only lengthens from there",
                    k.commit_interval_max_ms, k.commit_interval_ms
                ),
            ));
        }
        let owned = ["group.id", "bootstrap.servers", "enable.auto.commit"];
        if let Some(key) = k.properties.keys().find(|p| owned.contains(&p.as_str())) {
            return Err(bad(
                &format!("source.kafka.properties.{key}"),
                "is set by lexembed (use brokers / group_id)".into(),
            ));
        }
    }
    if spec.source.batch_rows == 0 {
        return Err(bad("source.batch_rows", "must be at least 1".into()));
    }
    if spec.sink.resume && !spec.sink.mode.keeps_rows() {
        return Err(bad(
            "sink.resume",
            "only makes sense with mode: append or upsert".into(),
        ));
    }
    for (i, ix) in spec.sink.indexes.iter().enumerate() {
        if ix.kind == IndexTypeSpec::Fts {
            if ix.column != lexembed_lance::schema::TEXT_COLUMN {
                return Err(bad(
                    &format!("sink.indexes[{i}].column"),
                    format!(
                        "{} cannot take a full-text index: it goes on the text column, {}",
                        ix.column,
                        lexembed_lance::schema::TEXT_COLUMN
                    ),
                ));
            }
            continue;
        }
        let dim = lexembed_lance::schema::column_dim(&ix.column);
        let listed =
            spec.encoder.dims.is_empty() || dim.is_some_and(|d| spec.encoder.dims.contains(&d.0));
        if dim.is_none() || !listed {
            return Err(bad(
                &format!("sink.indexes[{i}].column"),
                format!(
                    "{} is not one of the vector columns this pipeline writes (emb_<dim>)",
                    ix.column
                ),
            ));
        }
    }
    if let Some(ev) = &spec.eval
        && let Some(schedule) = &ev.schedule
    {
        crate::schedule::Schedule::parse_in(schedule.cron(), schedule.tz())
            .map_err(|e| bad("eval.schedule", e))?;
    }
    let reserved = ["id", "text"];
    if let Some(m) = spec
        .source
        .metadata_fields
        .iter()
        .find(|m| reserved.contains(&m.as_str()) || m.starts_with("emb_"))
    {
        return Err(bad(
            "source.metadata_fields",
            format!("{m} is a reserved column name"),
        ));
    }
    Ok(())
}

/// Replaces `${VAR}` and `${VAR:-default}`; an unset variable without default is an error naming it
/// and its line. Values are never logged (they may be secrets).
pub fn interpolate(raw: &str, file: &Path) -> Result<String> {
    let mut out = String::with_capacity(raw.len());
    for (n, line) in raw.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| PipelineError::Spec {
                file: file.to_path_buf(),
                line: n + 1,
                column: line.len() - rest.len() + start + 1,
                message: "unclosed ${".into(),
            })?;
            let expr = &after[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            match (std::env::var(name), default) {
                (Ok(v), _) => out.push_str(&v),
                (Err(_), Some(d)) => out.push_str(d),
                (Err(_), None) => {
                    return Err(PipelineError::Spec {
                        file: file.to_path_buf(),
                        line: n + 1,
                        column: line.len() - rest.len() + start + 1,
                        message: format!("environment variable {name} is not set"),
                    });
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// The JSON Schema of pipeline specs (committed as `pipelines/pipeline.schema.json`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(PipelineSpec)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "name: t\nsource:\n  kind: file\n  path: docs.jsonl\nsink:\n  uri: out.lance\n";

    fn err(text: &str) -> String {
        parse(text, Path::new("p.yaml")).unwrap_err().to_string()
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let s = parse(GOOD, Path::new("p.yaml")).unwrap();
        assert_eq!(s.source.id_field, "id");
        assert_eq!(s.source.on_bad_record, OnBadRecord::Fail);
        assert_eq!(s.sink.mode, SinkModeSpec::Create);
    }

    /// `encoder.prompt` is a name, `none`, or `{text: …}`; anything else names the field and says
    /// what it takes.
    #[test]
    fn prompt_forms_read_and_bad_ones_say_what_is_expected() {
        let with = |p: &str| format!("{GOOD}encoder:\n  prompt: {p}\n");
        let read = |p: &str| parse(&with(p), Path::new("p.yaml")).unwrap().encoder.prompt;
        use lexembed_encoder::PromptChoice;
        let choice = |p: &str| read(p).map(PromptChoice::from);
        assert_eq!(choice("none"), Some(PromptChoice::None));
        assert_eq!(choice("query"), Some(PromptChoice::Named("query".into())));
        assert_eq!(
            choice("{text: 'passage: '}"),
            Some(PromptChoice::Literal("passage: ".into()))
        );
        let e = err(&with("{txt: 'a'}"));
        assert!(
            e.contains("encoder.prompt") && e.contains("unknown field `txt`"),
            "{e}"
        );
        let e = err(&with("[a]"));
        assert!(e.contains("encoder.prompt") && e.contains("{text:"), "{e}");
    }

    #[test]
    fn syntax_errors_and_unknown_keys_name_line_and_column() {
        let e = err("name: t\nsource: [\n");
        assert!(e.contains("p.yaml:") && e.contains("line"), "{e}");
        let e = err(&GOOD.replace("  path: docs.jsonl", "  path: docs.jsonl\n  pth: x"));
        assert!(e.contains("pth") && e.contains("p.yaml:5:"), "{e}");
        let e = err(&GOOD.replace("name: t\n", ""));
        assert!(e.contains("name"), "{e}");
        let e = err(&GOOD.replace("kind: file", "kind: ftp"));
        assert!(e.contains("ftp") && e.contains("p.yaml:3:"), "{e}");
        let e = err(&format!("{GOOD}  mode: sideways\n"));
        assert!(e.contains("sideways"), "{e}");
    }

    #[test]
    fn env_interpolation_with_defaults_and_missing_vars() {
        let raw = "a: ${LEXEMBED_TEST_UNSET_VAR:-fallback} ${HOME}\n";
        let out = interpolate(raw, Path::new("p.yaml")).unwrap();
        assert!(out.starts_with("a: fallback /"), "{out}");
        let e =
            interpolate("x: 1\nb: ${LEXEMBED_TEST_UNSET_VAR}\n", Path::new("p.yaml")).unwrap_err();
        assert!(
            e.to_string().contains("p.yaml:2:4")
                && e.to_string().contains("LEXEMBED_TEST_UNSET_VAR"),
            "{e}"
        );
    }

    /// A value from the environment is a string, whatever it holds: `p@ss #2` is not cut at ` #` (a
    /// comment), `*x` is no alias, a newline injects no key (the old text substitution did all three).
    #[test]
    fn env_values_stay_strings_and_inject_nothing() {
        let spec = |var: &str, value: &str| {
            // SAFETY: each case sets a variable of its own that no other thread reads.
            unsafe { std::env::set_var(var, value) };
            parse(
                &GOOD.replace(
                    "  uri: out.lance\n",
                    &format!("  uri: out.lance\n  storage_options:\n    secret: ${{{var}}}\n    prefixed: s3://${{{var}}}/x\n"),
                ),
                Path::new("p.yaml"),
            )
        };
        for (var, value) in [
            ("LEXEMBED_TEST_SECRET_HASH", "p@ss #2"),
            ("LEXEMBED_TEST_SECRET_ALIAS", "*x"),
            ("LEXEMBED_TEST_SECRET_TAG", "!!int 5"),
            ("LEXEMBED_TEST_SECRET_NUMBER", "123456"),
        ] {
            let s = spec(var, value).unwrap();
            assert_eq!(s.sink.storage_options["secret"], value);
            assert_eq!(
                s.sink.storage_options["prefixed"],
                format!("s3://{value}/x")
            );
        }
        let s = spec("LEXEMBED_TEST_SECRET_SHOWN", "hunter2-secret").unwrap();
        let shown = format!("{s:?}");
        assert!(
            shown.contains("secret") && !shown.contains("hunter2"),
            "a credential in Debug: {shown}"
        );
        let injected = spec("LEXEMBED_TEST_SECRET_NEWLINE", "x\n  mode: overwrite").unwrap();
        assert_eq!(
            injected.sink.mode,
            SinkModeSpec::Create,
            "a newline injected a key"
        );
        assert_eq!(
            injected.sink.storage_options["secret"],
            "x\n  mode: overwrite"
        );
    }

    #[test]
    fn kafka_sources_need_their_block_and_append() {
        let kafka = "name: k\nsource:\n  kind: kafka\n  kafka:\n    brokers: b:9092\n    topics: [t]\n    group_id: g\nsink:\n  uri: out.lance\n  mode: append\n";
        let s = parse(kafka, Path::new("p.yaml")).unwrap();
        let SourceInput::Kafka(k) = s.source.input else {
            panic!("not a kafka source: {:?}", s.source.input)
        };
        assert_eq!((k.linger_ms, k.start), (500, StartPosition::Earliest));
        assert_eq!(k.max_batch_seconds, 300);
        assert_eq!(
            (
                k.commit_interval_ms,
                k.commit_interval_max_ms,
                k.commit_rows
            ),
            (1000, 30_000, 65_536)
        );
        let e = err(&kafka.replace("group_id: g", "group_id: g\n    commit_rows: 0"));
        assert!(e.contains("source.kafka.commit_rows"), "{e}");
        let e = err(&kafka.replace(
            "group_id: g",
            "group_id: g\n    commit_interval_ms: 5000\n    commit_interval_max_ms: 1000",
        ));
        assert!(e.contains("source.kafka.commit_interval_max_ms"), "{e}");
        // The chart writes the batch time as a ${VAR}: a number in a string is read as the number.
        let timed = kafka.replace(
            "group_id: g",
            "group_id: g\n    max_batch_seconds: \"${LEXEMBED_TEST_UNSET_VAR:-900}\"",
        );
        let SourceInput::Kafka(k) = parse(&timed, Path::new("p.yaml")).unwrap().source.input else {
            panic!("not a kafka source")
        };
        assert_eq!(k.max_batch_seconds, 900);
        let e = err(&kafka.replace("group_id: g", "group_id: g\n    max_batch_seconds: ten"));
        assert!(e.contains("whole number of seconds"), "{e}");
        let e = err(&kafka.replace("  mode: append\n", ""));
        assert!(e.contains("sink.mode"), "{e}");
        let e = err(&kafka.replace("topics: [t]", "topics: []"));
        assert!(e.contains("source.kafka.topics"), "{e}");
        let e = err(&kafka.replace("group_id: g", "group_id: g\n    properties: {group.id: x}"));
        assert!(e.contains("source.kafka.properties.group.id"), "{e}");
        let e = err(&kafka.replace("kind: kafka", "kind: file"));
        assert!(e.contains("source.kafka: only for kind kafka"), "{e}");
        let e = err("name: k\nsource:\n  kind: kafka\nsink:\n  uri: o\n  mode: append\n");
        assert!(e.contains("source.kafka") && e.contains("p.yaml:"), "{e}");
        let e = err(&GOOD.replace("path: docs.jsonl", "path: docs.jsonl\n  sql: {query: x}"));
        assert!(e.contains("source.sql: only for kind sql"), "{e}");
    }

    /// Provider, precision and index type are typed when parsed; a `${VAR}` holding one is read
    /// after substitution, and a bad value there is still refused, naming the value.
    #[test]
    fn typed_settings_accept_variables_and_refuse_bad_values() {
        let spec = |provider: &str| {
            format!(
                "{GOOD}  indexes: [{{column: emb_64, type: ivf_hnsw_sq}}]\nencoder:\n  provider: {provider}\n  precision: fp16\n"
            )
        };
        let s = parse(&spec("tensorrt"), Path::new("p.yaml")).unwrap();
        assert_eq!(s.encoder.provider, Some(ProviderSpec::Tensorrt));
        assert_eq!(s.encoder.precision, Some(PrecisionSpec::Fp16));
        assert_eq!(s.sink.indexes[0].kind, IndexTypeSpec::IvfHnswSq);
        // SAFETY: variables of this test only.
        unsafe {
            std::env::set_var("LEXEMBED_TEST_PROVIDER_CUDA", "cuda");
            std::env::set_var("LEXEMBED_TEST_PROVIDER_BAD", "rocm");
        }
        let s = parse(&spec("${LEXEMBED_TEST_PROVIDER_CUDA}"), Path::new("p.yaml")).unwrap();
        assert_eq!(s.encoder.provider, Some(ProviderSpec::Cuda));
        let s = parse(
            &spec("${LEXEMBED_TEST_UNSET_VAR:-cpu}"),
            Path::new("p.yaml"),
        )
        .unwrap();
        assert_eq!(s.encoder.provider, Some(ProviderSpec::Cpu));
        let e = err(&spec("${LEXEMBED_TEST_PROVIDER_BAD}"));
        assert!(e.contains("rocm") && e.contains("after replacing"), "{e}");
        // Without a variable on the line, the error keeps its line and column.
        let e = err(&spec("rocm"));
        assert!(e.contains("rocm") && e.contains("p.yaml:9:"), "{e}");
    }

    #[test]
    fn eval_schedules_take_a_cron_string_or_a_zoned_cron_and_must_fire() {
        let with =
            |schedule: &str| format!("{GOOD}eval:\n  qa: qa.jsonl\n  schedule: {schedule}\n");
        let s = parse(&with("\"0 3 * * *\""), Path::new("p.yaml")).unwrap();
        let schedule = s.eval.unwrap().schedule.unwrap();
        assert_eq!((schedule.cron(), schedule.tz()), ("0 3 * * *", None));
        let zoned = with("{cron: \"0 3 * * *\", tz: Europe/Madrid}");
        let s = parse(&zoned, Path::new("p.yaml")).unwrap();
        let schedule = s.eval.unwrap().schedule.unwrap();
        assert_eq!(
            (schedule.cron(), schedule.tz()),
            ("0 3 * * *", Some("Europe/Madrid"))
        );
        for (bad, why) in [
            ("\"0 0 30 2 *\"", "never fires"),
            ("{cron: \"0 3 * * *\", tz: Mars/Olympus}", "IANA"),
            ("{cron: \"0 3 * *\"}", "minute hour day month weekday"),
        ] {
            let e = err(&with(bad));
            assert!(e.contains("eval.schedule") && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn combinations_serde_cannot_check_are_validated() {
        let e = err(&format!("{GOOD}  resume: true\n"));
        assert!(e.contains("sink.resume"), "{e}");
        let e = err(&format!("{GOOD}  indexes: [{{column: text}}]\n"));
        assert!(e.contains("sink.indexes[0].column"), "{e}");
        let e = err(&GOOD.replace(
            "  path: docs.jsonl",
            "  path: docs.jsonl\n  metadata_fields: [emb_1]",
        ));
        assert!(e.contains("reserved"), "{e}");
        for (field, value) in [("provider", "rocm"), ("precision", "int3")] {
            let e = err(&format!("{GOOD}encoder:\n  {field}: {value}\n"));
            assert!(
                e.contains(&format!("encoder.{field}")) && e.contains(value),
                "{e}"
            );
        }
        let e = err(&format!(
            "{GOOD}  indexes: [{{column: emb_64, type: hnsw}}]\n"
        ));
        assert!(e.contains("hnsw") && e.contains("ivf_pq"), "{e}");
    }
}
