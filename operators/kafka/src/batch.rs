//! The micro-batch: messages collected into an Arrow record batch of documents until it has
//! `batch_rows` rows, `max_batch_bytes` of text, or is `linger_ms` old. It remembers each row's
//! partition and offset (so rows of a partition this replica lost, or that another replica already
//! committed, can be dropped before the commit) and the offset range it covers per partition,
//! dead-lettered records included.

use std::time::{Duration, Instant};

use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use lexembed_pipeline::source::rows::{Doc, RefusalKind, RowBuilder};
use lexembed_pipeline::spec::SourceSpec;

use crate::error::Result;
use crate::offsets::{Partition, Ranges};

/// A message that could not become a row, kept for the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: Partition,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub kind: RefusalKind,
    pub reason: String,
}

/// Limits that close a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub rows: usize,
    pub bytes: usize,
    pub linger: Duration,
}

pub struct MicroBatch {
    rows: RowBuilder,
    /// Per row: partition and offset.
    origin: Vec<(Partition, i64)>,
    pub dead: Vec<DeadLetter>,
    pub ranges: Ranges,
    bytes: usize,
    opened: Option<Instant>,
    /// Oldest message timestamp (ms since the epoch) in the batch, for end-to-end lag.
    pub oldest_timestamp_ms: Option<i64>,
    limits: BatchLimits,
}

/// A closed batch, ready for the encoder.
pub struct ClosedBatch {
    pub docs: RecordBatch,
    pub origin: Vec<(Partition, i64)>,
    pub dead: Vec<DeadLetter>,
    pub ranges: Ranges,
    pub oldest_timestamp_ms: Option<i64>,
    /// The revocation count when the batch closed: its rows of a partition revoked after that are
    /// stale even if the partition came back (it was re-read from its Lance offset).
    pub generation: u64,
}

impl MicroBatch {
    pub fn new(schema: SchemaRef, spec: &SourceSpec, limits: BatchLimits) -> Self {
        Self {
            rows: RowBuilder::new(schema, spec),
            origin: Vec::new(),
            dead: Vec::new(),
            ranges: Ranges::new(),
            bytes: 0,
            opened: None,
            oldest_timestamp_ms: None,
            limits,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.origin.len()
    }

    fn cover(&mut self, p: &Partition, offset: i64, timestamp_ms: Option<i64>) {
        self.opened.get_or_insert_with(Instant::now);
        let r = self.ranges.entry(p.clone()).or_insert((offset, offset + 1));
        r.0 = r.0.min(offset);
        r.1 = r.1.max(offset + 1);
        if let Some(t) = timestamp_ms {
            self.oldest_timestamp_ms = Some(self.oldest_timestamp_ms.map_or(t, |o| o.min(t)));
        }
    }

    pub fn push_doc(&mut self, p: &Partition, offset: i64, timestamp_ms: Option<i64>, doc: &Doc) {
        self.cover(p, offset, timestamp_ms);
        self.bytes += doc.text.len();
        self.rows.push_doc(doc);
        self.origin.push((p.clone(), offset));
    }

    pub fn push_dead(&mut self, d: DeadLetter, timestamp_ms: Option<i64>) {
        self.cover(&d.partition.clone(), d.offset, timestamp_ms);
        self.bytes += d.value.as_ref().map_or(0, Vec::len);
        self.dead.push(d);
    }

    /// Full, or old enough to flush.
    pub fn is_ready(&self) -> bool {
        self.rows() >= self.limits.rows
            || self.bytes >= self.limits.bytes
            || self
                .opened
                .is_some_and(|t| t.elapsed() >= self.limits.linger)
    }

    /// Time left until the linger deadline (the poll timeout while a batch is open).
    pub fn time_left(&self) -> Option<Duration> {
        self.opened
            .map(|t| self.limits.linger.saturating_sub(t.elapsed()))
    }

    /// Closes the batch at revocation count `generation` and starts an empty one.
    pub fn close(&mut self, generation: u64) -> Result<ClosedBatch> {
        let (docs, _) = self.rows.finish()?;
        self.bytes = 0;
        self.opened = None;
        Ok(ClosedBatch {
            docs,
            origin: std::mem::take(&mut self.origin),
            dead: std::mem::take(&mut self.dead),
            ranges: std::mem::take(&mut self.ranges),
            oldest_timestamp_ms: self.oldest_timestamp_ms.take(),
            generation,
        })
    }
}

impl ClosedBatch {
    /// Keeps only what `keep(partition, offset)` accepts: rows, dead letters and ranges (a range
    /// shrinks to start at its first kept offset; a partition with nothing kept disappears).
    pub fn retain(&mut self, keep: impl Fn(&Partition, i64) -> bool) -> Result<usize> {
        let mask: BooleanArray = self.origin.iter().map(|(p, o)| Some(keep(p, *o))).collect();
        let before = self.origin.len() + self.dead.len();
        if mask.true_count() < self.origin.len() {
            self.docs = arrow_select::filter::filter_record_batch(&self.docs, &mask)?;
            self.origin.retain(|(p, o)| keep(p, *o));
        }
        self.dead.retain(|d| keep(&d.partition, d.offset));
        let mut ranges = Ranges::new();
        let kept = self
            .origin
            .iter()
            .map(|(p, o)| (p, *o))
            .chain(self.dead.iter().map(|d| (&d.partition, d.offset)));
        for (p, o) in kept {
            let r = ranges.entry(p.clone()).or_insert((o, o + 1));
            r.0 = r.0.min(o);
            r.1 = r.1.max(o + 1);
        }
        // Offsets the batch skipped (gaps, duplicates) stay covered up to the old range end.
        for (p, r) in ranges.iter_mut() {
            if let Some(&(_, next)) = self.ranges.get(p) {
                r.1 = r.1.max(next);
            }
        }
        self.ranges = ranges;
        Ok(before - self.origin.len() - self.dead.len())
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SourceSpec {
        let y = "name: k\nsource:\n  kind: kafka\n  kafka: {brokers: b, topics: [t], group_id: g}\nsink: {uri: o, mode: append}\n";
        lexembed_pipeline::spec::parse(y, std::path::Path::new("k.yaml"))
            .unwrap()
            .source
    }

    fn doc(id: &str) -> Doc {
        Doc {
            id: id.into(),
            text: format!("text {id}"),
            metadata: vec![],
        }
    }

    #[test]
    fn closes_on_rows_and_retain_drops_rows_and_shrinks_ranges() {
        let s = spec();
        let schema = lexembed_lance::schema::documents(&[]).unwrap();
        let limits = BatchLimits {
            rows: 3,
            bytes: 1 << 20,
            linger: Duration::from_secs(60),
        };
        let mut b = MicroBatch::new(schema, &s, limits);
        let (p0, p1) = (Partition::new("t", 0), Partition::new("t", 1));
        b.push_doc(&p0, 5, Some(100), &doc("a"));
        b.push_doc(&p1, 9, Some(50), &doc("b"));
        assert!(!b.is_ready());
        b.push_dead(
            DeadLetter {
                partition: p0.clone(),
                offset: 6,
                key: None,
                value: Some(b"x".to_vec()),
                kind: RefusalKind::NotJson,
                reason: "not JSON".into(),
            },
            None,
        );
        b.push_doc(&p0, 7, None, &doc("c"));
        assert!(b.is_ready());
        let mut c = b.close(0).unwrap();
        assert!(b.is_empty() && b.rows() == 0);
        assert_eq!(c.docs.num_rows(), 3);
        assert_eq!(c.ranges[&p0], (5, 8));
        assert_eq!(c.oldest_timestamp_ms, Some(50));
        // Another replica committed p0 up to offset 7, and p1 was revoked.
        let dropped = c.retain(|p, o| p == &p0 && o >= 7).unwrap();
        assert_eq!(dropped, 3);
        assert_eq!(c.docs.num_rows(), 1);
        assert_eq!(c.ranges.len(), 1);
        assert_eq!(c.ranges[&p0], (7, 8));
        assert!(c.dead.is_empty());
    }
}
