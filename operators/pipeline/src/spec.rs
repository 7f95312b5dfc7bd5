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

mod encoder;
mod eval;
mod kafka;
mod sink;
mod source;
mod sql;
#[cfg(test)]
mod tests;

pub use encoder::{EncoderSpec, PrecisionSpec, PromptSpec, PromptText, ProviderSpec};
pub use eval::{EvalSpec, ScheduleSpec, ZonedSchedule};
pub use kafka::{DEFAULT_COMMIT_ROWS, KafkaSourceSpec, StartPosition};
pub use sink::{IndexSpec, IndexTypeSpec, SinkModeSpec, SinkSpec, StoreRetrySpec};
pub use source::{
    FileFormat, OnBadRecord, SourceFields, SourceInput, SourceKind, SourceShapeError, SourceSpec,
};
pub use sql::SqlSourceSpec;

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

/// Settings that may hold credentials (`sasl.password`, `aws_secret_access_key`, …) show their keys
/// only: specs end up in logs and error reports.
fn redacted(map: &BTreeMap<String, String>) -> BTreeMap<&str, &'static str> {
    map.keys().map(|k| (k.as_str(), "<redacted>")).collect()
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
