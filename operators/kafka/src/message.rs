//! One Kafka message → one document row (or, with `sink.mode: upsert`, a deletion: a tombstone deletes
//! its key, a value whose text is null its id), or the reason it cannot be one (for the dead-letter
//! topic). The value is a JSON object with the spec's id, text and metadata fields; with `key_as_id`
//! the key is the id. Checks are the file sources' (`lexembed_pipeline::source::rows`), so a record is good or
//! bad the same way whether it arrives in a file or on a topic.

use lexembed_pipeline::source::rows::{Change, json_change};
pub use lexembed_pipeline::source::rows::{Refusal, RefusalKind};
use lexembed_pipeline::spec::SourceSpec;

/// Parses a message value (and key, when it is the id) into a row or a deletion.
pub fn message_change(
    value: Option<&[u8]>,
    key: Option<&[u8]>,
    spec: &SourceSpec,
    key_as_id: bool,
) -> Result<Change, Refusal> {
    let Some(value) = value else {
        return tombstone(key, spec);
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
    json_change(value, spec, id)
}

/// A message without a value: with upserts, the deletion of its key.
fn tombstone(key: Option<&[u8]>, spec: &SourceSpec) -> Result<Change, Refusal> {
    let refuse = |message: &str| {
        Err(Refusal {
            kind: RefusalKind::NoValue,
            message: message.into(),
        })
    };
    if !spec.deletes {
        return refuse(
            "message has no value (a tombstone; with sink.mode upsert it deletes its key)",
        );
    }
    match key.map(std::str::from_utf8) {
        Some(Ok(id)) if !id.is_empty() => Ok(Change::Delete(id.to_string())),
        Some(Err(_)) => refuse("tombstone whose key is not UTF-8: no id to delete"),
        _ => refuse("tombstone without a key: no id to delete"),
    }
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

    /// With upserts, a tombstone deletes its key and a null text its id; a tombstone without a key,
    /// or a missing text, is still refused.
    #[test]
    fn upserts_take_tombstones_and_null_texts_as_deletions() {
        let mut s = spec();
        s.deletes = true;
        let change = |v: Option<&[u8]>, k: Option<&[u8]>| message_change(v, k, &s, false);
        assert_eq!(
            change(None, Some(b"art-66")),
            Ok(Change::Delete("art-66".into()))
        );
        assert_eq!(
            change(Some(b"{\"id\":\"art-7\",\"text\":null}"), None),
            Ok(Change::Delete("art-7".into()))
        );
        for (v, k, kind) in [
            (None, None, "no_value"),
            (None, Some(&b""[..]), "no_value"),
            (Some(&b"{\"id\":\"a\"}"[..]), None, "missing_text"),
            (Some(&b"{\"text\":null}"[..]), None, "missing_id"),
        ] {
            assert_eq!(change(v, k).unwrap_err().kind.name(), kind, "{v:?} {k:?}");
        }
    }

    #[test]
    fn every_kind_of_bad_message_is_named() {
        let s = spec();
        let kind = |v: &[u8]| {
            message_change(Some(v), None, &s, false)
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
            message_change(None, Some(b"k1"), &s, false)
                .unwrap_err()
                .kind
                .name(),
            "no_value"
        );
        let row = |c| match c {
            Ok(Change::Row(d)) => d,
            other => panic!("not a row: {other:?}"),
        };
        let d = row(message_change(
            Some(b"{\"id\":7,\"text\":\"hola\"}"),
            None,
            &s,
            false,
        ));
        assert_eq!((d.id.as_str(), d.text.as_str()), ("7", "hola"));
        let d = row(message_change(
            Some(b"{\"text\":\"hola\"}"),
            Some(b"k1"),
            &s,
            true,
        ));
        assert_eq!(d.id, "k1");
        assert_eq!(
            message_change(Some(b"{\"text\":\"hola\"}"), None, &s, true)
                .unwrap_err()
                .kind
                .name(),
            "missing_id"
        );
    }
}
