//! What lexembed's table functions (`vector_search`, `hybrid_search`) share: their literal arguments,
//! the session's registry of Lance tables, the dataset reads they do while planned, and the question's
//! embedding when they execute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use lexembed_encoder::{Dim, Encoder, Prompt};
use lexembed_lance::{DatasetLocation, StoreError};

/// Lance tables registered in a session, by name.
pub type TableRegistry = Arc<Mutex<HashMap<String, DatasetLocation>>>;

/// A string literal argument (`what` names it in the error, after the function's `usage`).
pub fn string_arg(usage: &str, e: &Expr, what: &str) -> Result<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Ok(s.clone()),
        other => plan_err!("{usage}: {what} must be a string literal, got {other}"),
    }
}

/// An integer literal argument.
pub fn int_arg(usage: &str, e: &Expr, what: &str) -> Result<i64> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => Ok(*v),
        Expr::Literal(ScalarValue::Int32(Some(v)), _) => Ok(i64::from(*v)),
        other => plan_err!("{usage}: {what} must be an integer literal, got {other}"),
    }
}

/// The Lance table registered as `table`; `function` names the caller in the error.
pub fn lance_table(tables: &TableRegistry, function: &str, table: &str) -> Result<DatasetLocation> {
    let location = tables
        .lock()
        .map_err(|_| DataFusionError::Internal("table registry poisoned".into()))?
        .get(table)
        .cloned();
    match location {
        Some(l) => Ok(l),
        None => plan_err!(
            "{function}: no Lance table named {table} (register it with --table {table}=PATH)"
        ),
    }
}

/// Runs `work` (a dataset's manifest or schema, never a search) while the query is planned: table
/// functions are called synchronously, inside the session's multi-threaded runtime.
pub fn at_planning<T>(work: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(work))
        .map_err(|e| DataFusionError::Plan(e.to_string()))
}

/// `text` embedded with `prompt` and cut to `dim`, on a blocking thread (the model's call is CPU
/// work, not the executor's).
pub async fn embed_text(
    encoder: Arc<Encoder>,
    text: String,
    prompt: Prompt,
    dim: Dim,
) -> Result<Vec<f32>> {
    tokio::task::spawn_blocking(move || {
        encoder
            .encode(&[text.as_str()], &prompt)
            .map(|e| e.prefix(0, dim))
    })
    .await
    .map_err(|e| DataFusionError::Execution(format!("embedding the question: {e}")))?
    .map_err(|e| DataFusionError::Execution(format!("embedding the question: {e}")))
}

/// A store error met while a search runs, as DataFusion reports execution errors.
pub fn search_error(e: StoreError) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}
