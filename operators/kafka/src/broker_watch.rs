//! Whether the broker still answers while no messages arrive: librdkafka returns nothing both when a
//! topic is quiet and when its broker is gone, and after a broker frozen for 30 s it stayed
//! disconnected for good (every request failing with "Broker transport failure" while the broker
//! answered other clients; a new process reconnected at once). A replica that polls nothing asks the
//! broker for the topic's metadata now and then; when no answer came for `give_up`, the operator exits
//! non-zero naming the broker and the last error, and the restart (Kubernetes) resumes from Lance.
//! A silence that lasts `ASK_A_NEW_CLIENT` is put to a new client too: when that one is answered and
//! the consumer's next question, `PROBE_EVERY` later, still is not, the consumer's own connection is the
//! one stuck, and the operator exits then instead of waiting out `give_up`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::{BaseProducer, Producer};
use tracing::{info, warn};

use crate::error::{KafkaError, Result};
use crate::link::BrokerLink;

/// Quiet polling for this long prompts a probe (and the next one after as long again).
pub const PROBE_EVERY: Duration = Duration::from_secs(10);
/// How long one question to the broker (a probe, or `exit_when_idle`'s look at where the partitions
/// end) waits for its answer.
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// A silence this long is put to a new client as well (a broker restarting needs a few seconds before
/// it answers anyone; a client stuck after a freeze stays stuck for minutes).
pub const ASK_A_NEW_CLIENT: Duration = Duration::from_secs(15);

/// Probes the broker while polls return nothing; fails once it has not answered for `give_up`.
pub struct BrokerWatch {
    brokers: String,
    topic: String,
    give_up: Duration,
    /// The settings of a new client to ask (the consumer's brokers and security settings).
    fresh: ClientConfig,
    last_probe: Option<Instant>,
    last_fresh_probe: Option<Instant>,
    /// When a new client was answered during the current silence.
    fresh_answered_at: Option<Instant>,
    /// When the first unanswered question of the current silence failed.
    silent_since: Option<Instant>,
    /// The connection state the log and metrics show (answers and failures go there too).
    link: Arc<BrokerLink>,
}

impl BrokerWatch {
    /// `fresh`: the settings of a new client that asks when the consumer's own questions have gone
    /// unanswered for `ASK_A_NEW_CLIENT` (a producer's: no group).
    pub fn new(
        brokers: &str,
        topic: &str,
        give_up: Duration,
        fresh: ClientConfig,
        link: Arc<BrokerLink>,
    ) -> Self {
        Self {
            link,
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            give_up,
            fresh,
            last_probe: None,
            last_fresh_probe: None,
            fresh_answered_at: None,
            silent_since: None,
        }
    }

    /// A message arrived: the consumer is not stuck (though the message may have been fetched before
    /// the connection dropped, so it says nothing of the link).
    pub fn heard(&mut self) {
        self.fresh_answered_at = None;
        self.silent_since = None;
    }

    /// The broker answered a question just now (metadata, the partitions' ends): the link is up.
    pub fn answered(&mut self) {
        self.heard();
        self.link.answered();
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
                self.answered();
                Ok(())
            }
            Err(e) => self.unanswered(e.to_string()),
        }
    }

    /// A request to the broker failed with `error`: counts towards `give_up`.
    pub fn unanswered(&mut self, error: String) -> Result<()> {
        let newly_lost = self.link.failed(&error);
        let since = *self.silent_since.get_or_insert_with(|| {
            // When this question is the first failure, the link's WARN already said so.
            if !newly_lost {
                warn!(brokers = %self.brokers, %error, "the broker does not answer questions either: the run ends if it stays silent");
            }
            Instant::now()
        });
        if since.elapsed() >= self.give_up {
            return Err(KafkaError::BrokerSilent {
                brokers: self.brokers.clone(),
                seconds: since.elapsed().as_secs(),
                error,
            });
        }
        // The consumer's reconnection backs off up to 10 s after the broker is back: it is stuck
        // only when it still fails a probe interval after a new client was answered.
        if self
            .fresh_answered_at
            .is_some_and(|t| t.elapsed() >= PROBE_EVERY)
        {
            return Err(KafkaError::ConsumerStuck {
                brokers: self.brokers.clone(),
                seconds: since.elapsed().as_secs(),
                error,
            });
        }
        let fresh_due = self
            .last_fresh_probe
            .is_none_or(|t| t.elapsed() >= PROBE_EVERY);
        if since.elapsed() >= ASK_A_NEW_CLIENT && fresh_due && self.fresh_answered_at.is_none() {
            self.last_fresh_probe = Some(Instant::now());
            if self.a_new_client_is_answered() {
                info!(brokers = %self.brokers, "the broker answers a new client: waiting a probe interval for the consumer to reconnect");
                self.fresh_answered_at = Some(Instant::now());
            }
        }
        Ok(())
    }

    /// Whether a client made now gets the topic's metadata from the broker.
    fn a_new_client_is_answered(&self) -> bool {
        let client: BaseProducer = match self.fresh.create() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "could not make a new client to ask the broker");
                return false;
            }
        };
        client
            .client()
            .fetch_metadata(Some(&self.topic), ANSWER_WAIT)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Arc<BrokerLink> {
        Arc::new(BrokerLink::new(
            "127.0.0.1:9",
            Arc::new(crate::metrics::Metrics::new("t")),
        ))
    }

    fn config(brokers: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers).set("log_level", "0");
        c
    }

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
        let mut w = BrokerWatch::new(
            brokers,
            "t",
            Duration::from_millis(300),
            config(brokers),
            link(),
        );
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

    /// A consumer whose questions go unanswered while a new client's are answered is stuck: once the
    /// silence reaches `ASK_A_NEW_CLIENT` a new client asks; when it is answered and the consumer
    /// still fails a probe interval later, the watch ends the run, long before `give_up`. The new
    /// client asks the test broker (integration/kafka.sh; CI starts it).
    #[test]
    fn a_stuck_consumer_beside_a_broker_that_answers_ends_the_run_early() {
        let live =
            std::env::var("LEXEMBED_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
        let mut w = BrokerWatch::new(
            "127.0.0.1:9",
            "t",
            Duration::from_secs(3600),
            config(&live),
            link(),
        );
        w.silent_since = Some(Instant::now() - ASK_A_NEW_CLIENT + Duration::from_secs(2));
        w.unanswered("transport failure".into()).unwrap(); // not yet asked
        w.silent_since = Some(Instant::now() - ASK_A_NEW_CLIENT);
        w.unanswered("transport failure".into()).unwrap(); // asked: answered
        assert!(
            w.fresh_answered_at.is_some(),
            "no answer from the test broker at {live} (integration/kafka.sh start)"
        );
        w.fresh_answered_at = Some(Instant::now() - PROBE_EVERY);
        let e = w.unanswered("transport failure".into()).unwrap_err();
        assert!(matches!(e, KafkaError::ConsumerStuck { .. }), "{e}");
        assert!(e.to_string().contains("transport failure"), "{e}");
        // A new client that is not answered either: the broker is down, the watch waits on.
        let mut down = BrokerWatch::new(
            "127.0.0.1:9",
            "t",
            Duration::from_secs(3600),
            config("127.0.0.1:9"),
            link(),
        );
        down.silent_since = Some(Instant::now() - ASK_A_NEW_CLIENT);
        down.unanswered("transport failure".into()).unwrap();
        assert!(down.fresh_answered_at.is_none());
        // The consumer heard from the broker in between: not stuck.
        w.fresh_answered_at = Some(Instant::now() - PROBE_EVERY);
        w.heard();
        w.silent_since = Some(Instant::now() - ASK_A_NEW_CLIENT + Duration::from_secs(2));
        w.unanswered("transport failure".into()).unwrap();
    }
}
