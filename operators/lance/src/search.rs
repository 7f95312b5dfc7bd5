//! Nearest-neighbour search over one `emb_<dim>` column: the Lance index when there is one, exact
//! (flat) search otherwise. Cosine distance; score = 1 − distance.

use arrow_array::cast::AsArray;
use arrow_array::{Array, Float32Array, RecordBatch};
use arrow_schema::SchemaRef;
use lance::Dataset;
use lance::dataset::scanner::Scanner;
use lance_linalg::distance::MetricType;

use crate::error::{Result, StoreError, lance_err};
use crate::index::vector_column_dim;
use crate::mode::SearchMode;
use crate::schema::written_by;
use lexembed_encoder::{ModelDir, Prompt};

/// How a query was embedded: by which model, with which prompt.
#[derive(Debug, Clone, Copy)]
pub struct QueryEmbedding<'a> {
    pub model_id: &'a str,
    pub prompt: &'a Prompt,
}

/// Queries must be embedded by the model that wrote the dataset's vectors (another model's vectors
/// live in another space: the ranking would be noise, not an error), with the query prompt recorded
/// beside them (E5 without `"query: "` loses several points of ndcg, silently). A dataset that records
/// no model takes any.
pub fn check_query_model(ds: &Dataset, query: QueryEmbedding<'_>) -> Result<()> {
    check_query_with_hint(ds, query, "")
}

/// The prompt `model` puts before a question, checked with the model against what `ds` records: what
/// every search of `ds` embeds its question with (`lexembed search`, `eval`, `serve`).
pub fn checked_query_prompt(ds: &Dataset, model: &ModelDir) -> Result<Prompt> {
    let prompt = model.query_prompt()?;
    let embedding = QueryEmbedding {
        model_id: &model.model_id,
        prompt: &prompt,
    };
    check_query_model(ds, embedding)?;
    Ok(prompt)
}

/// `check_query_model`, with a hint appended to a prompt mismatch (how this caller gets the right
/// prompt).
pub fn check_query_with_hint(ds: &Dataset, query: QueryEmbedding<'_>, hint: &str) -> Result<()> {
    let schema = arrow_schema::Schema::from(ds.schema());
    let Some(w) = written_by(schema.metadata()) else {
        return Ok(());
    };
    if w.model_id != query.model_id {
        return Err(StoreError::QueryModel {
            uri: ds.uri().to_string(),
            dataset_model: w.model_id,
            query_model: query.model_id.to_string(),
        });
    }
    if &w.prompts.query != query.prompt {
        return Err(StoreError::QueryPrompt {
            uri: ds.uri().to_string(),
            dataset_prompt: w.prompts.query,
            document_prompt: w.prompts.document,
            query_prompt: query.prompt.clone(),
            hint: hint.to_string(),
        });
    }
    Ok(())
}

/// One hit, best first in its list.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    /// Higher is better: cosine similarity (1 − distance) for dense search, BM25 for full-text
    /// search, the reciprocal-rank-fusion score for hybrid search.
    pub score: f32,
    /// Cosine distance, for dense search only.
    pub distance: Option<f32>,
    pub text: String,
    /// The row's metadata columns (nullable text, as pipelines write them), by name.
    pub metadata: Vec<(String, Option<String>)>,
}

/// How to search.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub k: usize,
    /// IVF partitions to probe (index search only).
    pub nprobes: Option<usize>,
    /// SQL filter applied before ranking, e.g. `law = 'ley-58-2003'`.
    pub filter: Option<String>,
    /// Index search re-ranks `k × refine` candidates by exact distance (PQ codes alone lose recall:
    /// with 4 recall@10 swung between 0.90 and 0.98 across index builds of one 600-row dataset; with 10
    /// it was 1.0 in each of six).
    pub refine: Option<u32>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            k: 10,
            // Recall first: 32 partitions is all of them up to ~1,000 rows and ~10% at 100,000.
            nprobes: Some(32),
            filter: None,
            refine: Some(10),
        }
    }
}

/// The `k` rows nearest to `query` in `column`, with every column of the dataset and `_distance`:
/// through the column's index when `mode` uses one and the column has one, exact otherwise.
pub async fn nearest(
    ds: &Dataset,
    column: &str,
    query: &[f32],
    mode: SearchMode,
    opts: &SearchOptions,
) -> Result<RecordBatch> {
    let scan = nearest_scan(ds, column, query, mode, opts)?;
    scan.try_into_batch().await.map_err(lance_err(ds.uri()))
}

/// The schema [`nearest`] returns for `column`, from the scan's plan alone: nothing is searched.
pub async fn nearest_schema(
    ds: &Dataset,
    column: &str,
    mode: SearchMode,
    opts: &SearchOptions,
) -> Result<SchemaRef> {
    let dim = vector_column_dim(ds, column)?;
    let scan = nearest_scan(ds, column, &vec![0.0; dim.get()], mode, opts)?;
    scan.schema().await.map_err(lance_err(ds.uri()))
}

fn nearest_scan(
    ds: &Dataset,
    column: &str,
    query: &[f32],
    mode: SearchMode,
    opts: &SearchOptions,
) -> Result<Scanner> {
    let dim = vector_column_dim(ds, column)?;
    if dim.get() != query.len() {
        return Err(StoreError::QueryWidth {
            column: column.to_string(),
            got: query.len(),
            want: dim.get(),
        });
    }
    let q = Float32Array::from(query.to_vec());
    let mut scan = ds.scan();
    scan.nearest(column, &q, opts.k)
        .map_err(lance_err(ds.uri()))?
        .distance_metric(MetricType::Cosine)
        .use_index(mode.uses_index());
    if let Some(n) = opts.nprobes {
        scan.nprobes(n);
    }
    if let (true, Some(r)) = (mode.uses_index(), opts.refine) {
        scan.refine(r);
    }
    if let Some(f) = &opts.filter {
        scan.prefilter(true)
            .filter(f)
            .map_err(lance_err(ds.uri()))?;
    }
    Ok(scan)
}

/// `nearest`, reduced to ids, distances and texts, best first (ties broken by id).
pub async fn hits(
    ds: &Dataset,
    column: &str,
    query: &[f32],
    mode: SearchMode,
    opts: &SearchOptions,
) -> Result<Vec<Hit>> {
    let batch = nearest(ds, column, query, mode, opts).await?;
    let dist = batch
        .column_by_name("_distance")
        .ok_or_else(|| StoreError::Invalid("search result has no _distance column".into()))?
        .as_primitive::<arrow_array::types::Float32Type>()
        .clone();
    hits_from_batch(&batch, |i| {
        let d = if dist.is_null(i) {
            f32::NAN
        } else {
            dist.value(i)
        };
        (1.0 - d, Some(d))
    })
}

/// A search result's rows as hits (`id`, `text`, the other text columns as metadata), `score_of` giving
/// each row's score and distance; best score first, ties broken by id.
pub(crate) fn hits_from_batch(
    batch: &RecordBatch,
    score_of: impl Fn(usize) -> (f32, Option<f32>),
) -> Result<Vec<Hit>> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| StoreError::Invalid(format!("search result has no {name} column")))
    };
    let ids = col("id")?.as_string::<i32>().clone();
    let texts = col("text")?.as_string::<i32>().clone();
    let schema = batch.schema();
    let metadata: Vec<(&str, &arrow_array::StringArray)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| !matches!(f.name().as_str(), "id" | "text"))
        .filter_map(|(f, c)| Some((f.name().as_str(), c.as_string_opt::<i32>()?)))
        .collect();
    let mut out: Vec<Hit> = (0..batch.num_rows())
        .map(|i| {
            let (score, distance) = score_of(i);
            Hit {
                id: ids.value(i).to_string(),
                score,
                distance,
                text: texts.value(i).to_string(),
                metadata: metadata
                    .iter()
                    .map(|(name, c)| {
                        let value = (!c.is_null(i)).then(|| c.value(i).to_string());
                        (name.to_string(), value)
                    })
                    .collect(),
            }
        })
        .collect();
    out.sort_by(best_first);
    Ok(out)
}

/// Dense hits by distance (exactly: `1 − d` can round two distances together), others by score,
/// higher first; a missing score last; ties by id.
pub(crate) fn best_first(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    let by_score = |h: &Hit| {
        if h.score.is_nan() {
            f32::NEG_INFINITY
        } else {
            h.score
        }
    };
    let order = match (a.distance, b.distance) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => by_score(b).total_cmp(&by_score(a)),
    };
    order.then_with(|| a.id.cmp(&b.id))
}
