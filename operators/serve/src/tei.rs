//! text-embeddings-inference's `POST /embed`: `inputs` (a string or an array), `truncate`,
//! `normalize`, `dimensions`, `prompt_name` (TEI's: one of the model's prompts); the answer is an array of vectors, and the header
//! `x-truncated-inputs` says how many inputs were cut. As in TEI, an input over the model's max length
//! is refused (413) unless `truncate` is true.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::{ApiError, ServeState, input};

/// Response header with the number of inputs cut at the max length.
pub const TRUNCATED_HEADER: &str = "x-truncated-inputs";

/// `POST /embed`'s body.
#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    pub inputs: Value,
    /// Cut inputs over the model's max length instead of refusing them.
    #[serde(default)]
    pub truncate: bool,
    /// Renormalise (unit length) after taking the Matryoshka prefix.
    #[serde(default = "yes")]
    pub normalize: bool,
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// One of the model's prompts (`query`, `document`, …) put before every input; default: the
    /// model's `default_prompt_name`, else none (sentence-transformers' `encode`).
    #[serde(default)]
    pub prompt_name: Option<String>,
}

fn yes() -> bool {
    true
}

pub async fn embed(
    State(state): State<Arc<ServeState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: EmbedRequest = input::parse(body)?;
    let dim = state.dim(req.dimensions)?;
    let texts = input::texts("inputs", req.inputs, state.limits.max_inputs)?;
    let prompt = state.request_prompt(req.prompt_name.as_deref())?;
    let out = state.embed(texts, &prompt, dim, req.normalize).await?;
    if !req.truncate
        && let Some(i) = out.truncated.iter().position(|&t| t)
    {
        let max = state.queue.encoder().model().max_seq_length;
        return Err(ApiError::invalid(
            format!("inputs[{i}]"),
            format!("longer than the model's {max} tokens: send truncate: true to cut it"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let count = HeaderValue::from(out.truncated_count());
    let mut response = Json(out.rows).into_response();
    response
        .headers_mut()
        .insert(HeaderName::from_static(TRUNCATED_HEADER), count);
    Ok(response)
}
