//! The dead-letter topic: records that cannot become rows are produced there, value and key as they
//! came, with headers naming the error and the source topic, partition and offset. A batch's dead
//! letters are delivered (flushed and acknowledged) before its Lance commit, so a record is never
//! both uncounted and skipped; after a crash between the two they may be delivered again (the
//! dead-letter topic is at-least-once, the dataset exactly-once).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use crate::batch::DeadLetter;
use crate::delivery::DeliveryCounter;
use crate::error::{KafkaError, Result, client_err};

/// Header names on dead-lettered records.
pub const HEADER_ERROR: &str = "lexembed.error";
pub const HEADER_ERROR_KIND: &str = "lexembed.error.kind";
pub const HEADER_TOPIC: &str = "lexembed.source.topic";
pub const HEADER_PARTITION: &str = "lexembed.source.partition";
pub const HEADER_OFFSET: &str = "lexembed.source.offset";

pub struct DeadLetterSink {
    topic: String,
    producer: ThreadedProducer<DeliveryCounter>,
}

impl DeadLetterSink {
    /// A producer with the connection settings `base`, idempotent so retries do not duplicate within
    /// one run.
    pub fn new(base: &ClientConfig, topic: &str) -> Result<Self> {
        let mut cfg = base.clone();
        cfg.set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000");
        let producer = cfg
            .create_with_context(DeliveryCounter::default())
            .map_err(client_err(format!(
                "creating the dead-letter producer for {topic}"
            )))?;
        let sink = Self {
            topic: topic.to_string(),
            producer,
        };
        sink.check_topic_exists()?;
        Ok(sink)
    }

    /// Fails at start, not at the first bad record, when the topic is missing.
    fn check_topic_exists(&self) -> Result<()> {
        let md = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), Duration::from_secs(30))
            .map_err(client_err(format!(
                "looking up dead-letter topic {}",
                self.topic
            )))?;
        let found = md
            .topics()
            .iter()
            .any(|t| t.name() == self.topic && t.error().is_none() && !t.partitions().is_empty());
        if found {
            return Ok(());
        }
        Err(KafkaError::DeadLetter {
            topic: self.topic.clone(),
            message: format!(
                "the topic does not exist; create it (e.g. lexembed produce /dev/null --topic {} --partitions 1)",
                self.topic
            ),
        })
    }

    /// Produces `letters` and waits until every one is acknowledged.
    pub fn deliver(&self, letters: &[DeadLetter]) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let counter: &Arc<DeliveryCounter> = self.producer.context();
        let before = counter.failed();
        for d in letters {
            let (partition, offset) = (d.partition.partition.to_string(), d.offset.to_string());
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: HEADER_ERROR,
                    value: Some(d.reason.as_str()),
                })
                .insert(Header {
                    key: HEADER_ERROR_KIND,
                    value: Some(d.kind.name()),
                })
                .insert(Header {
                    key: HEADER_TOPIC,
                    value: Some(d.partition.topic.as_str()),
                })
                .insert(Header {
                    key: HEADER_PARTITION,
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: HEADER_OFFSET,
                    value: Some(offset.as_str()),
                });
            let mut record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&self.topic).headers(headers);
            if let Some(v) = &d.value {
                record = record.payload(v.as_slice());
            }
            if let Some(k) = &d.key {
                record = record.key(k.as_slice());
            }
            self.send(record)?;
        }
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(client_err(format!(
                "delivering dead letters to {}",
                self.topic
            )))?;
        let failed = counter.failed() - before;
        if failed > 0 {
            let last = counter.last_error();
            return Err(KafkaError::DeadLetter {
                topic: self.topic.clone(),
                message: format!("{failed} record(s) not delivered: {last}"),
            });
        }
        Ok(())
    }

    /// Sends one record, waiting while the producer's queue is full.
    fn send<'a>(&self, mut record: BaseRecord<'a, [u8], [u8]>) -> Result<()> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    return Err(client_err(format!("producing to {}", self.topic))(e));
                }
            }
        }
    }
}
