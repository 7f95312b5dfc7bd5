//! Whether the broker still answers while no messages arrive: librdkafka returns nothing both when a
//! topic is quiet and when its broker is gone, and after a broker frozen for 30 s it stayed
//! disconnected for good (every request failing with "Broker transport failure" while the broker
//! answered other clients; a new process reconnected at once). A replica that polls nothing asks the
//! broker for the topic's metadata now and then; when no answer came for `give_up`, the operator exits
//! non-zero naming the broker and the last error, and the restart (Kubernetes) resumes from Lance.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use tracing::{info, warn};

use crate::error::{KafkaError, Result};

/// Quiet polling for this long prompts a probe (and the next one after as long again).
pub const PROBE_EVERY: Duration = Duration::from_secs(10);
/// How long one question to the broker (a probe, or `exit_when_idle`'s look at where the partitions
/// end) waits for its answer.
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// Probes the broker while polls return nothing; fails once it has not answered for `give_up`.
pub struct BrokerWatch {
    brokers: String,
    topic: String,
    give_up: Duration,
    last_probe: Option<Instant>,
    /// When the first unanswered question of the current silence failed.
    silent_since: Option<Instant>,
}

impl BrokerWatch {
    pub fn new(brokers: &str, topic: &str, give_up: Duration) -> Self {
        Self {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            give_up,
            last_probe: None,
            silent_since: None,
        }
    }

    /// A message arrived: the broker answers.
    pub fn heard(&mut self) {
        if self.silent_since.take().is_some() {
            info!(brokers = %self.brokers, "the broker answers again");
        }
    }

    /// Called on every empty poll, with how long polls have returned nothing.
    pub fn quiet<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        quiet_for: Duration,
    ) -> Result<()> {
        let due = self.last_probe.is_none_or(|t| t.elapsed() >= PROBE_EVERY);
        if quiet_for < PROBE_EVERY || !due {
            return Ok(());
        }
        self.last_probe = Some(Instant::now());
        match consumer.fetch_metadata(Some(&self.topic), ANSWER_WAIT) {
            Ok(_) => {
                self.heard();
                Ok(())
            }
            Err(e) => self.unanswered(e.to_string()),
        }
    }

    /// A request to the broker failed with `error`: counts towards `give_up`.
    pub fn unanswered(&mut self, error: String) -> Result<()> {
        let since = *self.silent_since.get_or_insert_with(|| {
            warn!(brokers = %self.brokers, %error, "the broker does not answer");
            Instant::now()
        });
        if since.elapsed() >= self.give_up {
            return Err(KafkaError::BrokerSilent {
                brokers: self.brokers.clone(),
                seconds: since.elapsed().as_secs(),
                error,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::ClientConfig;

    /// Nothing listens on the address: every probe fails, and the watch gives up once its bound has
    /// passed since the first failure, naming the broker and the error; a message in between resets it.
    #[test]
    fn a_broker_that_never_answers_ends_the_run_naming_it() {
        let brokers = "127.0.0.1:9"; // discard port: nothing answers Kafka there
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "g")
            .set("log_level", "0")
            .create()
            .unwrap();
        let mut w = BrokerWatch::new(brokers, "t", Duration::from_millis(300));
        w.quiet(&consumer, Duration::from_secs(1)).unwrap(); // too soon to probe
        w.quiet(&consumer, PROBE_EVERY).unwrap(); // first failure starts the clock
        assert!(w.silent_since.is_some());
        w.heard();
        assert!(w.silent_since.is_none());
        w.unanswered("down".into()).unwrap();
        std::thread::sleep(Duration::from_millis(350));
        let e = w.unanswered("still down".into()).unwrap_err().to_string();
        assert!(e.contains(brokers) && e.contains("still down"), "{e}");
    }
}
