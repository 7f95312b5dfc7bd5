//! Counters of what the model was asked to do and how long it was busy: for benchmarks (busy fraction,
//! idle time between calls), tests of batching, and the check that buffers stop growing after warm-up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::batching::BatchPlan;

/// Live counters, shared by the model workers.
#[derive(Debug, Default)]
pub struct EncodeStats {
    pub model_calls: AtomicU64,
    pub rows: AtomicU64,
    pub real_tokens: AtomicU64,
    pub padded_tokens: AtomicU64,
    /// Rows of the largest single model call.
    pub max_call_rows: AtomicU64,
    /// Jobs submitted (one per `encode` chunk or document batch).
    pub jobs: AtomicU64,
    /// Time inside model calls (padding, the graph, pooling), summed over every worker.
    pub model_nanos: AtomicU64,
    /// Allocations of the workers' reused id/mask/output buffers.
    pub buffer_growths: AtomicU64,
}

/// A plain copy of `EncodeStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub model_calls: u64,
    pub rows: u64,
    pub real_tokens: u64,
    pub padded_tokens: u64,
    pub max_call_rows: u64,
    pub jobs: u64,
    pub model_nanos: u64,
    pub buffer_growths: u64,
}

impl StatsSnapshot {
    /// Seconds spent inside model calls, summed over workers.
    pub fn model_seconds(&self) -> f64 {
        self.model_nanos as f64 / 1e9
    }
}

impl EncodeStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            model_calls: get(&self.model_calls),
            rows: get(&self.rows),
            real_tokens: get(&self.real_tokens),
            padded_tokens: get(&self.padded_tokens),
            max_call_rows: get(&self.max_call_rows),
            jobs: get(&self.jobs),
            model_nanos: get(&self.model_nanos),
            buffer_growths: get(&self.buffer_growths),
        }
    }

    pub(crate) fn record(&self, plan: &BatchPlan, real: usize, took: Duration) {
        let rows = plan.rows.len() as u64;
        self.model_calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.real_tokens.fetch_add(real as u64, Ordering::Relaxed);
        self.padded_tokens
            .fetch_add(rows * plan.padded_len as u64, Ordering::Relaxed);
        self.max_call_rows.fetch_max(rows, Ordering::Relaxed);
        self.model_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn add_buffer_growths(&self, n: u64) {
        self.buffer_growths.fetch_add(n, Ordering::Relaxed);
    }
}
