//! OpenAI's embeddings API: `POST /v1/embeddings` (`input`, `model`, `dimensions`, `prompt_name` as
//! an extension (TEI's field: one of the model's prompts; default: the model's default prompt),
//! `encoding_format`), `GET /v1/models` and `GET /v1/models/{id}`, with OpenAI's response and error
//! shapes, so the official SDKs work unchanged. `dimensions` picks a Matryoshka dim (truncate, then
//! renormalise); `base64` is the little-endian f32 bytes the SDKs decode (their default).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, ServeState, input};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

/// `POST /v1/embeddings`' body.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    pub input: Value,
    pub model: String,
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// One of the model's prompts (`query`, `document`, …) put before every input; default: the
    /// model's `default_prompt_name`, else none (sentence-transformers' `encode`).
    #[serde(default)]
    pub prompt_name: Option<String>,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Accepted and ignored, as OpenAI's end-user id.
    #[serde(default)]
    pub user: Option<String>,
}

pub async fn embeddings(
    State(state): State<Arc<ServeState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: EmbeddingsRequest = input::parse(body)?;
    check_model(&state, &req.model)?;
    let dim = state.dim(req.dimensions)?;
    let inputs = input::inputs("input", req.input, &state.input_rules())?;
    let prompt = state.request_prompt(req.prompt_name.as_deref(), &inputs)?;
    let inputs = state.within_token_limit("input", inputs, &prompt).await?;
    let out = state.embed(inputs, &prompt, dim, true).await?;
    let data: Vec<Value> = out
        .rows
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = match req.encoding_format {
                EncodingFormat::Float => json!(v),
                EncodingFormat::Base64 => json!(base64_f32(v)),
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": state.model_name,
        "usage": {"prompt_tokens": out.tokens, "total_tokens": out.tokens},
        // Not OpenAI's: how many inputs were cut at the model's max length (SDKs keep extra fields).
        "truncated_inputs": out.truncated_count(),
    })))
}

/// Little-endian f32 bytes, base64: what OpenAI's SDKs decode.
fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A request for another model gets OpenAI's 404 `model_not_found`: vectors of another model
/// would silently not match the corpus.
fn check_model(state: &ServeState, model: &str) -> Result<(), ApiError> {
    if model == state.model_name {
        return Ok(());
    }
    Err(ApiError::invalid(
        "model",
        format!(
            "The model `{model}` does not exist: this server serves `{}`",
            state.model_name
        ),
    )
    .with_status(StatusCode::NOT_FOUND)
    .with_code("model_not_found"))
}

fn model_object(state: &ServeState) -> Value {
    json!({"id": state.model_name, "object": "model", "created": 0, "owned_by": "lexembed"})
}

pub async fn models(State(state): State<Arc<ServeState>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [model_object(&state)]}))
}

pub async fn model(
    State(state): State<Arc<ServeState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_model(&state, &id)?;
    Ok(Json(model_object(&state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        let v = [1.0f32, -0.5, 3.25e-3];
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(base64_f32(&v))
            .unwrap();
        let back: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(back, v);
    }
}
