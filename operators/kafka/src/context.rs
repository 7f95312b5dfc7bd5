//! The consumer's context: rdkafka calls it on every rebalance, inside `poll`, on the operator's
//! thread. On assignment it reads the offsets recorded in Lance and assigns each partition at its
//! Lance offset; only a partition Lance holds nothing of starts at the group's committed offset (or at
//! the spec's start position, resolved and committed). On revocation it waits for a commit in flight
//! (the commit gate), then notes the partitions so the writer drops their uncommitted rows before its
//! next commit. Errors here cannot be returned to rdkafka: they are kept and the operator stops.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lexembed_pipeline::spec::StartPosition;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tracing::{debug, error, info, warn};

use crate::error::{KafkaError, Result};
use crate::link::{BrokerLink, is_transport_failure};
use crate::metrics::{Count, Metrics};
use crate::offsets::{LanceOffsets, Partition};

/// What the rebalance callback and the operator loop share.
pub struct Shared {
    pub offsets: Mutex<LanceOffsets>,
    pub rt: tokio::runtime::Handle,
    pub start: StartPosition,
    pub metrics: Arc<Metrics>,
    /// Whether the brokers answer (transport failures logged once per outage).
    pub link: Arc<BrokerLink>,
    /// Partitions this replica owns now.
    assigned: Mutex<HashSet<Partition>>,
    /// Partitions revoked since the operator last looked.
    revoked: Mutex<HashSet<Partition>>,
    /// Where each newly assigned partition starts (known offsets only), since the operator last looked.
    starts: Mutex<HashMap<Partition, i64>>,
    changed: AtomicBool,
    failure: Mutex<Option<KafkaError>>,
    /// Held by the writer from its fence to its Lance commit, and by a revocation before it gives its
    /// partitions up: no commit lands rows of a partition after this replica let it go.
    commit_gate: Mutex<()>,
    /// Revocations so far, and the count at which each partition was last revoked: a batch closed
    /// before a partition's revocation holds stale rows of it, even if the partition came back to this
    /// replica (it then restarts at its Lance offset and reads them again).
    revocations: AtomicU64,
    revoked_at: Mutex<HashMap<Partition, u64>>,
    /// Whether the group has assigned this replica partitions at least once.
    ever_assigned: AtomicBool,
}

/// What changed in the assignment since the operator last asked.
#[derive(Debug, Default)]
pub struct AssignmentChange {
    pub revoked: HashSet<Partition>,
    pub starts: HashMap<Partition, i64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(
        offsets: LanceOffsets,
        rt: tokio::runtime::Handle,
        start: StartPosition,
        metrics: Arc<Metrics>,
        link: Arc<BrokerLink>,
    ) -> Self {
        Self {
            offsets: Mutex::new(offsets),
            rt,
            start,
            metrics,
            link,
            assigned: Mutex::default(),
            revoked: Mutex::default(),
            starts: Mutex::default(),
            changed: AtomicBool::new(false),
            failure: Mutex::new(None),
            commit_gate: Mutex::new(()),
            revocations: AtomicU64::new(0),
            revoked_at: Mutex::default(),
            ever_assigned: AtomicBool::new(false),
        }
    }

    /// See `commit_gate`: the writer holds it around each fence-and-commit.
    pub fn commit_gate(&self) -> MutexGuard<'_, ()> {
        lock(&self.commit_gate)
    }

    /// The revocation count now (a batch closes at it).
    pub fn generation(&self) -> u64 {
        self.revocations.load(Ordering::Acquire)
    }

    /// Whether `p` was revoked after revocation count `generation`.
    pub fn revoked_since(&self, p: &Partition, generation: u64) -> bool {
        lock(&self.revoked_at)
            .get(p)
            .is_some_and(|&at| at > generation)
    }

    /// Records a revocation of `parts` (under the commit gate).
    fn note_revoked(&self, parts: impl IntoIterator<Item = Partition>) {
        let at = self.revocations.fetch_add(1, Ordering::AcqRel) + 1;
        let mut revoked_at = lock(&self.revoked_at);
        for p in parts {
            revoked_at.insert(p, at);
        }
    }

    pub fn offsets(&self) -> MutexGuard<'_, LanceOffsets> {
        lock(&self.offsets)
    }

    pub fn owns(&self, p: &Partition) -> bool {
        lock(&self.assigned).contains(p)
    }

    pub fn was_ever_assigned(&self) -> bool {
        self.ever_assigned.load(Ordering::Acquire)
    }

    pub fn assigned_count(&self) -> usize {
        lock(&self.assigned).len()
    }

    /// The change since the last call, if any.
    pub fn take_change(&self) -> Option<AssignmentChange> {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some(AssignmentChange {
            revoked: std::mem::take(&mut *lock(&self.revoked)),
            starts: std::mem::take(&mut *lock(&self.starts)),
        })
    }

    /// An error raised inside a callback, if any.
    pub fn take_failure(&self) -> Option<KafkaError> {
        lock(&self.failure).take()
    }

    /// Sets each partition of `tpl` to the offset Lance records for it. A partition Lance holds
    /// nothing of starts at the group's committed offset (a batch of dead letters only commits there),
    /// else at `start` resolved to a concrete offset and committed to the group at once, so a replica
    /// that dies before its first Lance commit resumes there instead of resolving `latest` again.
    fn position_from_lance(
        &self,
        consumer: &BaseConsumer<OperatorContext>,
        tpl: &mut TopicPartitionList,
    ) -> Result<()> {
        let mut offsets = self.offsets();
        self.rt.block_on(offsets.refresh())?;
        let parts: Vec<Partition> = tpl
            .elements()
            .iter()
            .map(|e| Partition::new(e.topic(), e.partition()))
            .collect();
        let unknown: Vec<Partition> = parts
            .iter()
            .filter(|p| offsets.next_offset(p).is_none())
            .cloned()
            .collect();
        drop(offsets);
        let mut fallback = self.group_or_start_offsets(consumer, &unknown);
        let offsets = self.offsets();
        let mut starts = lock(&self.starts);
        for p in parts {
            let at = match offsets.next_offset(&p) {
                Some(o) => Offset::Offset(o),
                None => fallback.remove(&p).unwrap_or(match self.start {
                    StartPosition::Earliest => Offset::Beginning,
                    StartPosition::Latest => Offset::End,
                }),
            };
            tpl.set_partition_offset(&p.topic, p.partition, at)
                .map_err(crate::error::client_err(format!("positioning {p}")))?;
            info!(partition = %p, offset = ?at, "assigned; resuming at the offset recorded in Lance");
            if let Offset::Offset(o) = at {
                starts.insert(p, o);
            }
        }
        Ok(())
    }

    /// Where partitions without a Lance offset start: the group's committed offset, else `start`
    /// resolved from the partition's watermarks (committed to the group). Partitions the broker does
    /// not answer for are left out (they start at `start` unresolved, as before).
    fn group_or_start_offsets(
        &self,
        consumer: &BaseConsumer<OperatorContext>,
        parts: &[Partition],
    ) -> HashMap<Partition, Offset> {
        let timeout = Duration::from_secs(10);
        let mut found = HashMap::new();
        if parts.is_empty() {
            return found;
        }
        let mut tpl = TopicPartitionList::new();
        for p in parts {
            tpl.add_partition(&p.topic, p.partition);
        }
        match consumer.committed_offsets(tpl, timeout) {
            Ok(committed) => {
                for e in committed.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        found.insert(Partition::new(e.topic(), e.partition()), Offset::Offset(o));
                    }
                }
            }
            Err(e) => warn!(error = %e, "reading the group's committed offsets failed"),
        }
        let mut resolved = TopicPartitionList::new();
        let uncommitted: Vec<&Partition> =
            parts.iter().filter(|p| !found.contains_key(*p)).collect();
        for p in uncommitted {
            match consumer.fetch_watermarks(&p.topic, p.partition, timeout) {
                Ok((low, high)) => {
                    let at = match self.start {
                        StartPosition::Earliest => low,
                        StartPosition::Latest => high,
                    };
                    found.insert(p.clone(), Offset::Offset(at));
                    let _ =
                        resolved.add_partition_offset(&p.topic, p.partition, Offset::Offset(at));
                }
                Err(e) => {
                    warn!(partition = %p, error = %e, "reading the partition's watermarks failed")
                }
            }
        }
        if resolved.count() > 0
            && let Err(e) = consumer.commit(&resolved, CommitMode::Sync)
        {
            warn!(error = %e, "committing the resolved start offsets failed");
        }
        found
    }

    fn fail(&self, e: KafkaError) {
        error!(error = %e, "rebalance failed; the operator will stop");
        lock(&self.failure).get_or_insert(e);
    }
}

/// The rdkafka context of the operator's consumer.
pub struct OperatorContext {
    pub shared: Arc<Shared>,
}

impl ClientContext for OperatorContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // A failed connection ("FAIL") reaches `error` too, where the link logs it once per outage;
        // a failed offset commit ("COMMITFAIL") reaches `commit_callback`. Requests timed out in
        // flight ("REQTMOUT", one line per connection and timeout while a broker is frozen) are the
        // link's failures too.
        match fac {
            "FAIL" | "COMMITFAIL" => {
                debug!(target: "librdkafka", fac, "{log_message}");
                return;
            }
            "REQTMOUT" => {
                self.shared.link.failed(&log_message);
                return;
            }
            _ => {}
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(target: "librdkafka", fac, "{log_message}"),
            RDKafkaLogLevel::Warning => warn!(target: "librdkafka", fac, "{log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(target: "librdkafka", fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        // Transport errors (a broker restarting) are retried by librdkafka: note, do not stop.
        if is_transport_failure(&error) {
            self.shared.link.failed(&reason);
        } else {
            warn!(target: "librdkafka", %error, reason, "client error");
        }
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of each partition this
    /// replica owns, as lag tools count it (the partition's end against the group's offset, which
    /// follows each Lance commit).
    fn stats(&self, statistics: Statistics) {
        let shared = &self.shared;
        for (topic, t) in &statistics.topics {
            for (&partition, stats) in &t.partitions {
                let p = Partition::new(topic, partition);
                if partition >= 0 && stats.consumer_lag >= 0 && shared.owns(&p) {
                    shared.metrics.partition_lag(&p, stats.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for OperatorContext {
    /// The outcome of each asynchronous offset commit (the group's copy of what Lance holds, for lag
    /// tools): failures are counted, and logged when they start and when they stop.
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        self.shared.link.offsets_committed(result.err().as_ref());
    }

    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let shared = &self.shared;
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let parts: Vec<Partition> = tpl
            .elements()
            .iter()
            .map(|e| Partition::new(e.topic(), e.partition()))
            .collect();
        shared.metrics.add(Count::Rebalances, 1);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // An assignment comes from the group coordinator: the broker answers.
                shared.link.answered();
                if let Err(e) = shared.position_from_lance(consumer, tpl) {
                    return shared.fail(e);
                }
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = assigned {
                    return shared.fail(crate::error::client_err("assigning partitions")(e));
                }
                lock(&shared.assigned).extend(parts);
                shared.metrics.set_ready(true);
                shared.ever_assigned.store(true, Ordering::Release);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(partitions = parts.len(), "partitions revoked");
                // A commit in flight (fenced while these were ours) lands before they are given up.
                let _gate = shared.commit_gate();
                shared.note_revoked(parts.iter().cloned());
                {
                    let mut assigned = lock(&shared.assigned);
                    let mut revoked = lock(&shared.revoked);
                    for p in parts {
                        shared.metrics.gave_up_partition(&p);
                        assigned.remove(&p);
                        revoked.insert(p);
                    }
                }
                let unassigned = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = unassigned {
                    warn!(error = %e, "unassigning partitions failed");
                }
                // Still a member (ready stays): a replica with no partitions is a healthy spare.
            }
            other => {
                warn!(error = ?other, "rebalance error: dropping the assignment");
                shared.metrics.set_ready(false);
                let _gate = shared.commit_gate();
                let _ = consumer.unassign();
                let mut assigned = lock(&shared.assigned);
                shared.note_revoked(assigned.iter().cloned());
                lock(&shared.revoked).extend(assigned.drain());
            }
        }
        shared.changed.store(true, Ordering::Release);
    }
}
