//! `lexembed serve`: one model over HTTP, for applications that must embed questions exactly as the
//! corpus was embedded (same model, tokenizer, max length, Matryoshka dim and renormalisation) and
//! search the Lance datasets that model wrote.
//!
//! Endpoints, one module each: `openai` (`POST /v1/embeddings`, `GET /v1/models`: what the OpenAI SDKs,
//! LangChain and LlamaIndex speak), `tei` (`POST /embed`, text-embeddings-inference's shape), `search`
//! (`POST /search`), `ops` (`/health`, `/info`, `/metrics`). Every request's texts go through the
//! model's one bounded queue (`lexembed_encoder::SharedBatcher`), which gathers concurrent requests
//! into encoder batches and answers 429 when full instead of growing. `input` validates what clients
//! send (naming the field), `error` is the JSON error shape, `auth` the optional bearer key.
//!
//! The library builds the router only: the binary binds the socket, owns the runtime, the signals
//! (graceful shutdown) and the metrics recorder.

pub mod auth;
pub mod error;
pub mod input;
pub mod openai;
pub mod ops;
pub mod search;
mod state;
pub mod tei;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

pub use error::ApiError;
pub use state::{Limits, RenderMetrics, ServeState, ServedDataset};

/// Every route of the server over `state`.
pub fn router(state: Arc<ServeState>) -> Router {
    let limit = state.limits.max_request_bytes;
    let api = Router::new()
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{model}", get(openai::model))
        .route("/embed", post(tei::embed))
        // TEI answers embeddings at its root too: clients given the server's URL as the model
        // (huggingface_hub's InferenceClient) post there.
        .route("/", post(tei::embed))
        .route("/search", post(search::search))
        .route("/info", get(ops::info))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    Router::new()
        .merge(api)
        .route("/health", get(ops::health))
        .route("/health/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .layer(middleware::from_fn(record))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Requests by route and status, and their latency, through the `metrics` facade.
async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("lexembed_serve_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("lexembed_serve_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Describes the server's series (once, at start).
pub fn describe_metrics() {
    metrics::describe_counter!(
        "lexembed_serve_requests_total",
        "HTTP requests answered, by route and status."
    );
    metrics::describe_histogram!(
        "lexembed_serve_request_seconds",
        "Time to answer an HTTP request, by route."
    );
    metrics::describe_counter!(
        "lexembed_serve_texts_total",
        "Texts embedded for requests (truncated ones included)."
    );
    metrics::describe_counter!(
        "lexembed_serve_truncated_total",
        "Texts cut at the model's max length."
    );
    metrics::describe_counter!(
        "lexembed_serve_rejected_total",
        "Requests refused because the queue was full (429)."
    );
}
