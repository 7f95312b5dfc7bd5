//! `vector_search('table', 'emb_256', query, k)`: a table function returning the `k` rows of a
//! registered Lance table nearest to `query` (cosine), with every column plus `_distance`. It uses the
//! column's Lance index when there is one, exact search otherwise, and composes with WHERE and JOIN
//! like any table. `query` is `embed_query('text', dim)` with literal arguments, or a vector literal;
//! an embedded query must carry the prompt the dataset records for queries (`embed('text', dim)` does
//! for models without prompts).

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::expr::ScalarFunction;
use lexembed_encoder::{Encoder, Prompt, PromptChoice, Role, RolePrompts};
use lexembed_lance::schema::column_dim;
use lexembed_lance::{QueryEmbedding, SearchOptions, check_query_with_hint, nearest};

use crate::embed::function_name;
use crate::table_args::{TableRegistry, int_arg, lance_table, string_arg};

pub struct VectorSearchFunc {
    encoder: Arc<Encoder>,
    /// `embed(…)` embeds with the document prompt, `embed_query(…)` with the query prompt.
    prompts: RolePrompts,
    tables: TableRegistry,
}

/// A query vector and, when this session's model embedded it, the prompt it was embedded with.
struct QueryVector {
    values: Vec<f32>,
    embedded_with: Option<(Role, Prompt)>,
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

    /// The query vector at `dim`: an `embed_query(...)`/`embed(...)` call embedded now, or a vector
    /// literal.
    fn query_vector(&self, e: &Expr, dim: usize) -> Result<QueryVector> {
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
                let emb = self
                    .encoder
                    .encode(&[text.as_str()], &prompt)
                    .map_err(|e| DataFusionError::Execution(e.to_string()))?;
                Ok(QueryVector {
                    values: emb.prefix(0, lexembed_encoder::Dim(dim as u32)),
                    embedded_with: Some((role, prompt)),
                })
            }
            Expr::Literal(ScalarValue::List(list), _) => {
                let values = arrow_cast_f32(list.values())?;
                if values.len() != dim {
                    return plan_err!(
                        "{USAGE}: the query vector has {} values, the column {dim}",
                        values.len()
                    );
                }
                Ok(QueryVector {
                    values,
                    embedded_with: None,
                })
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
        let location = lance_table(&self.tables, "vector_search", &table)?;
        let query = self.query_vector(&exprs[2], dim.get())?;
        let opts = SearchOptions {
            k: usize::try_from(k).unwrap_or(10),
            ..SearchOptions::default()
        };
        let model = self.encoder.model().model_id.clone();
        let run = async {
            let ds = location.open().await?;
            if let Some((role, prompt)) = &query.embedded_with {
                let hint = match role {
                    Role::Document => " (embed() puts the document prompt; ask with embed_query())",
                    Role::Query => "",
                };
                let embedding = QueryEmbedding {
                    model_id: &model,
                    prompt,
                };
                check_query_with_hint(&ds, embedding, hint)?;
            }
            nearest(&ds, &column, &query.values, &opts).await
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
