//! Arrow schemas from `schemas/*.json` (the single source of truth), and the embedded dataset's schema:
//! `id`, `text`, metadata columns, one `emb_<dim>` column per Matryoshka dim, model id and dims in the
//! schema metadata (with the prompts) so a later writer and every query can refuse a mismatch.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use lexembed_encoder::{Dim, Prompt, RolePrompts, embedding_type};
use serde::Deserialize;

use crate::error::{Result, StoreError};

use crate::keys::{DIMS_KEY, DOCUMENT_PROMPT_KEY, MODEL_ID_KEY, QUERY_PROMPT_KEY, SCHEMA_KEY};
pub const SCHEMA_VERSION: &str = "embedded_dataset/1";
/// The documents' text column (`schemas/documents.json`), the one the encoder embeds.
pub const TEXT_COLUMN: &str = "text";

const EMBEDDED_DATASET: &str = include_str!("../../../schemas/embedded_dataset.json");
const DOCUMENTS: &str = include_str!("../../../schemas/documents.json");
const QA_PAIRS: &str = include_str!("../../../schemas/qa_pairs.json");
const EVAL_RESULTS: &str = include_str!("../../../schemas/eval_results.json");

#[derive(Deserialize)]
struct SchemaFile {
    fields: Vec<FieldSpec>,
}

#[derive(Deserialize)]
struct FieldSpec {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    nullable: bool,
}

fn parse_type(kind: &str) -> Option<DataType> {
    Some(match kind {
        "utf8" => DataType::Utf8,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float64" => DataType::Float64,
        "timestamp_us_utc" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "list<utf8>" => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        _ => return None,
    })
}

fn load(file: &'static str, text: &str) -> Result<Vec<Field>> {
    let bad = |message: String| StoreError::SchemaFile { file, message };
    let spec: SchemaFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    spec.fields
        .into_iter()
        .map(|f| {
            let t = parse_type(&f.kind)
                .ok_or_else(|| bad(format!("field {}: unknown type {}", f.name, f.kind)))?;
            Ok(Field::new(f.name, t, f.nullable))
        })
        .collect()
}

/// Input documents (`schemas/documents.json`) plus nullable Utf8 metadata columns.
pub fn documents(metadata: &[String]) -> Result<SchemaRef> {
    let mut fields = load("schemas/documents.json", DOCUMENTS)?;
    fields.extend(metadata.iter().map(|m| Field::new(m, DataType::Utf8, true)));
    Ok(Arc::new(Schema::new(fields)))
}

/// QA pairs (`schemas/qa_pairs.json`).
pub fn qa_pairs() -> Result<SchemaRef> {
    Ok(Arc::new(Schema::new(load(
        "schemas/qa_pairs.json",
        QA_PAIRS,
    )?)))
}

/// Evaluation history rows (`schemas/eval_results.json`).
pub fn eval_results() -> Result<SchemaRef> {
    Ok(Arc::new(Schema::new(load(
        "schemas/eval_results.json",
        EVAL_RESULTS,
    )?)))
}

/// Name of the vector column for `dim`.
pub fn emb_column(dim: Dim) -> String {
    format!("emb_{dim}")
}

/// The dim of a vector column name (`emb_256` → 256).
pub fn column_dim(name: &str) -> Option<Dim> {
    name.strip_prefix("emb_")?.parse().ok().map(Dim)
}

/// The embedded dataset's schema for a model, its dims and the pipeline's metadata columns.
pub fn embedded_dataset(written_by: &WrittenBy, metadata: &[String]) -> Result<SchemaRef> {
    let mut fields = load("schemas/embedded_dataset.json", EMBEDDED_DATASET)?;
    fields.extend(metadata.iter().map(|m| Field::new(m, DataType::Utf8, true)));
    fields.extend(
        written_by
            .dims
            .iter()
            .map(|&d| Field::new(emb_column(Dim(d)), embedding_type(Dim(d)), true)),
    );
    let mut meta = written_by.to_metadata();
    meta.insert(SCHEMA_KEY.to_string(), SCHEMA_VERSION.to_string());
    Ok(Arc::new(Schema::new_with_metadata(fields, meta)))
}

/// `schema` with `model_id`, the dims of its `emb_<dim>` columns and the prompts in the metadata, as
/// a pipeline writes them (for rows embedded elsewhere, e.g. by SQL `embed()`); unchanged, and `None`,
/// when it has no vector column.
pub fn stamp_written_by(
    schema: &Schema,
    model_id: &str,
    prompts: &RolePrompts,
) -> (Schema, Option<WrittenBy>) {
    let dims =
        lexembed_encoder::widest_first(schema.fields().iter().filter_map(|f| column_dim(f.name())));
    if dims.is_empty() {
        return (schema.clone(), None);
    }
    let written_by = WrittenBy::new(model_id, &dims, prompts.clone());
    let mut meta = schema.metadata().clone();
    meta.extend(written_by.to_metadata());
    let stamped = schema.clone().with_metadata(meta);
    (stamped, Some(written_by))
}

/// Dims as schema metadata and commits record them: `1024,512,64`. The inverse of `parse_dims`.
pub fn format_dims(dims: &[impl std::fmt::Display]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn parse_dims(s: &str) -> Vec<u32> {
    s.split(',').filter_map(|d| d.trim().parse().ok()).collect()
}

/// What a dataset's schema metadata says about the model that wrote it: vectors from another model,
/// other dims or other prompts do not belong beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBy {
    pub model_id: String,
    pub dims: Vec<u32>,
    pub prompts: RolePrompts,
}

impl WrittenBy {
    pub fn new(model_id: &str, dims: &[Dim], prompts: RolePrompts) -> Self {
        Self {
            model_id: model_id.to_string(),
            dims: dims.iter().map(|d| d.0).collect(),
            prompts,
        }
    }

    /// The keys that record it, in schema metadata and commit properties (a prompt only when set).
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::from([
            (MODEL_ID_KEY.to_string(), self.model_id.clone()),
            (DIMS_KEY.to_string(), format_dims(&self.dims)),
        ]);
        for (key, prompt) in [
            (DOCUMENT_PROMPT_KEY, &self.prompts.document),
            (QUERY_PROMPT_KEY, &self.prompts.query),
        ] {
            if let Some(text) = prompt.text() {
                m.insert(key.to_string(), text.to_string());
            }
        }
        m
    }
}

impl std::fmt::Display for WrittenBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "model {} with dims {:?}", self.model_id, self.dims)?;
        if self.prompts != RolePrompts::default() {
            write!(f, " and prompts ({})", self.prompts)?;
        }
        Ok(())
    }
}

/// The model, dims and prompts recorded in schema metadata or commit properties; `None` without a
/// model and dims (a dataset lexembed did not embed). An absent prompt is no prompt.
pub fn written_by(metadata: &HashMap<String, String>) -> Option<WrittenBy> {
    let prompt = |key| {
        metadata
            .get(key)
            .map_or_else(Prompt::none, |t| Prompt::literal(t))
    };
    Some(WrittenBy {
        model_id: metadata.get(MODEL_ID_KEY)?.clone(),
        dims: parse_dims(metadata.get(DIMS_KEY)?),
        prompts: RolePrompts {
            document: prompt(DOCUMENT_PROMPT_KEY),
            query: prompt(QUERY_PROMPT_KEY),
        },
    })
}

/// Fields that differ between two schemas, ignoring metadata and nullability, or `None` when equal.
pub fn difference(expected: &Schema, found: &Schema) -> Option<String> {
    let show = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
    };
    let (e, f) = (show(expected), show(found));
    if e == f {
        return None;
    }
    let missing: Vec<&String> = e.iter().filter(|x| !f.contains(x)).collect();
    let extra: Vec<&String> = f.iter().filter(|x| !e.contains(x)).collect();
    Some(format!(
        "pipeline writes {missing:?} that the dataset lacks; dataset has {extra:?} that the pipeline does not write"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(model: &str, dims: &[Dim]) -> WrittenBy {
        WrittenBy::new(model, dims, RolePrompts::default())
    }

    /// Prompts survive the round trip through metadata; no prompt writes no key.
    #[test]
    fn prompts_are_recorded_beside_the_model() {
        let prompts = RolePrompts {
            document: Prompt::literal("passage: "),
            query: Prompt::literal("query: "),
        };
        let w = WrittenBy::new("e5", &[Dim(384)], prompts);
        let meta = w.to_metadata();
        assert_eq!(meta[DOCUMENT_PROMPT_KEY], "passage: ");
        assert_eq!(written_by(&meta), Some(w));
        let plain = by("m", &[Dim(8)]).to_metadata();
        assert!(!plain.contains_key(QUERY_PROMPT_KEY));
        assert_eq!(written_by(&plain).unwrap().prompts, RolePrompts::default());
    }

    #[test]
    fn schema_files_load() {
        assert_eq!(documents(&["law".into()]).unwrap().fields().len(), 3);
        assert_eq!(qa_pairs().unwrap().field(2).name(), "relevant_ids");
        assert_eq!(eval_results().unwrap().fields().len(), 8);
    }

    #[test]
    fn embedded_dataset_has_one_vector_column_per_dim_and_records_the_model() {
        let s = embedded_dataset(&by("m", &[Dim(384), Dim(64)]), &["law".into()]).unwrap();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "text", "law", "emb_384", "emb_64"]);
        assert_eq!(s.field(4).data_type(), &embedding_type(Dim(64)));
        let w = written_by(s.metadata()).unwrap();
        assert_eq!(
            w,
            WrittenBy {
                model_id: "m".into(),
                dims: vec![384, 64],
                prompts: RolePrompts::default(),
            }
        );
        assert_eq!(column_dim("emb_64"), Some(Dim(64)));
        assert_eq!(column_dim("text"), None);
    }

    #[test]
    fn difference_names_the_columns() {
        let a = embedded_dataset(&by("m", &[Dim(64)]), &[]).unwrap();
        let b = embedded_dataset(&by("m", &[Dim(32)]), &[]).unwrap();
        let d = difference(&a, &b).unwrap();
        assert!(d.contains("emb_64") && d.contains("emb_32"), "{d}");
        assert!(difference(&a, &a).is_none());
    }
}
