//! `POST /search`: `{dataset, query, dim | column, k, filter, mode: index | exact | fts | hybrid,
//! columns}` → hits (rank, id, score,
//! distance, text and the selected metadata columns). The query is embedded with the served model and
//! its query prompt — the dataset's own (a dataset written by another model, or recording another
//! query prompt, is refused with 409, as `lexembed search` refuses it) — at
//! the column's dim, through the same queue as every other request; then the Lance index when there
//! is one (with exact re-ranking of its candidates), or exact search (`mode: exact`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use lexembed_encoder::Dim;
use lexembed_lance::schema::column_dim;
use lexembed_lance::{
    DEFAULT_RRF_K, Query, SearchMode, SearchOptions, StoreError, checked_query_prompt,
    search as search_dataset,
};
use serde::Deserialize;

use crate::input::Inputs;
use serde_json::{Value, json};

use crate::{ApiError, ServeState, ServedDataset, input};

/// `POST /search`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// A dataset name given to `--dataset NAME=URI`.
    pub dataset: String,
    pub query: String,
    /// Matryoshka dim: searches `emb_<dim>`.
    #[serde(default)]
    pub dim: Option<u32>,
    /// Vector column (`emb_256`), instead of `dim`.
    #[serde(default)]
    pub column: Option<String>,
    #[serde(default = "ten")]
    pub k: usize,
    /// SQL filter applied before ranking (`law = 'ley-58-2003'`).
    #[serde(default)]
    pub filter: Option<String>,
    /// `index` (default), `exact`, `fts` or `hybrid`: lexembed's one search vocabulary.
    #[serde(default)]
    pub mode: SearchMode,
    /// Metadata columns returned with each hit (default: all of them).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

fn ten() -> usize {
    10
}

pub async fn search(
    State(state): State<Arc<ServeState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: SearchRequest = input::parse(body)?;
    let served = state.datasets.get(&req.dataset).ok_or_else(|| {
        let names: Vec<&str> = state.datasets.keys().map(String::as_str).collect();
        ApiError::invalid(
            "dataset",
            format!(
                "no dataset {:?} is served (served: {})",
                req.dataset,
                names.join(", ")
            ),
        )
        .with_status(StatusCode::NOT_FOUND)
    })?;
    let (column, dim) = column_of(&req, served)?;
    if req.query.is_empty() {
        return Err(ApiError::invalid(
            "query",
            "empty string: nothing to search",
        ));
    }
    if req.k == 0 || req.k > state.limits.max_k {
        return Err(ApiError::invalid(
            "k",
            format!("must be 1 to {}", state.limits.max_k),
        ));
    }
    let ds = served.location.open().await.map_err(store_error)?;
    let vector = match req.mode.needs_vector() {
        true => Some(query_vector(&state, &ds, &req.query, dim).await?),
        false => None,
    };
    let opts = SearchOptions {
        k: req.k,
        filter: req.filter.clone(),
        ..SearchOptions::default()
    };
    let query = Query {
        text: &req.query,
        vector: vector.as_deref(),
        column: &column,
        mode: req.mode,
        rrf_k: DEFAULT_RRF_K,
    };
    let found = search_dataset(&ds, query, &opts)
        .await
        .map_err(|e| match e {
            StoreError::Lance { .. } if req.filter.is_some() && !e.is_unavailable() => {
                ApiError::invalid("filter", e.to_string())
            }
            StoreError::NoFullTextIndex { .. } => ApiError::invalid("mode", e.to_string()),
            other => store_error(other),
        })?;
    let hits: Vec<Value> = found
        .iter()
        .enumerate()
        .map(|(rank, h)| {
            let mut hit = json!({
                "rank": rank + 1, "id": h.id, "score": h.score, "distance": h.distance,
                "text": h.text,
            });
            for (name, value) in &h.metadata {
                let wanted = req.columns.as_ref().is_none_or(|c| c.contains(name));
                if wanted {
                    hit[name] = json!(value);
                }
            }
            hit
        })
        .collect();
    Ok(Json(json!({
        "dataset": served.name, "column": column, "mode": req.mode.name(), "hits": hits,
    })))
}

/// The query embedded at `dim` by the served model with its query prompt, after checking both against
/// what the dataset records.
async fn query_vector(
    state: &ServeState,
    ds: &lexembed_lance::Dataset,
    text: &str,
    dim: Dim,
) -> Result<Vec<f32>, ApiError> {
    let prompt = checked_query_prompt(ds, state.queue.encoder().model()).map_err(store_error)?;
    let mut query = state
        .embed(Inputs::Texts(vec![text.to_string()]), &prompt, dim, true)
        .await?;
    Ok(query.rows.swap_remove(0))
}

/// The vector column to search: `column`, else `emb_<dim>`, else the widest the dataset has.
fn column_of(req: &SearchRequest, served: &ServedDataset) -> Result<(String, Dim), ApiError> {
    let listed = || {
        let dims: Vec<String> = served.dims.iter().map(|d| d.0.to_string()).collect();
        dims.join(", ")
    };
    let (field, dim) = match (&req.column, req.dim) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("column", "give dim or column, not both"));
        }
        (Some(c), None) => (
            "column",
            column_dim(c).ok_or_else(|| {
                ApiError::invalid("column", format!("{c} is not a vector column (emb_<dim>)"))
            })?,
        ),
        (None, Some(d)) => ("dim", Dim(d)),
        (None, None) => (
            "dim",
            *served
                .dims
                .first()
                .ok_or_else(|| ApiError::invalid("dataset", "the dataset has no vector column"))?,
        ),
    };
    if !served.dims.contains(&dim) {
        return Err(ApiError::invalid(
            field,
            format!(
                "the dataset has no emb_{} column: its dims are {}",
                dim.0,
                listed()
            ),
        ));
    }
    Ok((format!("emb_{}", dim.0), dim))
}

fn store_error(e: StoreError) -> ApiError {
    let status = match e {
        _ if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        StoreError::QueryModel { .. } | StoreError::QueryPrompt { .. } => StatusCode::CONFLICT,
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError {
        status,
        message: e.to_string(),
        param: Some("dataset".into()),
        code: None,
    }
}
