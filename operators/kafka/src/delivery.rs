//! librdkafka's delivery reports, counted: the producer context of the dead-letter sink and of
//! `lexembed produce`, which counts the messages librdkafka gave up on and keeps the latest reason
//! (reports arrive on the producer's own thread). rdkafka's default context ignores them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::ClientContext;
use rdkafka::producer::{DeliveryResult, ProducerContext};

/// Counts failed deliveries and keeps the latest reason.
#[derive(Default)]
pub struct DeliveryCounter {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl DeliveryCounter {
    /// Messages not delivered so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Why the latest of them was not ('' when none failed).
    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_default()
    }
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(e.to_string());
            }
        }
    }
}
