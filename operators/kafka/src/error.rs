//! Errors of the Kafka operator: each says which topic, partition, offset or setting is at fault.

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka: {context}: {source}")]
    Client {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "{topic}/{partition}@{offset}: {reason} (source.on_bad_record is fail; set a dead_letter_topic or on_bad_record: skip to go on)"
    )]
    BadRecord {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("dead-letter topic {topic}: {message}")]
    DeadLetter { topic: String, message: String },
    #[error("offsets recorded in {uri} version {version}: {message}")]
    Offsets {
        uri: String,
        version: u64,
        message: String,
    },
    #[error(
        "{uri}: {attempts} commits in a row were superseded by other commits; the dataset is committed to faster than this replica can fence (fewer replicas, or a longer kafka.commit_interval_ms)"
    )]
    Superseded { uri: String, attempts: usize },
    #[error(
        "the Kafka broker at {brokers} has not answered for {seconds} s (last error: {error}); exiting so that a restart reconnects and resumes from the offsets in Lance"
    )]
    BrokerSilent {
        brokers: String,
        seconds: u64,
        error: String,
    },
    #[error(
        "the Kafka broker at {brokers} answers a new client, but this consumer's requests have failed for {seconds} s (last error: {error}); exiting so that a restart reconnects and resumes from the offsets in Lance"
    )]
    ConsumerStuck {
        brokers: String,
        seconds: u64,
        error: String,
    },
    #[error(
        "{failed} of {sent} messages to topic {topic} were not acknowledged (last: {last}); those may or may not be in the topic, the others are, once each"
    )]
    Undelivered {
        topic: String,
        failed: u64,
        sent: u64,
        last: String,
    },
    #[error(transparent)]
    Pipeline(#[from] lexembed_pipeline::PipelineError),
    #[error(transparent)]
    Encoder(#[from] lexembed_encoder::EncoderError),
    #[error(transparent)]
    Store(#[from] lexembed_lance::StoreError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Runtime(String),
}

pub type Result<T, E = KafkaError> = std::result::Result<T, E>;

/// Wraps an rdkafka error with what was being done.
pub fn client_err(
    context: impl Into<String>,
) -> impl FnOnce(rdkafka::error::KafkaError) -> KafkaError {
    let context = context.into();
    move |source| KafkaError::Client { context, source }
}
