//! Building document batches row by row, with the checks every format shares: id present, text
//! present and a string, not over the size limit.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

use super::{BadRecord, DocBatch};
use crate::error::{PipelineError, Result};
use crate::spec::{OnBadRecord, SourceSpec};

/// One field value as a source sees it.
pub enum Value<'a> {
    Missing,
    Null,
    Str(std::borrow::Cow<'a, str>),
    /// A non-string scalar (number, bool) rendered as text.
    Other(String),
}

impl Value<'_> {
    /// The value as text, `None` when missing or null (metadata columns are nullable text).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Other(s) => Some(s),
            Value::Missing | Value::Null => None,
        }
    }
}

/// A record that passed the checks: owned id, text and metadata values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub id: String,
    pub text: String,
    pub metadata: Vec<Option<String>>,
}

/// What a good record asks for: a row, or (with `sink.mode: upsert`, its text null) its id deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Row(Doc),
    Delete(String),
}

/// A deletion among a batch's rows: it comes after the batch's first `before_row` rows (the latest
/// change of an id wins, so its place matters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub id: String,
    pub before_row: usize,
}

/// Why a record cannot be a row, as a stable kind: summaries count by it, metrics label by it, the
/// dead-letter topic's header carries its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefusalKind {
    /// Bytes (a line, a field, a Kafka key) that are not UTF-8.
    InvalidUtf8,
    NotJson,
    /// JSON, but not an object.
    NotObject,
    /// The id is missing, null or empty (or `key_as_id` and no key).
    MissingId,
    /// The text is missing or null.
    MissingText,
    TextNotString,
    /// Text, id or a metadata value over its byte limit.
    TooLarge,
    /// A CSV row whose fields do not match the header.
    MalformedCsv,
    /// A Kafka message without a value (a tombstone).
    NoValue,
}

impl RefusalKind {
    /// The stable name (`not_json`, `too_large`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "invalid_utf8",
            Self::NotJson => "not_json",
            Self::NotObject => "not_object",
            Self::MissingId => "missing_id",
            Self::MissingText => "missing_text",
            Self::TextNotString => "text_not_string",
            Self::TooLarge => "too_large",
            Self::MalformedCsv => "malformed_csv",
            Self::NoValue => "no_value",
        }
    }
}

impl std::fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for RefusalKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Why a record cannot be a row: its kind and a message naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
}

impl Refusal {
    pub fn new(kind: RefusalKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Parses one JSON-object record (a JSONL line, a Kafka message) into a row or a deletion, or says
/// why it cannot be one. `id` overrides the id field (a Kafka key).
pub fn json_change(bytes: &[u8], spec: &SourceSpec, id: Option<&[u8]>) -> Result<Change, Refusal> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Refusal::new(RefusalKind::InvalidUtf8, format!("not valid UTF-8 ({e})")))?;
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| Refusal::new(RefusalKind::NotJson, format!("not JSON: {e}")))?;
    let serde_json::Value::Object(mut obj) = v else {
        return Err(Refusal::new(RefusalKind::NotObject, "not a JSON object"));
    };
    let mut take = |name: &str| match obj.remove(name) {
        None => Value::Missing,
        Some(serde_json::Value::Null) => Value::Null,
        Some(serde_json::Value::String(s)) => Value::Str(std::borrow::Cow::Owned(s)),
        Some(other) => Value::Other(other.to_string()),
    };
    let id = match id {
        Some(key) => match std::str::from_utf8(key) {
            Ok(k) => Value::Str(std::borrow::Cow::Owned(k.to_string())),
            Err(e) => {
                return Err(Refusal::new(
                    RefusalKind::InvalidUtf8,
                    format!("key is not valid UTF-8 ({e})"),
                ));
            }
        },
        None => take(&spec.id_field),
    };
    let text = take(&spec.text_field);
    let metadata: Vec<Option<String>> = spec
        .metadata_fields
        .iter()
        .map(|m| match take(m) {
            Value::Str(s) => Some(s.into_owned()),
            Value::Other(s) => Some(s),
            Value::Missing | Value::Null => None,
        })
        .collect();
    if let Some(deleted) = deletion(spec, &id, &text) {
        return deleted.map(Change::Delete);
    }
    check_metadata(spec, metadata.iter().map(|m| m.as_deref()))?;
    let (id, text) = check(spec, id, text, spec.max_text_bytes)?;
    Ok(Change::Row(Doc {
        id,
        text: text.into_owned(),
        metadata,
    }))
}

/// A record whose text is null is a deletion of its id where the spec takes deletions (upsert);
/// `None` when the record is not one.
pub fn deletion(spec: &SourceSpec, id: &Value, text: &Value) -> Option<Result<String, Refusal>> {
    if !spec.deletes || !matches!(text, Value::Null) {
        return None;
    }
    Some(check_id(spec, id))
}

/// Accumulates rows into the documents schema.
pub struct RowBuilder {
    schema: SchemaRef,
    id: StringBuilder,
    text: StringBuilder,
    metadata: Vec<StringBuilder>,
    pub rows: usize,
    pub skipped: Vec<BadRecord>,
    /// Deletions since the last `finish`, placed among the rows.
    deleted: Vec<Deletion>,
    on_bad: OnBadRecord,
    max_text: usize,
}

impl RowBuilder {
    pub fn new(schema: SchemaRef, spec: &SourceSpec) -> Self {
        Self {
            id: StringBuilder::new(),
            text: StringBuilder::new(),
            metadata: spec
                .metadata_fields
                .iter()
                .map(|_| StringBuilder::new())
                .collect(),
            schema,
            rows: 0,
            skipped: Vec::new(),
            deleted: Vec::new(),
            on_bad: spec.on_bad_record,
            max_text: spec.max_text_bytes,
        }
    }

    /// Adds a row, or records (or raises) why it is bad. `spec` names the fields for messages.
    pub fn push(
        &mut self,
        path: &Path,
        line: usize,
        spec: &SourceSpec,
        id: Value,
        text: Value,
        metadata: Vec<Value>,
    ) -> Result<()> {
        if let Some(deleted) = deletion(spec, &id, &text) {
            return match deleted {
                Ok(id) => {
                    self.push_delete(id);
                    Ok(())
                }
                Err(refusal) => self.bad(path, line, refusal),
            };
        }
        let checked = check_metadata(spec, metadata.iter().map(Value::as_text))
            .and_then(|()| check(spec, id, text, self.max_text));
        match checked {
            Ok((id, text)) => {
                self.id.append_value(id);
                self.text.append_value(text);
                for (b, v) in self.metadata.iter_mut().zip(&metadata) {
                    b.append_option(v.as_text());
                }
                self.rows += 1;
                Ok(())
            }
            Err(refusal) => self.bad(path, line, refusal),
        }
    }

    /// Adds a checked record.
    pub fn push_doc(&mut self, doc: &Doc) {
        self.id.append_value(&doc.id);
        self.text.append_value(&doc.text);
        for (b, v) in self.metadata.iter_mut().zip(&doc.metadata) {
            b.append_option(v.as_deref());
        }
        self.rows += 1;
    }

    /// Adds a checked change.
    pub fn push_change(&mut self, change: &Change) {
        match change {
            Change::Row(doc) => self.push_doc(doc),
            Change::Delete(id) => self.push_delete(id.clone()),
        }
    }

    /// Deletes `id` after the rows so far.
    pub fn push_delete(&mut self, id: String) {
        self.deleted.push(Deletion {
            id,
            before_row: self.rows,
        });
    }

    /// Records a bad record (skip) or fails the run (fail).
    pub fn bad(&mut self, path: &Path, line: usize, refusal: Refusal) -> Result<()> {
        let Refusal {
            kind,
            message: reason,
        } = refusal;
        match self.on_bad {
            OnBadRecord::Skip => {
                tracing::warn!(path = %path.display(), line, kind = kind.name(), %reason, "skipped bad record");
                self.skipped.push(BadRecord {
                    path: path.to_path_buf(),
                    line,
                    kind,
                    reason,
                });
                Ok(())
            }
            OnBadRecord::Fail => Err(PipelineError::BadRecord {
                path: path.to_path_buf(),
                line,
                reason,
            }),
        }
    }

    /// The rows so far as a batch, with the bad records and deletions seen, resetting the builder.
    pub fn finish(&mut self) -> Result<DocBatch> {
        let mut cols: Vec<ArrayRef> =
            vec![Arc::new(self.id.finish()), Arc::new(self.text.finish())];
        cols.extend(
            self.metadata
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        self.rows = 0;
        Ok(DocBatch {
            batch: RecordBatch::try_new(self.schema.clone(), cols)?,
            skipped: std::mem::take(&mut self.skipped),
            deleted: std::mem::take(&mut self.deleted),
        })
    }
}

fn check<'a>(
    spec: &SourceSpec,
    id: Value<'a>,
    text: Value<'a>,
    max_text: usize,
) -> Result<(String, std::borrow::Cow<'a, str>), Refusal> {
    let id = check_id(spec, &id)?;
    let text_err = |kind, what: &str| {
        Refusal::new(kind, format!("text field `{}` is {what}", spec.text_field))
    };
    let text = match text {
        Value::Str(s) => s,
        Value::Missing => return Err(text_err(RefusalKind::MissingText, "missing")),
        Value::Null => return Err(text_err(RefusalKind::MissingText, "null")),
        Value::Other(_) => return Err(text_err(RefusalKind::TextNotString, "not a string")),
    };
    if text.len() > max_text {
        return Err(Refusal::new(
            RefusalKind::TooLarge,
            format!(
                "text field `{}` has {} bytes, over the {max_text}-byte limit (source.max_text_bytes)",
                spec.text_field,
                text.len()
            ),
        ));
    }
    Ok((id, text))
}

/// The id, present, not empty, within its limit.
fn check_id(spec: &SourceSpec, id: &Value) -> Result<String, Refusal> {
    let id_err = |what: &str| {
        Refusal::new(
            RefusalKind::MissingId,
            format!("id field `{}` is {what}", spec.id_field),
        )
    };
    let id = match id {
        Value::Str(s) if !s.is_empty() => s.to_string(),
        Value::Other(s) => s.clone(),
        Value::Str(_) => return Err(id_err("empty")),
        Value::Missing => return Err(id_err("missing")),
        Value::Null => return Err(id_err("null")),
    };
    if id.len() > spec.max_id_bytes {
        return Err(Refusal::new(
            RefusalKind::TooLarge,
            format!(
                "id field `{}` has {} bytes, over the {}-byte limit (source.max_id_bytes)",
                spec.id_field,
                id.len(),
                spec.max_id_bytes
            ),
        ));
    }
    Ok(id)
}

/// Metadata values are copied to every row as they are: each is bounded like the text.
fn check_metadata<'a>(
    spec: &SourceSpec,
    values: impl Iterator<Item = Option<&'a str>>,
) -> Result<(), Refusal> {
    for (name, value) in spec.metadata_fields.iter().zip(values) {
        let len = value.map_or(0, str::len);
        if len > spec.max_metadata_bytes {
            return Err(Refusal::new(
                RefusalKind::TooLarge,
                format!(
                    "metadata field `{name}` has {len} bytes, over the {}-byte limit (source.max_metadata_bytes)",
                    spec.max_metadata_bytes
                ),
            ));
        }
    }
    Ok(())
}
