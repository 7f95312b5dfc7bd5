//! When a replica commits: embedded batches are gathered and land in one Lance commit per interval,
//! not one per batch, and the interval adapts to how contended the dataset is.
//!
//! Commits to one dataset land one after another (each is a conditional put of the next manifest), so
//! a dataset takes a bounded number of commits a second (tens on a local object store, fewer on S3),
//! whatever the number of writers. One commit per encoder batch spends that budget at a few replicas;
//! gathering batches for `commit_interval_ms` spends it per interval, so rows per second scale with
//! replicas while commits per second stay put.
//!
//! The interval follows how busy the dataset is. After each landed commit a replica knows how many
//! commits the dataset took since its last one (the versions between them) and how long its own
//! commit attempt held the next version open; their product is the dataset's utilisation, the share of
//! time some writer's commit is in flight. It scales its interval by utilisation / `TARGET_BUSY`
//! (at most ×4 or ÷2 per commit, between `commit_interval_ms` and `commit_interval_max_ms`): every
//! replica doing the same, the group settles where the dataset is
//! about a third busy, which keeps races rare (a commit loses when another lands inside its attempt)
//! without lengthening intervals where the store is fast. Before, the interval doubled per lost
//! attempt and shrank by a tenth per clean commit: one burst of races at start sent every replica to
//! the 30 s ceiling for minutes, and at 16 replicas fed 25 rows/s each the last rows landed that late.
//! A replica's first commit has no window yet; its own lost races stand in for one (an attempt loses
//! when another commit lands inside it, with probability 1 − e^(−utilisation), so `c` lost attempts
//! before the one that landed estimate the utilisation at ln(1 + c)). Replicas started together all
//! race at first: without this, their second commits raced as hard at the configured interval, and
//! the ramp to the interval the store can take cost a round of races more (BENCHMARKS.md).
//! Each interval is drawn with ±20% jitter so replicas started together drift apart instead of
//! colliding in step.
//! `commit_rows` bounds the rows gathered (memory) whatever the interval; each gather's bound is drawn
//! from `commit_rows × [1 − ROW_JITTER, 1]`. Replicas fed at the same rate reach a fixed bound in
//! step: the backlog that waited during a commit is taken at once, so where a gather is cut depends on
//! the rows offered, not on when the last commit landed, and the interval's jitter does nothing once
//! the row bound decides (BENCHMARKS.md "Writers on one dataset": 5.45 lost attempts per landed commit
//! at 16 replicas behind 25 ms of latency).
//!
//! A commit that lost a race does not retry at once: writers that lose to the same commit would then
//! retry together and all but one lose again, so each landed commit costs the herd a round (at 16
//! replicas behind 25 ms of store latency, 5.45 lost attempts per landed commit). It waits a random
//! time in `[0, min(cap, lost attempt × 2^(losses − 1))]` ("full jitter" backoff, scaled by how long
//! an attempt takes on this store) before it re-reads the offsets and tries again.

use std::time::{Duration, Instant};

use lexembed_pipeline::spec::KafkaSourceSpec;

use crate::batch::ClosedBatch;
use crate::fenced::FencedCommit;

/// The interval never shrinks below this once contention has lengthened it (a configured 0 stays 0).
const FLOOR: Duration = Duration::from_millis(50);
/// The share of time the dataset may have a commit in flight that the group's intervals aim at.
const TARGET_BUSY: f64 = 0.35;
/// The most one landed commit may lengthen the interval by: past the target, utilisation is at most
/// about 1 (one attempt in flight at any time), so ×4 lets one commit reach the interval it asks for.
const MAX_GROW: f64 = 4.0;
/// The most one landed commit may shorten the interval by: slower than growth, so one quiet window
/// after a busy one does not send the group back into a burst of races.
const MAX_SHRINK: f64 = 2.0;
/// Each interval is drawn from `interval × [1 − JITTER, 1 + JITTER]`.
const JITTER: f64 = 0.2;
/// Each gather's row bound is drawn from `commit_rows × [1 − ROW_JITTER, 1]`: wide enough that
/// replicas cut in step drift apart within a few commits (a model of the 16-writer benchmark put
/// lost attempts per landed commit at ~1.0 with 0.2 and ~0.75 with 0.5, both with the backoff).
const ROW_JITTER: f64 = 0.5;
/// How long the writer waits for the next batch when nothing is gathered (the stop check's pace).
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// The longest wait before a retry of a commit that lost a race (the commit gate is held meanwhile,
/// so a rebalance waits at most this long for it).
const RETRY_BACKOFF_CAP: Duration = Duration::from_secs(2);

/// How a commit that lost a race to another writer's commit is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPace {
    /// At once (lexembed before: writers that lose together retry together).
    AtOnce,
    /// After a random wait in `[0, min(cap, lost attempt × 2^(losses − 1))]`.
    Backoff { cap: Duration },
}

impl RetryPace {
    /// The operator's default: backoff with full jitter, capped at two seconds.
    pub fn backoff() -> Self {
        RetryPace::Backoff {
            cap: RETRY_BACKOFF_CAP,
        }
    }

    /// The wait before the next attempt, after `losses` lost attempts in a row, the last of which took
    /// `attempt` (from reading the version to learning that another commit took it).
    pub fn wait(&self, losses: usize, attempt: Duration, rng: &mut fastrand::Rng) -> Duration {
        match *self {
            RetryPace::AtOnce => Duration::ZERO,
            RetryPace::Backoff { cap } => {
                let doubling = 2f64.powi(losses.saturating_sub(1).min(16) as i32);
                attempt.mul_f64(doubling).min(cap).mul_f64(rng.f64())
            }
        }
    }
}

/// What decides a commit: the configured interval, its ceiling under contention, and the row bound;
/// and how a commit that lost a race is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPolicy {
    pub interval: Duration,
    pub max_interval: Duration,
    pub rows: usize,
    pub retry: RetryPace,
}

impl CommitPolicy {
    /// The policy a Kafka source's spec sets (`commit_interval_ms`, `commit_interval_max_ms`,
    /// `commit_rows`).
    pub fn from_spec(k: &KafkaSourceSpec) -> Self {
        Self::gathered(
            k.commit_interval_ms,
            k.commit_interval_max_ms,
            k.commit_rows,
        )
    }

    /// Batches gathered for `interval_ms` (lengthened up to `max_interval_ms`, never below the
    /// interval) or `rows` rows (at least one), lost races retried after the backoff.
    pub fn gathered(interval_ms: u64, max_interval_ms: u64, rows: usize) -> Self {
        Self {
            interval: Duration::from_millis(interval_ms),
            max_interval: Duration::from_millis(max_interval_ms.max(interval_ms)),
            rows: rows.max(1),
            retry: RetryPace::backoff(),
        }
    }

    /// Every batch its own commit, never adapting, lost races retried at once: lexembed before
    /// gathering (the benchmark's reference).
    pub fn per_batch() -> Self {
        Self {
            interval: Duration::ZERO,
            max_interval: Duration::ZERO,
            rows: 1,
            retry: RetryPace::AtOnce,
        }
    }

    /// A short name for reports: `per-batch` or `gathered(1000ms..30000ms, 16384 rows)`, with
    /// `, retry at once` where lost races are retried without a wait.
    pub fn name(&self) -> String {
        if self.max_interval.is_zero() {
            return "per-batch".into();
        }
        let retry = match self.retry {
            RetryPace::AtOnce => ", retry at once",
            RetryPace::Backoff { .. } => "",
        };
        format!(
            "gathered({}ms..{}ms, {} rows{retry})",
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
    /// This gather's row bound: `policy.rows` less up to `ROW_JITTER` of it, drawn at its first batch.
    row_bound: usize,
    due: Option<Instant>,
    /// The version of this replica's last landed commit, and when it landed.
    last_landed: Option<(u64, Instant)>,
}

impl Gatherer {
    pub fn new(policy: CommitPolicy) -> Self {
        Self {
            policy,
            interval: policy.interval,
            rng: fastrand::Rng::new(),
            batches: Vec::new(),
            rows: 0,
            row_bound: policy.rows,
            due: None,
            last_landed: None,
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

    /// This gather's row bound (at most `commit_rows`).
    pub fn row_bound(&self) -> usize {
        self.row_bound
    }

    /// Adds `batch` (check `accepts` first). The first batch of a gather starts its interval and
    /// draws its row bound.
    pub fn push(&mut self, batch: ClosedBatch) {
        if self.due.is_none() {
            let jitter = 1.0 + JITTER * (2.0 * self.rng.f64() - 1.0);
            self.due = Some(Instant::now() + self.interval.mul_f64(jitter));
            let shave = (self.policy.rows as f64 * ROW_JITTER * self.rng.f64()) as usize;
            self.row_bound = (self.policy.rows - shave).max(1);
        }
        self.rows += batch.origin.len() + batch.deleted.len();
        self.batches.push(batch);
    }

    /// Whether the gather should be committed now: its interval is up or it holds `rows` rows.
    pub fn is_due(&self) -> bool {
        !self.is_empty()
            && (self.rows >= self.row_bound || self.due.is_some_and(|d| Instant::now() >= d))
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

    /// A commit landed (`done`): scale the interval by how busy the dataset was since this replica's
    /// last commit (or, for its first, by the races that commit lost).
    pub fn landed(&mut self, done: &FencedCommit) {
        if let Some(version) = done.version {
            self.landed_at(version, done.attempt, done.conflicts, Instant::now());
        }
    }

    /// The commit that made `version` landed at `now`; its last attempt took `attempt` (from reading
    /// the version to the answer) after `conflicts` lost ones.
    fn landed_at(&mut self, version: u64, attempt: Duration, conflicts: usize, now: Instant) {
        if self.policy.max_interval.is_zero() {
            return;
        }
        let last = self.last_landed.replace((version, now));
        let Some((last_version, last_at)) = last else {
            if conflicts > 0 {
                self.scale((1.0 + conflicts as f64).ln());
            }
            return;
        };
        let elapsed = now.saturating_duration_since(last_at).as_secs_f64();
        if version <= last_version || elapsed <= 0.0 {
            return;
        }
        let commits_per_s = (version - last_version) as f64 / elapsed;
        self.scale(commits_per_s * attempt.as_secs_f64());
    }

    /// Scales the interval by `busy / TARGET_BUSY` (×4 or ÷2 at most), within the policy's bounds.
    fn scale(&mut self, busy: f64) {
        let (base, max) = (self.policy.interval, self.policy.max_interval);
        let step = (busy / TARGET_BUSY).clamp(1.0 / MAX_SHRINK, MAX_GROW);
        let scaled = self.interval.max(FLOOR).mul_f64(step).min(max);
        self.interval = if step < 1.0 && scaled <= FLOOR {
            base
        } else {
            scaled.max(base)
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
            retry: RetryPace::backoff(),
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
        let t = Instant::now();
        g.landed_at(1, Duration::from_secs(1), 9, t);
        g.landed_at(100, Duration::from_secs(1), 0, t + Duration::from_secs(1));
        assert_eq!(g.interval(), Duration::ZERO, "per-batch never adapts");
    }

    #[test]
    fn a_gather_is_due_on_its_interval_or_its_rows() {
        let mut g = Gatherer::new(policy(150, 1000, 100));
        g.push(closed(20, 0));
        assert!(!g.is_due());
        assert!(g.wait() <= Duration::from_millis(180));
        g.push(closed(20, 0));
        assert!(
            !g.is_due(),
            "40 rows, under any bound drawn from 100 (51..=100)"
        );
        std::thread::sleep(Duration::from_millis(200)); // past 150 ms + 20% jitter
        assert!(g.is_due());
        let taken = g.take();
        assert_eq!((taken.len(), g.rows(), g.is_empty()), (2, 0, true));
        g.push(closed(101, 0));
        assert!(g.is_due(), "the row bound commits at once");
    }

    #[test]
    fn each_gather_draws_its_row_bound_below_commit_rows() {
        let mut g = Gatherer::new(policy(60_000, 60_000, 1000));
        let mut bounds = std::collections::BTreeSet::new();
        for _ in 0..50 {
            g.push(closed(1, 0));
            bounds.insert(g.row_bound());
            g.take();
        }
        let (lo, hi) = (*bounds.first().unwrap(), *bounds.last().unwrap());
        assert!(
            lo > 500 && hi <= 1000,
            "bounds {lo}..={hi} outside 501..=1000"
        );
        assert!(
            bounds.len() > 10,
            "replicas at one rate would reach one bound together"
        );
    }

    #[test]
    fn a_lost_race_waits_a_random_share_of_a_doubling_bound_up_to_the_cap() {
        let mut rng = fastrand::Rng::with_seed(7);
        let attempt = Duration::from_millis(100);
        assert_eq!(RetryPace::AtOnce.wait(3, attempt, &mut rng), Duration::ZERO);
        let pace = RetryPace::Backoff {
            cap: Duration::from_millis(500),
        };
        for (losses, bound_ms) in [(1, 100), (2, 200), (3, 400), (4, 500), (40, 500)] {
            let waits: Vec<Duration> = (0..200)
                .map(|_| pace.wait(losses, attempt, &mut rng))
                .collect();
            let max = waits.iter().max().unwrap().as_secs_f64() * 1e3;
            let mean = waits.iter().map(Duration::as_secs_f64).sum::<f64>() / 200.0 * 1e3;
            assert!(
                max <= bound_ms as f64,
                "{losses} losses: waited {max} ms, bound {bound_ms}"
            );
            assert!(
                (0.35..0.65).contains(&(mean / bound_ms as f64)),
                "{losses} losses: mean {mean} ms, bound {bound_ms} (full jitter: about half)"
            );
        }
    }

    /// Writers that read the same version and each need `attempt` to commit: how many attempts lose
    /// per landed commit when they retry with `pace`. A compare-and-set lands when no other commit
    /// landed between the attempt's read and its end.
    fn lost_per_landed(writers: usize, attempt: Duration, pace: RetryPace) -> f64 {
        let mut rng = fastrand::Rng::with_seed(11);
        // (start of the next attempt, writer, losses so far); every writer starts at 0.
        let mut pending: Vec<(Duration, usize)> = vec![(Duration::ZERO, 0); writers];
        let mut landed_at: Vec<Duration> = Vec::new();
        let mut lost = 0;
        while !pending.is_empty() {
            // The attempt that ends first decides; ties go to the lowest index (it read first).
            let (i, _) = pending
                .iter()
                .enumerate()
                .min_by_key(|(_, (start, _))| *start)
                .unwrap();
            let (start, losses) = pending[i];
            let end = start + attempt;
            if landed_at.iter().any(|&t| t > start && t <= end) {
                lost += 1;
                pending[i] = (end + pace.wait(losses + 1, attempt, &mut rng), losses + 1);
            } else {
                landed_at.push(end);
                pending.remove(i);
            }
        }
        lost as f64 / writers as f64
    }

    #[test]
    fn sixteen_writers_that_lose_together_do_not_retry_together() {
        let attempt = Duration::from_millis(170); // one commit behind 25 ms per request
        let at_once = lost_per_landed(16, attempt, RetryPace::AtOnce);
        let backoff = lost_per_landed(16, attempt, RetryPace::backoff());
        // At once, each landed commit sends every other writer round again: 15 + 14 + … + 1 lost.
        assert!(
            at_once >= 7.0,
            "retrying at once: {at_once} lost per landed"
        );
        assert!(backoff <= 4.0, "with backoff: {backoff} lost per landed");
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
    fn a_busy_dataset_lengthens_the_interval_and_an_idle_one_brings_it_back() {
        let mut g = Gatherer::new(policy(1000, 20_000, 100));
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let attempt = Duration::from_millis(100);
        g.landed_at(10, attempt, 0, at(0.0));
        assert_eq!(
            g.interval(),
            Duration::from_millis(1000),
            "a first commit that lost no race says nothing yet"
        );
        // 7 commits in one second, 100 ms each: 70% busy, twice the target: ×2.
        g.landed_at(17, attempt, 0, at(1.0));
        assert_eq!(g.interval(), Duration::from_millis(2000));
        // 70% again (×2), then 200% (×4 at most per commit), then capped at the ceiling.
        g.landed_at(31, attempt, 0, at(3.0));
        assert_eq!(g.interval(), Duration::from_millis(4000));
        g.landed_at(71, attempt, 0, at(5.0));
        assert_eq!(g.interval(), Duration::from_millis(16_000));
        g.landed_at(231, attempt, 0, at(13.0));
        assert_eq!(g.interval(), Duration::from_millis(20_000), "capped");
        // 35% busy: the target, the interval stays.
        g.landed_at(301, attempt, 0, at(33.0));
        assert_eq!(g.interval(), Duration::from_millis(20_000));
        // Only this replica's commits, quick ones: ÷2 per commit, down to the base.
        for (k, s) in (1..=5).zip([43.0, 48.0, 51.0, 53.0, 54.0]) {
            g.landed_at(301 + k, Duration::from_millis(20), 0, at(s));
        }
        assert_eq!(
            g.interval(),
            Duration::from_millis(1000),
            "back to the base"
        );
        // A configured 0 with a ceiling backs off from the floor when busy, and comes back to 0.
        let mut z = Gatherer::new(policy(0, 1000, 100));
        z.landed_at(1, attempt, 0, at(0.0));
        z.landed_at(11, attempt, 0, at(1.0));
        assert_eq!(z.interval().as_millis(), 142, "50 ms × 100% / 35%");
        z.landed_at(12, Duration::from_millis(1), 0, at(2.0));
        z.landed_at(13, Duration::from_millis(1), 0, at(3.0));
        assert_eq!(z.interval(), Duration::ZERO);
    }

    #[test]
    fn a_first_commit_that_lost_races_lengthens_the_interval_at_once() {
        let attempt = Duration::from_millis(180);
        let now = Instant::now();
        let mut g = Gatherer::new(policy(1000, 30_000, 100));
        // 3 lost attempts before the one that landed: utilisation ≈ ln 4 = 1.39, ×3.96.
        g.landed_at(5, attempt, 3, now);
        assert_eq!(g.interval().as_millis(), 3960);
        let mut lone = Gatherer::new(policy(1000, 30_000, 100));
        lone.landed_at(5, attempt, 0, now);
        assert_eq!(lone.interval(), Duration::from_millis(1000));
        // One lost race (ln 2 = 0.69, ×1.98) is not a herd, but it is contention.
        let mut one = Gatherer::new(policy(1000, 30_000, 100));
        one.landed_at(5, attempt, 1, now);
        assert_eq!(one.interval().as_millis(), 1980);
    }
}
