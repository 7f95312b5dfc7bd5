//! One Kafka message → one document row, or the reason it cannot be one (for the dead-letter topic).
//! The value is a JSON object with the spec's id, text and metadata fields; with `key_as_id` the key
//! is the id. Checks are the file sources' (`lexembed_pipeline::source::rows`), so a record is good or
//! bad the same way whether it arrives in a file or on a topic.

use lexembed_pipeline::source::rows::{Doc, json_doc};
pub use lexembed_pipeline::source::rows::{Refusal, RefusalKind};
use lexembed_pipeline::spec::SourceSpec;

/// Parses a message value (and key, when it is the id) into a document.
pub fn message_doc(
    value: Option<&[u8]>,
    key: Option<&[u8]>,
    spec: &SourceSpec,
    key_as_id: bool,
) -> Result<Doc, Refusal> {
    let Some(value) = value else {
        return Err(Refusal {
            kind: RefusalKind::NoValue,
            message: "message has no value (a tombstone?)".into(),
        });
    };
    let id = if key_as_id {
        match key {
            Some(k) if !k.is_empty() => Some(k),
            _ => {
                return Err(Refusal {
                    kind: RefusalKind::MissingId,
                    message: "key_as_id is set but the message has no key".into(),
                });
            }
        }
    } else {
        None
    };
    json_doc(value, spec, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SourceSpec {
        let y = "name: k\nsource:\n  kind: kafka\n  max_text_bytes: 10\n  kafka: {brokers: b, topics: [t], group_id: g}\nsink: {uri: o, mode: append}\n";
        lexembed_pipeline::spec::parse(y, std::path::Path::new("k.yaml"))
            .unwrap()
            .source
    }

    #[test]
    fn every_kind_of_bad_message_is_named() {
        let s = spec();
        let kind = |v: &[u8]| {
            message_doc(Some(v), None, &s, false)
                .unwrap_err()
                .kind
                .name()
        };
        assert_eq!(kind(b"nope"), "not_json");
        assert_eq!(kind(b"[1]"), "not_object");
        assert_eq!(kind(b"{\"id\":\"a\"}"), "missing_text");
        assert_eq!(kind(b"{\"id\":\"a\",\"text\":3}"), "text_not_string");
        assert_eq!(kind(b"{\"text\":\"x\"}"), "missing_id");
        assert_eq!(
            kind(b"{\"id\":\"a\",\"text\":\"01234567890\"}"),
            "too_large"
        );
        assert_eq!(kind(b"{\"id\":\"a\",\"text\":\"\xff\"}"), "invalid_utf8");
        assert_eq!(
            message_doc(None, None, &s, false).unwrap_err().kind.name(),
            "no_value"
        );
        let d = message_doc(Some(b"{\"id\":7,\"text\":\"hola\"}"), None, &s, false).unwrap();
        assert_eq!((d.id.as_str(), d.text.as_str()), ("7", "hola"));
        let d = message_doc(Some(b"{\"text\":\"hola\"}"), Some(b"k1"), &s, true).unwrap();
        assert_eq!(d.id, "k1");
        assert_eq!(
            message_doc(Some(b"{\"text\":\"hola\"}"), None, &s, true)
                .unwrap_err()
                .kind
                .name(),
            "missing_id"
        );
    }
}
