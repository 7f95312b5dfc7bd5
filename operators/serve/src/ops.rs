//! What operators and orchestrators read: `/health` (the model is loaded: the server binds only
//! after that), `/health/ready` (every served dataset's store answers), `/info` (model, dims, max
//! length, limits, datasets), `/metrics` (Prometheus text from the recorder the binary installed), and
//! the JSON 404 of unknown routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{ApiError, ServeState};

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// How long `/health/ready` waits for a dataset's store to answer.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `/health/ready`: 200 when every served dataset opens (its store answers with its latest
/// version), else 503 naming each dataset that does not and why. Embeddings need no store, so this
/// is for search traffic and for operators; the chart's probes stay on `/health`. It asks the store
/// again on every call, so it recovers by itself when the store does.
pub async fn ready(State(state): State<Arc<ServeState>>) -> Response {
    let mut datasets = serde_json::Map::new();
    let mut ready = true;
    for d in state.datasets.values() {
        let answer = match tokio::time::timeout(READY_WAIT, d.location.open()).await {
            Ok(Ok(_)) => "ok".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("its store did not answer within {} s", READY_WAIT.as_secs()),
        };
        ready &= answer == "ok";
        datasets.insert(d.name.clone(), json!(answer));
    }
    let (status, word) = match ready {
        true => (StatusCode::OK, "ready"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let body = json!({"status": word, "datasets": datasets});
    (status, Json(body)).into_response()
}

pub async fn info(State(state): State<Arc<ServeState>>) -> Json<Value> {
    let encoder = state.queue.encoder();
    let model = encoder.model();
    let datasets: Vec<Value> = state
        .datasets
        .values()
        .map(|d| {
            let dims: Vec<u32> = d.dims.iter().map(|x| x.0).collect();
            json!({"name": d.name, "uri": d.location.uri, "dims": dims})
        })
        .collect();
    let dims: Vec<u32> = state.dims().iter().map(|d| d.0).collect();
    Json(json!({
        "model": state.model_name,
        "model_id": model.model_id,
        "dims": dims,
        "max_length": model.max_seq_length,
        "prompts": model.prompts,
        "pooling": model.pooling.name(),
        "provider": encoder.provider().name(),
        "max_inputs": state.limits.max_inputs,
        "max_request_tokens": state.limits.max_request_tokens,
        "max_request_bytes": state.limits.max_request_bytes,
        "token_ids": state.limits.token_ids,
        "queue": {"capacity": state.queue.capacity(), "in_use": state.queue.queued()},
        "datasets": datasets,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

pub async fn metrics(State(state): State<Arc<ServeState>>) -> Response {
    let body = state
        .render_metrics
        .as_ref()
        .map_or_else(String::new, |r| r());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::invalid("path", format!("no route {}", uri.path())).with_status(StatusCode::NOT_FOUND)
}
