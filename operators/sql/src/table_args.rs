//! What lexembed's table functions (`vector_search`, `hybrid_search`) share: their literal arguments
//! and the session's registry of Lance tables.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use lexembed_lance::DatasetLocation;

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
