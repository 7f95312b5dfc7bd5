//! text-embeddings-inference's `POST /embed` (and `POST /`, as TEI): `inputs` (a string or an
//! array), `truncate`, `truncation_direction` (`right` only), `normalize`, `dimensions`,
//! `prompt_name` (TEI's: one of the model's prompts), at the top level or in `parameters` (what
//! `huggingface_hub`'s `InferenceClient` sends); the answer is an array of vectors, and the header
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

/// `POST /embed`'s body (also `POST /`, where TEI answers embeddings too). The options may also
/// come in a `parameters` object, the shape `huggingface_hub`'s `InferenceClient.feature_extraction`
/// sends; a value there applies where the top level does not set it.
#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    pub inputs: Value,
    /// Cut inputs over the model's max length instead of refusing them (default false).
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Which end is cut: only `right` (`Right`) is served, as sentence-transformers cuts.
    #[serde(default)]
    pub truncation_direction: Option<TruncationDirection>,
    /// Renormalise (unit length) after taking the Matryoshka prefix (default true).
    #[serde(default)]
    pub normalize: Option<bool>,
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// One of the model's prompts (`query`, `document`, …) put before every input; default: the
    /// model's `default_prompt_name`, else none (sentence-transformers' `encode`).
    #[serde(default)]
    pub prompt_name: Option<String>,
    #[serde(default)]
    pub parameters: Option<EmbedOptions>,
}

/// `/embed`'s options as `parameters` carries them, each unset unless the request sets it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedOptions {
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Option<TruncationDirection>,
    #[serde(default)]
    pub normalize: Option<bool>,
    #[serde(default)]
    pub dimensions: Option<u32>,
    #[serde(default)]
    pub prompt_name: Option<String>,
}

/// TEI's `truncation_direction`; the model is trained on texts cut at the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TruncationDirection {
    #[serde(alias = "right")]
    Right,
}

impl EmbedRequest {
    /// The request's options: each top-level one, else the one in `parameters`.
    fn options(&mut self) -> EmbedOptions {
        let p = self.parameters.take().unwrap_or_default();
        EmbedOptions {
            truncate: self.truncate.or(p.truncate),
            truncation_direction: self.truncation_direction.or(p.truncation_direction),
            normalize: self.normalize.or(p.normalize),
            dimensions: self.dimensions.or(p.dimensions),
            prompt_name: self.prompt_name.take().or(p.prompt_name),
        }
    }
}

pub async fn embed(
    State(state): State<Arc<ServeState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut req: EmbedRequest = input::parse(body)?;
    let options = req.options();
    let dim = state.dim(options.dimensions)?;
    let inputs = input::inputs("inputs", req.inputs, &state.input_rules())?;
    let prompt = state.request_prompt(options.prompt_name.as_deref(), &inputs)?;
    let inputs = state.within_token_limit("inputs", inputs, &prompt).await?;
    let out = state
        .embed(inputs, &prompt, dim, options.normalize.unwrap_or(true))
        .await?;
    if !options.truncate.unwrap_or(false)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<EmbedRequest, ApiError> {
        input::parse(Ok(Bytes::copy_from_slice(body.as_bytes())))
    }

    #[test]
    fn options_come_from_the_top_level_or_huggingface_hubs_parameters() {
        let mut req = parse(r#"{"inputs": "a", "dimensions": 64, "parameters": {"dimensions": 128, "normalize": false, "truncate": null}}"#).unwrap();
        let o = req.options();
        assert_eq!(o.dimensions, Some(64), "the top level wins");
        assert_eq!((o.normalize, o.truncate), (Some(false), None));
        let req = parse(r#"{"inputs": "a", "parameters": {"truncation_direction": "Right", "prompt_name": null}}"#).unwrap();
        assert_eq!(
            req.parameters.unwrap().truncation_direction,
            Some(TruncationDirection::Right)
        );
    }

    #[test]
    fn unknown_or_unserved_options_are_refused_naming_them() {
        let e = parse(r#"{"inputs": "a", "parameters": {"dimension": 64}}"#).unwrap_err();
        assert!(e.message.contains("dimension"), "{e}");
        let e = parse(r#"{"inputs": "a", "truncation_direction": "Left"}"#).unwrap_err();
        assert!(e.message.contains("Left"), "{e}");
    }
}
