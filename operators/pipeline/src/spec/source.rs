//! The `source:` block: which kind of input (`kind:` plus that kind's key, converted into a typed
//! [`SourceInput`]), the file input's path and format, and the record settings every kind shares
//! (fields, size bounds, bad-record policy).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{KafkaSourceSpec, SqlSourceSpec};

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
    pub(super) fn recognise(message: &str) -> Option<(String, String)> {
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
