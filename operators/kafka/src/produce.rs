//! Loading records into a topic, for demos, tests and benchmarks: each non-empty line of a file
//! becomes one message, byte for byte (so bad records can be produced on purpose), keyed by a JSON
//! field when asked, or tombstones (each line a key, the value null). Also creates topics. A message
//! librdkafka gave up on (its `message.timeout.ms` passed, or a fatal producer error) is an error of
//! the whole load, with how many and the latest reason: never a silent success.

use std::io::BufRead;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use tracing::info;

use crate::delivery::DeliveryCounter;
use crate::error::{KafkaError, Result, client_err};

#[derive(Debug, Clone)]
pub struct ProduceOptions {
    pub brokers: String,
    pub topic: String,
    /// JSON field whose value becomes the message key (lines that are not JSON get no key).
    pub key_field: Option<String>,
    /// Each line is a key: produce tombstones (null values) instead of the lines.
    pub tombstones: bool,
    /// librdkafka producer properties.
    pub properties: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProduceSummary {
    pub topic: String,
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Creates `topic` with `partitions` partitions; an existing topic is fine.
pub async fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(client_err("creating the admin client"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(client_err(format!("creating topic {topic}")))?;
    for r in results {
        match r {
            Ok(_) => info!(topic, partitions, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => info!(topic, "topic exists"),
            Err((t, code)) => {
                return Err(KafkaError::Runtime(format!("creating topic {t}: {code}")));
            }
        }
    }
    Ok(())
}

/// The load's error when any of its `sent` messages was not delivered.
fn check_delivered(counter: &DeliveryCounter, topic: &str, sent: u64) -> Result<()> {
    match counter.failed() {
        0 => Ok(()),
        failed => Err(KafkaError::Undelivered {
            topic: topic.to_string(),
            failed,
            sent,
            last: counter.last_error(),
        }),
    }
}

/// Produces every non-empty line of `input` to the topic and waits for all acknowledgements; fails
/// when any message was not delivered.
pub fn produce_lines(input: impl BufRead, opts: &ProduceOptions) -> Result<ProduceSummary> {
    let started = Instant::now();
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &opts.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000");
    for (k, v) in &opts.properties {
        cfg.set(k, v);
    }
    let producer: ThreadedProducer<DeliveryCounter> = cfg
        .create_with_context(DeliveryCounter::default())
        .map_err(client_err("creating the producer"))?;
    let mut summary = ProduceSummary {
        topic: opts.topic.clone(),
        ..ProduceSummary::default()
    };
    for line in input.split(b'\n') {
        let line = line.map_err(|e| KafkaError::Io {
            context: "reading the input".into(),
            source: e,
        })?;
        if line.trim_ascii().is_empty() {
            continue;
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&opts.topic);
        let key = match opts.tombstones {
            true => Some(line.trim_ascii().to_vec()),
            false => {
                record = record.payload(&line);
                opts.key_field.as_deref().and_then(|f| key_of(&line, f))
            }
        };
        if let Some(k) = &key {
            record = record.key(k.as_slice());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(client_err(format!("producing to {}", opts.topic))(e)),
            }
        }
        summary.messages += 1;
        summary.bytes += line.len() as u64;
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(client_err(format!("flushing to {}", opts.topic)))?;
    check_delivered(producer.context(), &opts.topic, summary.messages)?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The value of `field` in a JSON object line, as key bytes (strings without quotes).
fn key_of(line: &[u8], field: &str) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    match v.get(field)? {
        serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
        serde_json::Value::Null => None,
        other => Some(other.to_string().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_not_delivered_fails_the_load_with_the_count_and_reason() {
        // Nothing listens on port 1: librdkafka gives up on each message after its timeout.
        let opts = ProduceOptions {
            brokers: "127.0.0.1:1".into(),
            topic: "nowhere".into(),
            key_field: None,
            tombstones: false,
            properties: vec![("message.timeout.ms".into(), "500".into())],
        };
        let err = produce_lines(&b"{\"id\": 1}\n{\"id\": 2}\n"[..], &opts).unwrap_err();
        match &err {
            KafkaError::Undelivered {
                topic,
                failed,
                sent,
                last,
            } => {
                assert_eq!((topic.as_str(), *failed, *sent), ("nowhere", 2, 2));
                assert!(last.contains("timed out"), "{last}");
            }
            other => panic!("expected Undelivered, got {other}"),
        }
        assert!(err.to_string().contains("2 of 2 messages"), "{err}");
    }
}
