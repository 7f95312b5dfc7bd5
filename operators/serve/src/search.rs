//! `POST /search`: `{dataset, query, dim | column, k, filter, mode, columns}` → hits (rank, id, score,
//! distance, text and the selected metadata columns). The query is embedded with the served model —
//! the dataset's own (a dataset written by another model is refused, as `lexembed search` does) — at
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
use lexembed_lance::{SearchOptions, StoreError, check_query_model, hits};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, ServeState, ServedDataset, input};

/// Exact (flat) search, or the vector index when the column has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    #[default]
    Index,
    Exact,
}

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
    check_query_model(&ds, &state.queue.encoder().model().model_id).map_err(store_error)?;
    let query = state.embed(vec![req.query.clone()], dim, true).await?;
    let opts = SearchOptions {
        k: req.k,
        use_index: req.mode == SearchMode::Index,
        filter: req.filter.clone(),
        ..SearchOptions::default()
    };
    let found = hits(&ds, &column, &query.rows[0], &opts)
        .await
        .map_err(|e| match e {
            StoreError::Lance { .. } if req.filter.is_some() => {
                ApiError::invalid("filter", e.to_string())
            }
            other => store_error(other),
        })?;
    let hits: Vec<Value> = found
        .iter()
        .enumerate()
        .map(|(rank, h)| {
            let mut hit = json!({
                "rank": rank + 1, "id": h.id, "score": 1.0 - h.distance, "distance": h.distance,
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
        "dataset": served.name, "column": column, "mode": req.mode_name(), "hits": hits,
    })))
}

impl SearchRequest {
    fn mode_name(&self) -> &'static str {
        match self.mode {
            SearchMode::Index => "index",
            SearchMode::Exact => "exact",
        }
    }
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
        StoreError::QueryModel { .. } => StatusCode::CONFLICT,
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
