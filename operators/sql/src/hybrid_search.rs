//! `hybrid_search('table', 'emb_256', 'question', k [, 'mode'])`: the `k` rows of a registered Lance
//! table that best answer `question`, by reciprocal-rank fusion of the dense list (the question
//! embedded with the dataset's model and query prompt, nearest in `emb_256`) and the full-text list
//! (BM25 on the text's full-text index); `mode` 'fts' or 'dense' ranks by one list alone. Returns
//! `id`, `text`, the metadata columns and `_score` (higher is better), best first; composes with WHERE
//! and JOIN like any table. The same ranking as `lexembed search --mode`.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, plan_err};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use lexembed_encoder::{Dim, Encoder, Prompt, PromptChoice, Role};
use lexembed_lance::schema::column_dim;
use lexembed_lance::{
    DEFAULT_RRF_K, Dataset, DatasetLocation, Hit, Query, QueryEmbedding, SearchMode, SearchOptions,
    StoreError, check_query_model, search,
};

use crate::table_args::{TableRegistry, int_arg, lance_table, string_arg};

const USAGE: &str =
    "hybrid_search('table', 'emb_<dim>', 'question', k [, 'hybrid' | 'fts' | 'dense'])";

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

    /// The question at `dim`, embedded as `lexembed search` embeds it, once the dataset accepts this
    /// model and query prompt.
    fn query_vector(&self, ds: &Dataset, text: &str, dim: Dim) -> Result<Vec<f32>, StoreError> {
        let embedding = QueryEmbedding {
            model_id: &self.encoder.model().model_id,
            prompt: &self.query_prompt,
        };
        check_query_model(ds, embedding)?;
        let emb = self
            .encoder
            .encode(&[text], &self.query_prompt)
            .map_err(|e| StoreError::Invalid(format!("embedding the question: {e}")))?;
        Ok(emb.prefix(0, dim))
    }
}

/// What a call asked for, read from its literal arguments.
struct Call {
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
        let run = async {
            let ds = call.location.open().await?;
            let vector = match call.mode.needs_vector() {
                true => Some(self.query_vector(&ds, &call.text, call.dim)?),
                false => None,
            };
            let query = Query {
                text: &call.text,
                vector: vector.as_deref(),
                column: &call.column,
                mode: call.mode,
                rrf_k: DEFAULT_RRF_K,
            };
            let opts = SearchOptions {
                k: call.k,
                ..SearchOptions::default()
            };
            let hits = search(&ds, query, &opts).await?;
            Ok::<_, StoreError>((metadata_columns(&ds), hits))
        };
        // Table functions are planned synchronously; the search runs on the session's runtime.
        let (metadata, hits) =
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(run))
                .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        let batch = hits_batch(&metadata, &hits)?;
        Ok(Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch]],
        )?))
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

/// `id`, `text`, the metadata columns and `_score`, one row per hit in order.
fn hits_batch(metadata: &[String], hits: &[Hit]) -> Result<RecordBatch> {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            hits.iter().map(|h| h.id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            hits.iter().map(|h| h.text.as_str()),
        )),
    ];
    for name in metadata {
        fields.push(Field::new(name, DataType::Utf8, true));
        let values = hits.iter().map(|h| {
            h.metadata
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.as_deref())
        });
        columns.push(Arc::new(StringArray::from_iter(values)));
    }
    fields.push(Field::new("_score", DataType::Float32, false));
    columns.push(Arc::new(Float32Array::from_iter_values(
        hits.iter().map(|h| h.score),
    )));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
