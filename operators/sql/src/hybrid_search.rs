//! `hybrid_search('table', 'emb_256', 'question', k [, 'mode'])`: the `k` rows of a registered Lance
//! table that best answer `question`, by reciprocal-rank fusion of the index path's list (the question
//! embedded with the dataset's model and query prompt, nearest in `emb_256`) and the full-text list
//! (BM25 on the text's full-text index); `mode` 'fts', 'index' or 'exact' ranks by one list alone
//! (lexembed's one search vocabulary; 'dense', the old name of 'index', warns). Returns `id`, `text`,
//! the metadata columns and `_score` (higher is better), best first; composes with WHERE and JOIN like
//! any table. The same ranking as `lexembed search --mode`.
//!
//! Planning reads the dataset's schema only (for the metadata columns); the question is embedded and
//! the lists searched when the plan executes (`HybridSearchExec` in `EXPLAIN`).
//!
//! Errors: planning refuses an unknown table or mode, a column that is not `emb_<dim>`, a k below 1;
//! execution refuses a dataset embedded by another model or query prompt, and full-text modes on a
//! dataset without a full-text index on `text` (naming how to build it).
//!
//! ```sql
//! SELECT id, _score FROM hybrid_search('docs', 'emb_256', 'artículo 66 de la Ley 58/2003', 10)
//! ```

use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, plan_err};
use datafusion::error::DataFusionError;
use futures::future::BoxFuture;
use lexembed_encoder::{Dim, Encoder, Prompt, PromptChoice, Role};
use lexembed_lance::schema::column_dim;
use lexembed_lance::{
    DEFAULT_RRF_K, Dataset, DatasetLocation, Hit, Query, QueryEmbedding, SearchMode, SearchOptions,
    check_query_model, search,
};

use crate::search_exec::{Search, SearchTable};
use crate::table_args::{
    TableRegistry, at_planning, embed_text, int_arg, lance_table, search_error, string_arg,
};

const USAGE: &str =
    "hybrid_search('table', 'emb_<dim>', 'question', k [, 'hybrid' | 'fts' | 'index' | 'exact'])";

pub struct HybridSearchFunc {
    encoder: Arc<Encoder>,
    query_prompt: Prompt,
    tables: TableRegistry,
}

impl std::fmt::Debug for HybridSearchFunc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HybridSearchFunc({})", self.encoder.model().model_id)
    }
}

impl HybridSearchFunc {
    pub fn new(encoder: Arc<Encoder>, tables: TableRegistry) -> Result<Self> {
        let query_prompt = encoder
            .prompt(Role::Query, &PromptChoice::Model)
            .map_err(|e| DataFusionError::Configuration(e.to_string()))?;
        Ok(Self {
            encoder,
            query_prompt,
            tables,
        })
    }
}

/// What a call asked for, read from its literal arguments.
#[derive(Debug, Clone)]
struct Call {
    table: String,
    location: DatasetLocation,
    column: String,
    dim: Dim,
    text: String,
    k: usize,
    mode: SearchMode,
}

impl HybridSearchFunc {
    fn read_call(&self, args: &TableFunctionArgs) -> Result<Call> {
        let exprs = args.exprs();
        if !(3..=5).contains(&exprs.len()) {
            return plan_err!("{USAGE}: got {} arguments", exprs.len());
        }
        let table = string_arg(USAGE, &exprs[0], "the table")?;
        let column = string_arg(USAGE, &exprs[1], "the column")?;
        let Some(dim) = column_dim(&column) else {
            return plan_err!("{USAGE}: {column} is not a vector column (emb_<dim>)");
        };
        let text = string_arg(USAGE, &exprs[2], "the question")?;
        let k = match exprs.get(3) {
            Some(e) => int_arg(USAGE, e, "k")?,
            None => 10,
        };
        let Ok(k) = usize::try_from(k) else {
            return plan_err!("{USAGE}: k must be at least 1, got {k}");
        };
        let mode = match exprs.get(4) {
            Some(e) => SearchMode::parse(&string_arg(USAGE, e, "the mode")?)
                .map_err(|e| DataFusionError::Plan(format!("{USAGE}: {e}")))?,
            None => SearchMode::Hybrid,
        };
        Ok(Call {
            location: lance_table(&self.tables, "hybrid_search", &table)?,
            table,
            column,
            dim,
            text,
            k: k.max(1),
            mode,
        })
    }
}

impl TableFunctionImpl for HybridSearchFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call = self.read_call(&args)?;
        let metadata = at_planning(async {
            let ds = call.location.open().await?;
            Ok(metadata_columns(&ds))
        })?;
        let schema = hits_schema(&metadata);
        let search = HybridSearch {
            call,
            metadata,
            encoder: self.encoder.clone(),
            query_prompt: self.query_prompt.clone(),
        };
        Ok(Arc::new(SearchTable::new(schema, search)))
    }
}

/// One planned `hybrid_search` call, run when its plan executes.
#[derive(Clone)]
struct HybridSearch {
    call: Call,
    metadata: Vec<String>,
    encoder: Arc<Encoder>,
    query_prompt: Prompt,
}

impl Search for HybridSearch {
    fn node_name(&self) -> &'static str {
        "HybridSearchExec"
    }

    fn describe(&self) -> String {
        let c = &self.call;
        format!(
            "table={} column={} k={} mode={}",
            c.table, c.column, c.k, c.mode
        )
    }

    fn run(&self) -> BoxFuture<'static, Result<RecordBatch>> {
        let this = self.clone();
        Box::pin(async move { this.search().await })
    }
}

impl HybridSearch {
    async fn search(self) -> Result<RecordBatch> {
        let c = &self.call;
        let ds = c.location.open().await.map_err(search_error)?;
        let vector = match c.mode.needs_vector() {
            true => {
                let embedding = QueryEmbedding {
                    model_id: &self.encoder.model().model_id,
                    prompt: &self.query_prompt,
                };
                check_query_model(&ds, embedding).map_err(search_error)?;
                let prompt = self.query_prompt.clone();
                Some(embed_text(self.encoder.clone(), c.text.clone(), prompt, c.dim).await?)
            }
            false => None,
        };
        let query = Query {
            text: &c.text,
            vector: vector.as_deref(),
            column: &c.column,
            mode: c.mode,
            rrf_k: DEFAULT_RRF_K,
        };
        let opts = SearchOptions {
            k: c.k,
            ..SearchOptions::default()
        };
        let hits = search(&ds, query, &opts).await.map_err(search_error)?;
        hits_batch(&self.metadata, &hits)
    }
}

/// The dataset's text columns besides `id` and `text`: what a hit carries as metadata.
fn metadata_columns(ds: &Dataset) -> Vec<String> {
    ds.schema()
        .fields
        .iter()
        .filter(|f| {
            matches!(f.data_type(), DataType::Utf8) && !["id", "text"].contains(&f.name.as_str())
        })
        .map(|f| f.name.clone())
        .collect()
}

/// `id`, `text`, the metadata columns and `_score`: the rows' schema.
fn hits_schema(metadata: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ];
    fields.extend(metadata.iter().map(|n| Field::new(n, DataType::Utf8, true)));
    fields.push(Field::new("_score", DataType::Float32, false));
    Arc::new(Schema::new(fields))
}

/// One row per hit, in order, in [`hits_schema`].
fn hits_batch(metadata: &[String], hits: &[Hit]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            hits.iter().map(|h| h.id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            hits.iter().map(|h| h.text.as_str()),
        )),
    ];
    for name in metadata {
        let values = hits.iter().map(|h| {
            h.metadata
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.as_deref())
        });
        columns.push(Arc::new(StringArray::from_iter(values)));
    }
    columns.push(Arc::new(Float32Array::from_iter_values(
        hits.iter().map(|h| h.score),
    )));
    Ok(RecordBatch::try_new(hits_schema(metadata), columns)?)
}

#[cfg(test)]
mod tests {
    use lexembed_lance::{DatasetLocation, SinkMode};

    use crate::search_exec::fixtures::{append, explain, first_strings, session};

    #[tokio::test(flavor = "multi_thread")]
    async fn planning_reads_the_schema_and_execution_searches() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("docs.lance").display().to_string());
        let rows = [
            ("a", 0, "plazo de recurso"),
            ("b", 1, "silencio administrativo"),
        ];
        append(&loc, &rows, SinkMode::Create).await;
        let ctx = session(&loc).await;
        // No full-text index: planning (and EXPLAIN) succeeds, the search it would run fails.
        let sql = "SELECT id, _score FROM hybrid_search('docs', 'emb_16', 'plazo', 2, 'fts')";
        let plan = explain(&ctx, sql).await;
        assert!(
            plan.contains("HybridSearchExec: table=docs column=emb_16 k=2 mode=fts"),
            "{plan}"
        );
        let err = ctx
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no full-text index on text"), "{err}");
        // The index path, run at execution, embeds the question and ranks both rows.
        let sql = "SELECT id FROM hybrid_search('docs', 'emb_16', 'plazo', 2, 'index')";
        let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut ids = first_strings(&rows);
        ids.sort();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn the_rows_schema_names_the_metadata_columns_between_text_and_score() {
        let schema = super::hits_schema(&["law".to_string()]);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "text", "law", "_score"]);
        let batch = super::hits_batch(&["law".to_string()], &[]).unwrap();
        assert_eq!((batch.num_rows(), batch.schema()), (0, schema));
    }
}
