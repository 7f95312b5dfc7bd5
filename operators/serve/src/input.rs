//! What clients send, checked before anything is queued: JSON bodies parsed with the path of the
//! field at fault (`input[2]: invalid type…`), and the texts to embed (a string or an array of
//! non-empty strings, at most `max_inputs`; token ids are refused: the server tokenizes, and the ids
//! clients send by default (LangChain's `OpenAIEmbeddings` sends tiktoken's) mean nothing to this
//! model).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ApiError;

/// The body as `T`, or a 4xx naming the field (413 past the body limit).
pub fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        ApiError::invalid("body", e.body_text()).with_status(match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        })
    })?;
    if let Err(e) = std::str::from_utf8(&body) {
        return Err(ApiError::invalid(
            "body",
            format!("not UTF-8 (byte {})", e.valid_up_to()),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || inner.is_syntax() || inner.is_eof() {
            // Not JSON, or a missing field: serde's message names what it can.
            ApiError::invalid("body", inner.to_string())
        } else {
            ApiError::invalid(path, inner.to_string())
        }
    })
}

/// Why token ids are refused, and what to set in the client that sent them.
pub const TOKEN_IDS_REFUSED: &str = "token ids are not accepted: send text (the server tokenizes as the corpus was). \
LangChain's OpenAIEmbeddings sends tiktoken ids unless created with check_embedding_ctx_length=False";

/// The texts of `value` (field `field`): one string, or an array of strings.
pub fn texts(field: &str, value: Value, max_inputs: usize) -> Result<Vec<String>, ApiError> {
    let items = match value {
        Value::String(s) => vec![Value::String(s)],
        Value::Array(items) => items,
        other => {
            return Err(ApiError::invalid(
                field,
                format!(
                    "expected a string or an array of strings, got {}",
                    kind(&other)
                ),
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::invalid(field, "no texts: the array is empty"));
    }
    if items.len() > max_inputs {
        return Err(ApiError::invalid(
            field,
            format!(
                "{} inputs, over the limit of {max_inputs} inputs per request (--max-inputs)",
                items.len()
            ),
        )
        .with_code("too_many_inputs"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if s.is_empty() => Err(ApiError::invalid(
                format!("{field}[{i}]"),
                "empty string: nothing to embed",
            )),
            Value::String(s) => Ok(s),
            Value::Number(_) | Value::Array(_) => Err(ApiError::invalid(
                format!("{field}[{i}]"),
                TOKEN_IDS_REFUSED,
            )),
            other => Err(ApiError::invalid(
                format!("{field}[{i}]"),
                format!("expected a string, got {}", kind(&other)),
            )),
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Req {
        #[allow(dead_code)]
        input: Value,
        #[allow(dead_code)]
        dimensions: Option<u32>,
    }

    fn param(e: ApiError) -> String {
        e.param.unwrap_or_default()
    }

    #[test]
    fn errors_name_the_field() {
        let bad = |body: &[u8]| parse::<Req>(Ok(Bytes::copy_from_slice(body))).unwrap_err();
        assert_eq!(
            param(bad(br#"{"input":"a","dimensions":"x"}"#)),
            "dimensions"
        );
        assert_eq!(
            param(bad(br#"{"input":"a","dimensions":-1}"#)),
            "dimensions"
        );
        assert!(bad(br#"{"dimensions":64}"#).message.contains("input"));
        assert_eq!(param(bad(b"{\"input\":\"\xff\"}")), "body");
        assert_eq!(param(bad(b"{\"input\":")), "body");
        let texts = |v: Value| texts("input", v, 3);
        assert_eq!(texts(Value::from("a")).unwrap(), ["a"]);
        assert_eq!(
            param(texts(serde_json::json!(["a", ""])).unwrap_err()),
            "input[1]"
        );
        assert_eq!(
            param(texts(serde_json::json!(["a", 7])).unwrap_err()),
            "input[1]"
        );
        let ids = texts(serde_json::json!([[1, 2]])).unwrap_err();
        assert_eq!(param(ids.clone()), "input[0]");
        assert!(
            ids.message.contains("check_embedding_ctx_length=False"),
            "{ids}"
        );
        assert_eq!(param(texts(serde_json::json!([])).unwrap_err()), "input");
        assert_eq!(
            param(texts(serde_json::json!({"a": 1})).unwrap_err()),
            "input"
        );
        let e = texts(serde_json::json!(["a", "b", "c", "d"])).unwrap_err();
        assert!(e.message.contains("limit of 3"), "{e}");
    }
}
