//! `vector_search('table', 'emb_256', query, k)`: a table function returning the `k` rows of a
//! registered Lance table nearest to `query` (cosine), with every column plus `_distance`. It uses the
//! column's Lance index when there is one, exact search otherwise, and composes with WHERE and JOIN
//! like any table. `query` is `embed('text', dim)` with literal arguments, or a vector literal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::expr::ScalarFunction;
use lexembed_encoder::Encoder;
use lexembed_lance::schema::column_dim;
use lexembed_lance::{DatasetLocation, SearchOptions, check_query_model, nearest};

/// Lance tables registered in a session, by name.
pub type TableRegistry = Arc<Mutex<HashMap<String, DatasetLocation>>>;

pub struct VectorSearchFunc {
    encoder: Arc<Encoder>,
    tables: TableRegistry,
}

impl std::fmt::Debug for VectorSearchFunc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VectorSearchFunc({})", self.encoder.model().model_id)
    }
}

const USAGE: &str = "vector_search('table', 'emb_<dim>', embed('text', dim) | [v1, v2, ...], k)";

fn string_arg(e: &Expr, what: &str) -> Result<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Ok(s.clone()),
        other => plan_err!("{USAGE}: {what} must be a string literal, got {other}"),
    }
}

fn int_arg(e: &Expr, what: &str) -> Result<i64> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => Ok(*v),
        Expr::Literal(ScalarValue::Int32(Some(v)), _) => Ok(i64::from(*v)),
        other => plan_err!("{USAGE}: {what} must be an integer literal, got {other}"),
    }
}

impl VectorSearchFunc {
    pub fn new(encoder: Arc<Encoder>, tables: TableRegistry) -> Self {
        Self { encoder, tables }
    }

    /// The query vector at `dim`: an `embed(...)` call embedded now (`true`: by this session's model),
    /// or a vector literal.
    fn query_vector(&self, e: &Expr, dim: usize) -> Result<(Vec<f32>, bool)> {
        match e {
            Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "embed" => {
                let text = string_arg(
                    args.first()
                        .ok_or_else(|| DataFusionError::Plan(USAGE.into()))?,
                    "the text of embed()",
                )?;
                if let Some(d) = args.get(1) {
                    let d = int_arg(d, "the dim of embed()")?;
                    if d as usize != dim {
                        return plan_err!(
                            "{USAGE}: embed(…, {d}) does not match the column's dim {dim}"
                        );
                    }
                }
                let emb = self
                    .encoder
                    .encode(&[text.as_str()])
                    .map_err(|e| DataFusionError::Execution(e.to_string()))?;
                Ok((emb.prefix(0, lexembed_encoder::Dim(dim as u32)), true))
            }
            Expr::Literal(ScalarValue::List(list), _) => {
                let values = arrow_cast_f32(list.values())?;
                if values.len() != dim {
                    return plan_err!(
                        "{USAGE}: the query vector has {} values, the column {dim}",
                        values.len()
                    );
                }
                Ok((values, false))
            }
            other => plan_err!(
                "{USAGE}: the query must be embed('text', dim) or a vector literal, got {other}"
            ),
        }
    }
}

fn arrow_cast_f32(a: &arrow_array::ArrayRef) -> Result<Vec<f32>> {
    use arrow_array::cast::AsArray;
    let f = datafusion::arrow::compute::cast(a, &arrow_schema::DataType::Float32)?;
    Ok(f.as_primitive::<arrow_array::types::Float32Type>()
        .values()
        .to_vec())
}

impl TableFunctionImpl for VectorSearchFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(3..=4).contains(&exprs.len()) {
            return plan_err!("{USAGE}: got {} arguments", exprs.len());
        }
        let table = string_arg(&exprs[0], "the table")?;
        let column = string_arg(&exprs[1], "the column")?;
        let k = exprs
            .get(3)
            .map(|e| int_arg(e, "k"))
            .transpose()?
            .unwrap_or(10);
        let Some(dim) = column_dim(&column) else {
            return plan_err!("{USAGE}: {column} is not a vector column (emb_<dim>)");
        };
        let location = self
            .tables
            .lock()
            .map_err(|_| DataFusionError::Internal("table registry poisoned".into()))?
            .get(&table)
            .cloned();
        let Some(location) = location else {
            return plan_err!(
                "vector_search: no Lance table named {table} (register it with --table {table}=PATH)"
            );
        };
        let (q, embedded) = self.query_vector(&exprs[2], dim.get())?;
        let opts = SearchOptions {
            k: usize::try_from(k).unwrap_or(10),
            ..SearchOptions::default()
        };
        let model = self.encoder.model().model_id.clone();
        let run = async {
            let ds = location.open().await?;
            if embedded {
                check_query_model(&ds, &model)?;
            }
            nearest(&ds, &column, &q, &opts).await
        };
        // Table functions are planned synchronously; the search runs on the session's runtime.
        let batch = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(run))
            .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        Ok(Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch]],
        )?))
    }
}
