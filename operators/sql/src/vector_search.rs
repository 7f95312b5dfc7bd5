//! `vector_search('table', 'emb_256', query, k)`: a table function returning the `k` rows of a
//! registered Lance table nearest to `query` (cosine), with every column plus `_distance` (cosine
//! distance, smaller is nearer), nearest first. It uses the column's Lance index when there is one,
//! exact search otherwise, and composes with WHERE and JOIN like any table.
//!
//! `query` is `embed_query('text', dim)` with literal arguments, or a vector literal; an embedded
//! query must carry the prompt the dataset records for queries (`embed('text', dim)` does for models
//! without prompts). Planning reads the dataset's schema only; the question is embedded and the
//! index searched when the plan executes (`VectorSearchExec` in `EXPLAIN`).
//!
//! Errors: planning refuses an unknown table, a column that is not `emb_<dim>`, an `embed(…, d)`
//! whose `d` is not the column's dim, a vector literal of another width and any other query
//! expression; execution refuses a dataset embedded by another model or with another query prompt.
//!
//! ```sql
//! SELECT id, _distance FROM vector_search('docs', 'emb_256', embed_query('plazo de recurso', 256), 5)
//! WHERE law = 'ley-39-2015'
//! ```

use std::sync::Arc;

use arrow_array::RecordBatch;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::expr::ScalarFunction;
use futures::future::BoxFuture;
use lexembed_encoder::{Dim, Encoder, Prompt, PromptChoice, Role, RolePrompts};
use lexembed_lance::schema::column_dim;
use lexembed_lance::{
    DatasetLocation, QueryEmbedding, SearchMode, SearchOptions, check_query_with_hint, nearest,
    nearest_schema,
};

use crate::embed::function_name;
use crate::search_exec::{Search, SearchTable};
use crate::table_args::{
    TableRegistry, at_planning, embed_text, int_arg, lance_table, search_error, string_arg,
};

pub struct VectorSearchFunc {
    encoder: Arc<Encoder>,
    /// `embed(…)` embeds with the document prompt, `embed_query(…)` with the query prompt.
    prompts: RolePrompts,
    tables: TableRegistry,
}

/// The query as planned: a text to embed when the search runs, or a vector literal.
#[derive(Debug, Clone)]
enum PlannedQuery {
    Embed {
        text: String,
        role: Role,
        prompt: Prompt,
    },
    Vector(Vec<f32>),
}

impl std::fmt::Debug for VectorSearchFunc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VectorSearchFunc({})", self.encoder.model().model_id)
    }
}

const USAGE: &str =
    "vector_search('table', 'emb_<dim>', embed_query('text', dim) | [v1, v2, ...], k)";

impl VectorSearchFunc {
    pub fn new(encoder: Arc<Encoder>, tables: TableRegistry) -> Result<Self> {
        let prompts = encoder
            .model()
            .role_prompts(&PromptChoice::Model)
            .map_err(|e| DataFusionError::Configuration(e.to_string()))?;
        Ok(Self {
            encoder,
            prompts,
            tables,
        })
    }

    /// The role an `embed`/`embed_query` call embeds in, `None` for any other function.
    fn embed_role(name: &str) -> Option<Role> {
        [Role::Query, Role::Document]
            .into_iter()
            .find(|&r| function_name(r) == name)
    }

    /// The query at `dim`: an `embed_query(...)`/`embed(...)` call (embedded when the search runs),
    /// or a vector literal.
    fn planned_query(&self, e: &Expr, dim: usize) -> Result<PlannedQuery> {
        match e {
            Expr::ScalarFunction(ScalarFunction { func, args })
                if Self::embed_role(func.name()).is_some() =>
            {
                let role = Self::embed_role(func.name()).unwrap_or(Role::Query);
                let prompt = match role {
                    Role::Query => self.prompts.query.clone(),
                    Role::Document => self.prompts.document.clone(),
                };
                let text = string_arg(
                    USAGE,
                    args.first()
                        .ok_or_else(|| DataFusionError::Plan(USAGE.into()))?,
                    "the text of embed()",
                )?;
                if let Some(d) = args.get(1) {
                    let d = int_arg(USAGE, d, "the dim of embed()")?;
                    if d as usize != dim {
                        return plan_err!(
                            "{USAGE}: embed(…, {d}) does not match the column's dim {dim}"
                        );
                    }
                }
                Ok(PlannedQuery::Embed { text, role, prompt })
            }
            Expr::Literal(ScalarValue::List(list), _) => {
                let values = arrow_cast_f32(list.values())?;
                if values.len() != dim {
                    return plan_err!(
                        "{USAGE}: the query vector has {} values, the column {dim}",
                        values.len()
                    );
                }
                Ok(PlannedQuery::Vector(values))
            }
            other => plan_err!(
                "{USAGE}: the query must be embed_query('text', dim) or a vector literal, got {other}"
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
        let table = string_arg(USAGE, &exprs[0], "the table")?;
        let column = string_arg(USAGE, &exprs[1], "the column")?;
        let k = exprs
            .get(3)
            .map(|e| int_arg(USAGE, e, "k"))
            .transpose()?
            .unwrap_or(10);
        let Some(dim) = column_dim(&column) else {
            return plan_err!("{USAGE}: {column} is not a vector column (emb_<dim>)");
        };
        let search = VectorSearch {
            location: lance_table(&self.tables, "vector_search", &table)?,
            table,
            query: self.planned_query(&exprs[2], dim.get())?,
            column,
            dim,
            opts: SearchOptions {
                k: usize::try_from(k).unwrap_or(10),
                ..SearchOptions::default()
            },
            encoder: self.encoder.clone(),
        };
        let schema = at_planning(async {
            let ds = search.location.open().await?;
            nearest_schema(&ds, &search.column, SearchMode::Index, &search.opts).await
        })?;
        Ok(Arc::new(SearchTable::new(schema, search)))
    }
}

/// One planned `vector_search` call, run when its plan executes.
#[derive(Clone)]
struct VectorSearch {
    table: String,
    location: DatasetLocation,
    column: String,
    dim: Dim,
    query: PlannedQuery,
    opts: SearchOptions,
    encoder: Arc<Encoder>,
}

impl Search for VectorSearch {
    fn node_name(&self) -> &'static str {
        "VectorSearchExec"
    }

    fn describe(&self) -> String {
        let query = match &self.query {
            PlannedQuery::Embed { role, .. } => format!("{}(text)", function_name(*role)),
            PlannedQuery::Vector(v) => format!("vector[{}]", v.len()),
        };
        format!(
            "table={} column={} k={} mode={} query={query}",
            self.table,
            self.column,
            self.opts.k,
            SearchMode::Index
        )
    }

    fn run(&self) -> BoxFuture<'static, Result<RecordBatch>> {
        let this = self.clone();
        Box::pin(async move { this.search().await })
    }
}

impl VectorSearch {
    async fn search(self) -> Result<RecordBatch> {
        let ds = self.location.open().await.map_err(search_error)?;
        let values = match self.query {
            PlannedQuery::Vector(values) => values,
            PlannedQuery::Embed { text, role, prompt } => {
                let hint = match role {
                    Role::Document => " (embed() puts the document prompt; ask with embed_query())",
                    Role::Query => "",
                };
                let embedding = QueryEmbedding {
                    model_id: &self.encoder.model().model_id,
                    prompt: &prompt,
                };
                check_query_with_hint(&ds, embedding, hint).map_err(search_error)?;
                embed_text(self.encoder.clone(), text, prompt, self.dim).await?
            }
        };
        nearest(&ds, &self.column, &values, SearchMode::Index, &self.opts)
            .await
            .map_err(search_error)
    }
}

#[cfg(test)]
mod tests {
    use lexembed_lance::{DatasetLocation, SinkMode};

    use crate::search_exec::fixtures::{append, axis_literal, explain, first_strings, session};

    #[tokio::test(flavor = "multi_thread")]
    async fn the_search_runs_when_the_plan_executes_not_when_it_is_planned() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("docs.lance").display().to_string());
        let rows = [("a", 0, "uno"), ("b", 1, "dos"), ("c", 2, "tres")];
        append(&loc, &rows, SinkMode::Create).await;
        let ctx = session(&loc).await;
        let sql = format!(
            "SELECT id, _distance FROM vector_search('docs', 'emb_16', {}, 2)",
            axis_literal(3)
        );
        let plan = explain(&ctx, &sql).await;
        assert!(
            plan.contains(
                "VectorSearchExec: table=docs column=emb_16 k=2 mode=index query=vector[16]"
            ),
            "{plan}"
        );
        // Planned before the row nearest the query lands: the search, run at execution, finds it.
        let df = ctx.sql(&sql).await.unwrap();
        let planned = df.clone().create_physical_plan().await.unwrap();
        append(&loc, &[("d", 3, "cuatro")], SinkMode::Append).await;
        let task = ctx.task_ctx();
        let rows = datafusion::physical_plan::collect(planned, task)
            .await
            .unwrap();
        let ids = first_strings(&rows);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0], "d", "{ids:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_query_of_another_width_or_an_unknown_table_is_refused_while_planned() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("docs.lance").display().to_string());
        append(&loc, &[("a", 0, "uno")], SinkMode::Create).await;
        let ctx = session(&loc).await;
        let err = ctx
            .sql("SELECT id FROM vector_search('docs', 'emb_16', [1.0, 0.0], 2)")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the query vector has 2 values, the column 16"),
            "{err}"
        );
        let err = ctx
            .sql(&format!(
                "SELECT id FROM vector_search('nope', 'emb_16', {}, 2)",
                axis_literal(0)
            ))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no Lance table named nope"), "{err}");
    }
}
