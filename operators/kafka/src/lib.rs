//! Kafka streaming ingestion for lexembed: a consumer-group operator that turns a topic into a Lance
//! dataset of Matryoshka vectors exactly once.
//!
//! Data flows one way: Kafka messages → micro-batch (`batch`, on the polling thread of `operator`) →
//! the encoder stage → Matryoshka columns → batches gathered by the commit policy (`commit_policy`)
//! → one Lance commit per gather that records the offsets it covers (`writer`, `offsets`), landing
//! only on the version its fence read (`fenced`), then the
//! offsets are committed to Kafka for lag tools. Lance, not the group, is the source of truth for where
//! each partition resumes (`context` seeks on every assignment). Records that cannot become rows go to a dead-letter
//! topic (`dead_letter`). `broker_watch` tells a quiet topic from a broker that stopped answering; `link` turns librdkafka's
//! reconnection attempts into one log line per state change and a counter. `metrics` and `http` serve Prometheus text, `/healthz` and `/readyz`;
//! `produce` loads JSONL into a topic for demos, tests and benchmarks.

pub mod batch;
pub mod broker_watch;
pub mod commit_policy;
pub mod context;
pub mod dead_letter;
pub mod delivery;
pub mod error;
pub mod fenced;
pub mod http;
pub mod link;
pub mod message;
pub mod metrics;
pub mod offsets;
pub mod operator;
pub mod produce;
mod writer;

pub use error::{KafkaError, Result};
pub use http::RenderMetrics;
pub use metrics::BATCH_SECONDS_BUCKETS;
pub use operator::{OperatorOptions, OperatorSummary, run_operator};
pub use produce::{ProduceOptions, ProduceSummary, create_topic, produce_lines};
