//! When a replica commits: embedded batches are gathered and land in one Lance commit per interval,
//! not one per batch, and the interval adapts to how contended the dataset is.
//!
//! Commits to one dataset land one after another (each is a conditional put of the next manifest), so
//! a dataset takes a bounded number of commits a second (tens on a local object store, fewer on S3),
//! whatever the number of writers. One commit per encoder batch spends that budget at a few replicas;
//! gathering batches for `commit_interval_ms` spends it per interval, so rows per second scale with
//! replicas while commits per second stay put. Under contention (this replica's commits keep being
//! superseded by others') the interval doubles per lost attempt, up to `commit_interval_max_ms`, and
//! after a commit that landed first time it shrinks by a tenth towards the configured interval: the
//! replicas of a group settle where roughly one commit in eight loses a race. Each interval is drawn
//! with ±20% jitter so replicas started together drift apart instead of colliding in step.
//! `commit_rows` bounds the rows gathered (memory) whatever the interval.

use std::time::{Duration, Instant};

use lexembed_pipeline::spec::KafkaSourceSpec;

use crate::batch::ClosedBatch;

/// The interval never shrinks below this once contention has lengthened it (a configured 0 stays 0).
const FLOOR: Duration = Duration::from_millis(50);
/// After a commit that landed first time, the interval shrinks to this share of itself.
const SHRINK: f64 = 0.9;
/// Each interval is drawn from `interval × [1 − JITTER, 1 + JITTER]`.
const JITTER: f64 = 0.2;
/// How long the writer waits for the next batch when nothing is gathered (the stop check's pace).
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// What decides a commit: the configured interval, its ceiling under contention, and the row bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPolicy {
    pub interval: Duration,
    pub max_interval: Duration,
    pub rows: usize,
}

impl CommitPolicy {
    /// The policy a Kafka source's spec sets (`commit_interval_ms`, `commit_interval_max_ms`,
    /// `commit_rows`).
    pub fn from_spec(k: &KafkaSourceSpec) -> Self {
        Self {
            interval: Duration::from_millis(k.commit_interval_ms),
            max_interval: Duration::from_millis(k.commit_interval_max_ms.max(k.commit_interval_ms)),
            rows: k.commit_rows.max(1),
        }
    }

    /// Every batch its own commit, never adapting: lexembed before gathering (the benchmark's
    /// reference).
    pub fn per_batch() -> Self {
        Self {
            interval: Duration::ZERO,
            max_interval: Duration::ZERO,
            rows: 1,
        }
    }

    /// A short name for reports: `per-batch` or `gathered(1000ms..30000ms, 16384 rows)`.
    pub fn name(&self) -> String {
        if self.max_interval.is_zero() {
            return "per-batch".into();
        }
        format!(
            "gathered({}ms..{}ms, {} rows)",
            self.interval.as_millis(),
            self.max_interval.as_millis(),
            self.rows
        )
    }
}

/// Closed, embedded batches waiting for their commit, and the adaptive interval that decides when.
/// Every batch gathered closed at the same revocation count (`generation`): the writer commits what it
/// has before taking a batch of a later one, so one fence decision covers the whole gather.
pub struct Gatherer {
    policy: CommitPolicy,
    interval: Duration,
    rng: fastrand::Rng,
    batches: Vec<ClosedBatch>,
    rows: usize,
    due: Option<Instant>,
}

impl Gatherer {
    pub fn new(policy: CommitPolicy) -> Self {
        Self {
            policy,
            interval: policy.interval,
            rng: fastrand::Rng::new(),
            batches: Vec::new(),
            rows: 0,
            due: None,
        }
    }

    pub fn policy(&self) -> CommitPolicy {
        self.policy
    }

    /// The interval now (before jitter): the configured one, or longer under contention.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Rows and deletions gathered, not yet committed.
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Whether `batch` may join this gather: only batches closed at the same revocation count do.
    pub fn accepts(&self, batch: &ClosedBatch) -> bool {
        self.batches
            .first()
            .is_none_or(|b| b.generation == batch.generation)
    }

    /// Adds `batch` (check `accepts` first). The first batch of a gather starts its interval.
    pub fn push(&mut self, batch: ClosedBatch) {
        if self.due.is_none() {
            let jitter = 1.0 + JITTER * (2.0 * self.rng.f64() - 1.0);
            self.due = Some(Instant::now() + self.interval.mul_f64(jitter));
        }
        self.rows += batch.origin.len() + batch.deleted.len();
        self.batches.push(batch);
    }

    /// Whether the gather should be committed now: its interval is up or it holds `rows` rows.
    pub fn is_due(&self) -> bool {
        !self.is_empty()
            && (self.rows >= self.policy.rows || self.due.is_some_and(|d| Instant::now() >= d))
    }

    /// How long to wait for the next batch before looking again.
    pub fn wait(&self) -> Duration {
        self.due.map_or(IDLE_WAIT, |d| {
            d.saturating_duration_since(Instant::now()).min(IDLE_WAIT)
        })
    }

    /// Takes everything gathered, for one commit.
    pub fn take(&mut self) -> Vec<ClosedBatch> {
        self.rows = 0;
        self.due = None;
        std::mem::take(&mut self.batches)
    }

    /// A commit landed after `superseded` attempts lost to other writers' commits: lengthen the
    /// interval (doubling per lost attempt) or, when it landed first time, shrink it back.
    pub fn landed(&mut self, superseded: usize) {
        let (base, max) = (self.policy.interval, self.policy.max_interval);
        if max.is_zero() {
            return;
        }
        self.interval = if superseded > 0 {
            let grown =
                self.interval.max(FLOOR).as_secs_f64() * 2f64.powi(superseded.min(8) as i32);
            Duration::from_secs_f64(grown).min(max)
        } else {
            let shrunk = self.interval.mul_f64(SHRINK);
            if shrunk < FLOOR {
                base
            } else {
                shrunk.max(base)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offsets::Partition;

    fn policy(interval_ms: u64, max_ms: u64, rows: usize) -> CommitPolicy {
        CommitPolicy {
            interval: Duration::from_millis(interval_ms),
            max_interval: Duration::from_millis(max_ms),
            rows,
        }
    }

    fn closed(rows: usize, generation: u64) -> ClosedBatch {
        crate::batch::fixtures::closed(&Partition::new("t", 0), 0..rows as i64, generation)
    }

    #[test]
    fn the_spec_sets_the_policy_and_per_batch_commits_every_batch_at_once() {
        let y = "name: k\nsource:\n  kind: kafka\n  kafka: {brokers: b, topics: [t], group_id: g, commit_interval_ms: 2500, commit_rows: 100}\nsink: {uri: o, mode: append}\n";
        let spec = lexembed_pipeline::spec::parse(y, std::path::Path::new("k.yaml")).unwrap();
        let lexembed_pipeline::spec::SourceInput::Kafka(k) = &spec.source.input else {
            panic!("not kafka")
        };
        let p = CommitPolicy::from_spec(k);
        assert_eq!(p, policy(2500, 30_000, 100));
        assert_eq!(p.name(), "gathered(2500ms..30000ms, 100 rows)");
        let mut g = Gatherer::new(CommitPolicy::per_batch());
        assert!(!g.is_due(), "nothing gathered is never due");
        g.push(closed(3, 0));
        assert!(g.is_due());
        g.landed(5);
        assert_eq!(g.interval(), Duration::ZERO, "per-batch never adapts");
    }

    #[test]
    fn a_gather_is_due_on_its_interval_or_its_rows() {
        let mut g = Gatherer::new(policy(150, 1000, 10));
        g.push(closed(4, 0));
        assert!(!g.is_due());
        assert!(g.wait() <= Duration::from_millis(180));
        g.push(closed(4, 0));
        assert!(!g.is_due(), "8 rows of 10, interval not up");
        std::thread::sleep(Duration::from_millis(200)); // past 150 ms + 20% jitter
        assert!(g.is_due());
        let taken = g.take();
        assert_eq!((taken.len(), g.rows(), g.is_empty()), (2, 0, true));
        g.push(closed(11, 0));
        assert!(g.is_due(), "the row bound commits at once");
    }

    #[test]
    fn only_batches_of_one_revocation_count_gather_together() {
        let mut g = Gatherer::new(policy(1000, 1000, 100));
        assert!(g.accepts(&closed(1, 3)));
        g.push(closed(1, 3));
        assert!(g.accepts(&closed(1, 3)));
        assert!(!g.accepts(&closed(1, 4)), "a revocation came between them");
    }

    #[test]
    fn contention_lengthens_the_interval_up_to_its_ceiling_and_landing_first_shrinks_it() {
        let mut g = Gatherer::new(policy(1000, 10_000, 100));
        g.landed(1);
        assert_eq!(g.interval(), Duration::from_millis(2000));
        g.landed(2);
        assert_eq!(g.interval(), Duration::from_millis(8000));
        g.landed(1);
        assert_eq!(g.interval(), Duration::from_millis(10_000), "capped");
        g.landed(0);
        assert_eq!(g.interval(), Duration::from_millis(9000));
        for _ in 0..100 {
            g.landed(0);
        }
        assert_eq!(
            g.interval(),
            Duration::from_millis(1000),
            "back to the base"
        );
        // A configured 0 with a ceiling still backs off from the floor, and comes back to 0.
        let mut z = Gatherer::new(policy(0, 1000, 100));
        z.landed(1);
        assert_eq!(z.interval(), Duration::from_millis(100));
        for _ in 0..200 {
            z.landed(0);
        }
        assert_eq!(z.interval(), Duration::ZERO);
    }
}
