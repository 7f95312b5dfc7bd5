//! The binary's logging: `LEXEMBED_LOG` (default `warn`) with the chatty targets quiet unless it
//! names them, text or JSON lines on stderr, and the object store's retries as a state change and a
//! counter instead of a line each. object_store logs one INFO line per retried request (30 a request
//! while a store is away, for every request in flight); an operator needs to know the store started
//! failing (one WARN per burst of retries) and how often since (`lexembed_store_retries_total`).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Targets kept quiet unless `LEXEMBED_LOG` names them, and how quiet. INFO chatter, not events:
/// ONNX Runtime logs ~60 lines of graph optimisation per session, Lance two per file it writes,
/// object_store one per retry (counted instead, see `StoreRetries`). rdkafka's consumer logs an ERROR
/// on every clean exit ("Failed to close consumer queue on drop": its drop closes the consumer again
/// after the operator closed it, and a failed close is the operator's own WARN).
const QUIET_TARGETS: [(&str, &str); 4] = [
    ("ort", "warn"),
    ("lance", "warn"),
    ("object_store", "warn"),
    ("rdkafka::consumer::base_consumer", "off"),
];

/// Where object_store logs its retries.
const RETRY_TARGET: &str = "object_store::client::retry";

/// The counter of object_store's retries (described where the recorder is installed).
pub const STORE_RETRIES: &str = "lexembed_store_retries_total";

/// Retries this far apart are separate bursts (each starts with a WARN).
const BURST_GAP: Duration = Duration::from_secs(60);

/// `LEXEMBED_LOG` (default `warn`), with the chatty targets quiet unless it names them.
fn log_filter() -> EnvFilter {
    let Ok(mut spec) = std::env::var("LEXEMBED_LOG") else {
        return EnvFilter::new("warn");
    };
    for (target, level) in QUIET_TARGETS {
        let named = spec.split(',').any(|d| {
            let named = d.trim().split(['=', '[']).next().unwrap_or_default();
            target == named || target.starts_with(&format!("{named}::"))
        });
        if !named {
            spec.push_str(&format!(",{target}={level}"));
        }
    }
    EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("warn"))
}

/// Installs the subscriber: the filtered text or JSON lines, and the retry counter beside them
/// (it sees object_store's retries whatever the filter lets through).
pub fn init(json: bool) {
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let text = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let lines = if json {
        text.json().with_filter(log_filter()).boxed()
    } else {
        text.with_filter(log_filter()).boxed()
    };
    let retries = StoreRetries::default()
        .with_filter(filter_fn(|meta| meta.target().starts_with(RETRY_TARGET)));
    tracing_subscriber::registry()
        .with(lines)
        .with(retries)
        .init();
}

/// Counts object_store's retries; the first of a burst becomes one WARN naming what failed.
#[derive(Default)]
struct StoreRetries {
    last: Mutex<Option<Instant>>,
}

impl StoreRetries {
    /// Whether a retry now starts a burst (none for `BURST_GAP`).
    fn starts_burst(&self, now: Instant) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let starts = last.is_none_or(|t| now.duration_since(t) >= BURST_GAP);
        *last = Some(now);
        starts
    }
}

impl<S: Subscriber> Layer<S> for StoreRetries {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        metrics::counter!(STORE_RETRIES).increment(1);
        if self.starts_burst(Instant::now()) {
            let mut message = Message::default();
            event.record(&mut message);
            tracing::warn!(
                retry = %message.0,
                "the object store is failing requests: retrying with backoff \
                 (lexembed_store_retries_total counts each retry; LEXEMBED_LOG=info,object_store=info shows them)"
            );
        }
    }
}

/// An event's `message` field as text.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retries close together are one burst; a retry after a quiet gap starts another.
    #[test]
    fn retries_close_together_are_one_burst() {
        let r = StoreRetries::default();
        let t0 = Instant::now();
        assert!(r.starts_burst(t0));
        assert!(!r.starts_burst(t0 + Duration::from_secs(1)));
        assert!(!r.starts_burst(t0 + Duration::from_secs(50)));
        assert!(r.starts_burst(t0 + Duration::from_secs(50) + BURST_GAP));
    }
}
