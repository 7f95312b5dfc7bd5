//! The consumer's connection to the brokers as the log and the metrics tell it. librdkafka reports
//! every failed connection attempt while a broker is away (each one three ways: its own log line,
//! the error callback and a consumer error; 17 WARN/ERROR lines for one broker restart in the
//! faults harness), and reconnects by itself. An operator needs the state changes, not the attempts:
//! one WARN when the connection is lost, one INFO when the broker answers again (how long it was
//! away, how many failures it took), and the attempts as a counter
//! (`lexembed_kafka_transport_errors_total`) beside a 0/1 gauge (`lexembed_kafka_broker_connected`).
//! Offset commits to the group (lag tools' copy of what Lance holds) go the same way: one WARN when
//! they start failing, one INFO when one succeeds again, each failure counted
//! (`lexembed_kafka_offset_commit_failures_total`).

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::types::RDKafkaErrorCode;
use tracing::{debug, info, warn};

use crate::metrics::{Count, Metrics};

/// Whether the brokers answer, and since when they have not.
pub struct BrokerLink {
    brokers: String,
    metrics: Arc<Metrics>,
    /// Set from the first failure after an answer until the next answer.
    lost_since: Mutex<Option<Instant>>,
    /// Failures since the connection was lost.
    failures: AtomicU64,
    /// Whether the last offset commit to the group failed.
    commits_failing: AtomicBool,
}

impl BrokerLink {
    pub fn new(brokers: &str, metrics: Arc<Metrics>) -> Self {
        metrics.broker_connected(true);
        Self {
            brokers: brokers.to_string(),
            metrics,
            lost_since: Mutex::new(None),
            failures: AtomicU64::new(0),
            commits_failing: AtomicBool::new(false),
        }
    }

    /// A transport failure (librdkafka retries it). Logs a WARN only for the first one after an
    /// answer; returns whether this one lost the connection.
    pub fn failed(&self, error: &dyn Display) -> bool {
        self.metrics.add(Count::TransportErrors, 1);
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut lost = self.lost();
        if lost.is_some() {
            debug!(brokers = %self.brokers, %error, "broker connection still failing");
            return false;
        }
        *lost = Some(Instant::now());
        self.metrics.broker_connected(false);
        warn!(brokers = %self.brokers, %error, "lost the connection to the broker; librdkafka reconnects");
        true
    }

    /// The broker answered (a metadata reply, an assignment, an acknowledged commit; not a message,
    /// which may have been fetched before the connection dropped). Returns how long it had been away
    /// when this answer ended an outage.
    pub fn answered(&self) -> Option<Duration> {
        let since = self.lost().take()?;
        let away = since.elapsed();
        let failures = self.failures.swap(0, Ordering::Relaxed);
        self.metrics.broker_connected(true);
        info!(
            brokers = %self.brokers,
            away_s = away.as_secs_f64(),
            failures,
            "the broker answers again"
        );
        Some(away)
    }

    /// An offset commit to the group ended (`failure` when it failed). Returns whether this one
    /// changed the state (started or ended a run of failures).
    pub fn offsets_committed(&self, failure: Option<&rdkafka::error::KafkaError>) -> bool {
        let failing = failure.is_some();
        let was = self.commits_failing.swap(failing, Ordering::Relaxed);
        if let Some(error) = failure {
            self.metrics.add(Count::OffsetCommitFailures, 1);
            if !was {
                warn!(%error, "offset commits to the group fail (Lance holds the offsets; lag tools lag until one succeeds)");
            }
        } else {
            if was {
                info!("offset commits to the group succeed again");
            }
            // The coordinator acknowledged a commit: the broker answers.
            self.answered();
        }
        was != failing
    }

    fn lost(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.lost_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether `error` is a connection failure librdkafka retries by itself (a broker restarting,
/// unreachable, or its name not resolving yet).
pub fn is_transport_failure(error: &rdkafka::error::KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of failures is one lost connection (one WARN), every failure counted; an answer ends
    /// it once, and the next failure is a new outage.
    #[test]
    fn one_state_change_per_outage_and_every_failure_counted() {
        let metrics = Arc::new(Metrics::new("link-test"));
        let link = BrokerLink::new("127.0.0.1:9", metrics.clone());
        assert_eq!(link.answered(), None, "no outage to end");
        let changes: Vec<bool> = (0..5).map(|_| link.failed(&"refused")).collect();
        assert_eq!(changes, [true, false, false, false, false]);
        assert_eq!(metrics.get(Count::TransportErrors), 5);
        assert!(link.answered().is_some());
        assert_eq!(link.answered(), None, "the outage ended once");
        assert!(
            link.failed(&"refused"),
            "a failure after an answer is a new outage"
        );
        assert_eq!(metrics.get(Count::TransportErrors), 6);
    }

    /// Offset commits failing in a row are one state change each way, every failure counted.
    #[test]
    fn offset_commit_failures_change_state_once_and_are_counted() {
        let metrics = Arc::new(Metrics::new("link-test-commits"));
        let link = BrokerLink::new("127.0.0.1:9", metrics.clone());
        let e =
            rdkafka::error::KafkaError::ConsumerCommit(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(!link.offsets_committed(None));
        assert!(link.offsets_committed(Some(&e)));
        assert!(!link.offsets_committed(Some(&e)));
        assert_eq!(metrics.get(Count::OffsetCommitFailures), 2);
        assert!(link.offsets_committed(None));
        assert!(!link.offsets_committed(None));
    }
}
