//! What clients send, checked before anything is queued: JSON bodies parsed with the path of the
//! field at fault (`input[2]: invalid type…`), and the inputs to embed: a string or an array of
//! non-empty strings, at most `max_inputs`. Token ids (an array of integers, or an array of them, as
//! OpenAI's API takes) are refused unless the server was started with `--token-ids`: the server
//! tokenizes, and the ids clients send by default (LangChain's `OpenAIEmbeddings` sends tiktoken's)
//! mean nothing to this model. With it, each id must be in the model's vocabulary and each input
//! within its max length.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use lexembed_encoder::tokenize::TokenIds;

use crate::ApiError;

/// What a request's inputs may be.
#[derive(Debug, Clone, Copy)]
pub struct InputRules {
    /// Inputs per request at most.
    pub max_inputs: usize,
    /// Token ids accepted as the model's own (`--token-ids`), or refused.
    pub token_ids: Option<TokenIdRules>,
}

/// The bounds of the model's own token ids.
#[derive(Debug, Clone, Copy)]
pub struct TokenIdRules {
    /// Ids run below this (the tokenizer's vocabulary, added tokens included).
    pub vocab_size: usize,
    /// Ids per input at most (the model's max length).
    pub max_length: usize,
}

/// A request's inputs: texts, or the model's own token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    Texts(Vec<String>),
    Ids(Vec<TokenIds>),
}

impl Inputs {
    pub fn len(&self) -> usize {
        match self {
            Inputs::Texts(t) => t.len(),
            Inputs::Ids(i) => i.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
LangChain's OpenAIEmbeddings sends tiktoken ids unless created with check_embedding_ctx_length=False; \
ids made with this model's own tokenizer are taken when the server runs with --token-ids";

/// The inputs of `value` (field `field`): a string, an array of strings, and with token ids
/// accepted an array of integers (one input) or an array of such arrays.
pub fn inputs(field: &str, value: Value, rules: &InputRules) -> Result<Inputs, ApiError> {
    let Some(ids_rules) = rules.token_ids else {
        return texts(field, value, rules.max_inputs).map(Inputs::Texts);
    };
    let items = match value {
        Value::Array(items) if items.first().is_some_and(is_id_like) => items,
        other => return texts(field, other, rules.max_inputs).map(Inputs::Texts),
    };
    // An array of integers is one input; an array of arrays, one input each.
    if items.iter().all(|v| !v.is_array()) {
        return Ok(Inputs::Ids(vec![token_ids(field, items, &ids_rules)?]));
    }
    check_count(field, items.len(), rules.max_inputs)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Array(ids) => token_ids(&format!("{field}[{i}]"), ids, &ids_rules),
            other => Err(ApiError::invalid(
                format!("{field}[{i}]"),
                format!(
                    "expected an array of token ids like the inputs before it, got {}",
                    kind(&other)
                ),
            )),
        })
        .collect::<Result<_, _>>()
        .map(Inputs::Ids)
}

/// Whether `v` starts token ids: an integer, or an array.
fn is_id_like(v: &Value) -> bool {
    v.is_number() || v.is_array()
}

/// One input's token ids (field `field`), checked against the model's vocabulary and max length.
fn token_ids(field: &str, ids: Vec<Value>, rules: &TokenIdRules) -> Result<TokenIds, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid(field, "no token ids: the array is empty"));
    }
    if ids.len() > rules.max_length {
        return Err(ApiError::invalid(
            field,
            format!(
                "{} token ids, over the model's max length of {} (special tokens included)",
                ids.len(),
                rules.max_length
            ),
        ));
    }
    ids.into_iter()
        .enumerate()
        .map(|(j, id)| match id.as_u64() {
            Some(n) if (n as usize) < rules.vocab_size => Ok(n as u32),
            _ => Err(ApiError::invalid(
                format!("{field}[{j}]"),
                format!(
                    "{id} is not a token id of this model (integers below {})",
                    rules.vocab_size
                ),
            )),
        })
        .collect::<Result<_, _>>()
        .map(TokenIds)
}

fn check_count(field: &str, n: usize, max_inputs: usize) -> Result<(), ApiError> {
    if n > max_inputs {
        return Err(ApiError::invalid(
            field,
            format!("{n} inputs, over the limit of {max_inputs} inputs per request (--max-inputs)"),
        )
        .with_code("too_many_inputs"));
    }
    Ok(())
}

/// The texts of `value` (field `field`): one string, or an array of strings.
fn texts(field: &str, value: Value, max_inputs: usize) -> Result<Vec<String>, ApiError> {
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
    check_count(field, items.len(), max_inputs)?;
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

    /// With `--token-ids`: an array of integers is one input, an array of arrays many; ids outside
    /// the vocabulary, inputs past the max length, empty or mixed arrays are named. Texts still work.
    #[test]
    fn token_ids_when_accepted_are_checked_and_named() {
        let rules = InputRules {
            max_inputs: 3,
            token_ids: Some(TokenIdRules {
                vocab_size: 100,
                max_length: 4,
            }),
        };
        let inputs = |v: Value| inputs("input", v, &rules);
        let ids = |v: &[u32]| TokenIds(v.to_vec());
        assert_eq!(
            inputs(serde_json::json!([0, 5, 2])).unwrap(),
            Inputs::Ids(vec![ids(&[0, 5, 2])])
        );
        assert_eq!(
            inputs(serde_json::json!([[0, 2], [0, 7, 2]])).unwrap(),
            Inputs::Ids(vec![ids(&[0, 2]), ids(&[0, 7, 2])])
        );
        assert_eq!(
            inputs(serde_json::json!(["a"])).unwrap(),
            Inputs::Texts(vec!["a".into()])
        );
        let named = |v: Value| param(inputs(v).unwrap_err());
        assert_eq!(named(serde_json::json!([[0, 2], [0, 100]])), "input[1][1]");
        assert_eq!(named(serde_json::json!([0, -1])), "input[1]");
        assert_eq!(named(serde_json::json!([[0, 2], "a"])), "input[1]");
        assert_eq!(named(serde_json::json!([[0, 2], []])), "input[1]");
        assert_eq!(named(serde_json::json!([[1, 2, 3, 4, 5]])), "input[0]");
        assert_eq!(named(serde_json::json!([[1], [1], [1], [1]])), "input");
        let refused = |v: Value| {
            let rules = InputRules {
                max_inputs: 3,
                token_ids: None,
            };
            inputs_refused(v, &rules)
        };
        assert!(refused(serde_json::json!([0, 5])).contains("--token-ids"));
    }

    fn inputs_refused(v: Value, rules: &InputRules) -> String {
        inputs("input", v, rules).unwrap_err().message
    }
}
