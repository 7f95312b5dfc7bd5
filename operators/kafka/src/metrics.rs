//! The operator's metrics, rendered as Prometheus text. Counters only grow; the batch latency is a
//! histogram (seconds from a batch's close to its Lance commit); lag is the age of the oldest message
//! in the last committed batch (produce time → committed in Lance). Names are documented in the
//! README's observability section.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

const LATENCY_BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

pub struct Metrics {
    pub consumed: AtomicU64,
    pub embedded: AtomicU64,
    pub written: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub skipped: AtomicU64,
    /// Rows dropped before a commit because another replica had committed them or the partition was
    /// revoked (they are not lost: their owner writes them).
    pub dropped_not_owned: AtomicU64,
    pub commits: AtomicU64,
    /// Commit attempts superseded by another replica's commit (then re-fenced and retried).
    pub commit_conflicts: AtomicU64,
    pub rebalances: AtomicU64,
    lag_ms: AtomicU64,
    encoder_us: AtomicU64,
    latency: Mutex<Histogram>,
    /// Set once the consumer joined the group (an assignment, even of no partition) and Lance was
    /// reachable; cleared by a rebalance error.
    pub ready: AtomicBool,
    /// The main loop's last turn (for /healthz).
    heartbeat: Mutex<Instant>,
    /// First message consumed and last batch finished: the busy span, for throughput.
    span: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            consumed: AtomicU64::new(0),
            embedded: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            dropped_not_owned: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            commit_conflicts: AtomicU64::new(0),
            rebalances: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            encoder_us: AtomicU64::new(0),
            latency: Mutex::new(Histogram::default()),
            ready: AtomicBool::new(false),
            heartbeat: Mutex::new(Instant::now()),
            span: Mutex::new((None, None)),
        }
    }
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn beat(&self) {
        if let Ok(mut h) = self.heartbeat.lock() {
            *h = Instant::now();
        }
    }

    /// Seconds since the main loop last turned.
    pub fn since_heartbeat(&self) -> f64 {
        self.heartbeat
            .lock()
            .map_or(f64::INFINITY, |h| h.elapsed().as_secs_f64())
    }

    pub fn observe_batch(&self, seconds: f64, encoder_seconds: f64, lag_ms: Option<i64>) {
        if let Ok(mut h) = self.latency.lock() {
            for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
        self.encoder_us
            .fetch_add((encoder_seconds * 1e6) as u64, Ordering::Relaxed);
        if let Some(l) = lag_ms {
            self.lag_ms.store(l.max(0) as u64, Ordering::Relaxed);
        }
    }

    /// Marks a consumed message (the busy span starts at the first).
    pub fn consumed_one(&self) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.span.lock() {
            s.0.get_or_insert_with(Instant::now);
        }
    }

    /// Marks a finished batch (the busy span ends at the last).
    pub fn batch_done(&self) {
        if let Ok(mut s) = self.span.lock() {
            s.1 = Some(Instant::now());
        }
    }

    /// Seconds from the first message consumed to the last batch finished.
    pub fn busy_seconds(&self) -> f64 {
        match self.span.lock().map(|s| *s) {
            Ok((Some(a), Some(b))) if b > a => (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }

    pub fn encoder_seconds(&self) -> f64 {
        self.encoder_us.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = [
            (
                "lexembed_messages_consumed_total",
                "Messages read from Kafka.",
                &self.consumed,
            ),
            (
                "lexembed_rows_embedded_total",
                "Rows embedded.",
                &self.embedded,
            ),
            (
                "lexembed_rows_written_total",
                "Rows committed to Lance.",
                &self.written,
            ),
            (
                "lexembed_messages_dead_lettered_total",
                "Records sent to the dead-letter topic.",
                &self.dead_lettered,
            ),
            (
                "lexembed_messages_skipped_total",
                "Bad records skipped (no dead-letter topic).",
                &self.skipped,
            ),
            (
                "lexembed_rows_dropped_not_owned_total",
                "Rows dropped before a commit: revoked or committed by another replica.",
                &self.dropped_not_owned,
            ),
            (
                "lexembed_lance_commits_total",
                "Lance commits.",
                &self.commits,
            ),
            (
                "lexembed_lance_commit_conflicts_total",
                "Commit attempts superseded by another commit (re-fenced, then retried).",
                &self.commit_conflicts,
            ),
            (
                "lexembed_rebalances_total",
                "Partition assignments and revocations.",
                &self.rebalances,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP lexembed_encoder_seconds_total Time inside the encoder.\n# TYPE lexembed_encoder_seconds_total counter\nlexembed_encoder_seconds_total {}",
            self.encoder_seconds()
        );
        let _ = writeln!(
            out,
            "# HELP lexembed_end_to_end_lag_seconds Age of the oldest message of the last committed batch at its commit.\n# TYPE lexembed_end_to_end_lag_seconds gauge\nlexembed_end_to_end_lag_seconds {}",
            self.lag_ms.load(Ordering::Relaxed) as f64 / 1e3
        );
        let _ = writeln!(
            out,
            "# HELP lexembed_ready Whether the operator is a member of its consumer group and reached Lance.\n# TYPE lexembed_ready gauge\nlexembed_ready {}",
            u8::from(self.ready.load(Ordering::Relaxed))
        );
        if let Ok(h) = self.latency.lock() {
            let name = "lexembed_batch_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} From a batch's close to its Lance commit (embed, dead letters, commit).\n# TYPE {name} histogram"
            );
            for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum, h.count);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        Metrics::add(&m.consumed, 5);
        m.observe_batch(0.3, 0.2, Some(1500));
        m.observe_batch(3.0, 2.0, None);
        let t = m.render();
        assert!(t.contains("lexembed_messages_consumed_total 5\n"), "{t}");
        assert!(
            t.contains("lexembed_batch_seconds_bucket{le=\"0.5\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("lexembed_batch_seconds_bucket{le=\"5\"} 2\n"),
            "{t}"
        );
        assert!(t.contains("lexembed_batch_seconds_count 2\n"), "{t}");
        assert!(t.contains("lexembed_end_to_end_lag_seconds 1.5\n"), "{t}");
        assert!(t.contains("lexembed_encoder_seconds_total 2.2"), "{t}");
    }
}
