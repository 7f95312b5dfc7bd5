//! The micro-batch: messages collected into an Arrow record batch of documents until it has
//! `batch_rows` rows, `max_batch_bytes` of text, or is `linger_ms` old. It remembers each row's
//! partition and offset (so rows of a partition this replica lost, or that another replica already
//! committed, can be dropped before the commit) and the offset range it covers per partition,
//! dead-lettered records included. With upserts it also holds deletions, placed among its rows.

use std::time::{Duration, Instant};

use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use lexembed_pipeline::source::Deletion;
use lexembed_pipeline::source::rows::{Doc, RefusalKind, RowBuilder};
use lexembed_pipeline::spec::SourceSpec;

use crate::error::{KafkaError, Result};
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

/// A deletion read from a partition at an offset (a tombstone, a null text), placed among the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchDeletion {
    pub partition: Partition,
    pub offset: i64,
    /// The id, and how many of the batch's rows came before it.
    pub deletion: Deletion,
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
    deleted: Vec<BatchDeletion>,
    pub ranges: Ranges,
    bytes: usize,
    opened: Option<Instant>,
    /// Oldest message timestamp (ms since the epoch) in the batch, for end-to-end lag.
    pub oldest_timestamp_ms: Option<i64>,
    limits: BatchLimits,
}

/// A closed batch, ready for the encoder (a clone shares its arrays).
#[derive(Clone)]
pub struct ClosedBatch {
    pub docs: RecordBatch,
    pub origin: Vec<(Partition, i64)>,
    pub dead: Vec<DeadLetter>,
    /// Deletions (upserts), in arrival order.
    pub deleted: Vec<BatchDeletion>,
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
            deleted: Vec::new(),
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

    /// Deletes `id` after the rows so far (upserts).
    pub fn push_delete(
        &mut self,
        p: &Partition,
        offset: i64,
        timestamp_ms: Option<i64>,
        id: String,
    ) {
        self.cover(p, offset, timestamp_ms);
        self.bytes += id.len();
        self.deleted.push(BatchDeletion {
            partition: p.clone(),
            offset,
            deletion: Deletion {
                id,
                before_row: self.origin.len(),
            },
        });
    }

    pub fn push_dead(&mut self, d: DeadLetter, timestamp_ms: Option<i64>) {
        self.cover(&d.partition.clone(), d.offset, timestamp_ms);
        self.bytes += d.value.as_ref().map_or(0, Vec::len);
        self.dead.push(d);
    }

    /// Full, or old enough to flush.
    pub fn is_ready(&self) -> bool {
        self.rows() + self.deleted.len() >= self.limits.rows
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
        let docs = self.rows.finish()?.batch;
        self.bytes = 0;
        self.opened = None;
        Ok(ClosedBatch {
            docs,
            origin: std::mem::take(&mut self.origin),
            dead: std::mem::take(&mut self.dead),
            deleted: std::mem::take(&mut self.deleted),
            ranges: std::mem::take(&mut self.ranges),
            oldest_timestamp_ms: self.oldest_timestamp_ms.take(),
            generation,
        })
    }
}

impl ClosedBatch {
    /// One batch of `batches` (closed in this order, of one schema and revocation count) for one
    /// commit: rows and their origins in order, deletions re-placed among the joined rows, ranges
    /// joined per partition. `None` for no batches.
    pub fn concat(batches: Vec<ClosedBatch>) -> Result<Option<ClosedBatch>> {
        let mut batches = batches.into_iter();
        let Some(mut joined) = batches.next() else {
            return Ok(None);
        };
        let mut docs = vec![joined.docs.clone()];
        for b in batches {
            let before = joined.origin.len();
            joined.deleted.extend(b.deleted.into_iter().map(|mut d| {
                d.deletion.before_row += before;
                d
            }));
            joined.origin.extend(b.origin);
            joined.dead.extend(b.dead);
            for (p, (start, next)) in b.ranges {
                let r = joined.ranges.entry(p).or_insert((start, next));
                *r = (r.0.min(start), r.1.max(next));
            }
            joined.oldest_timestamp_ms = match (joined.oldest_timestamp_ms, b.oldest_timestamp_ms) {
                (Some(a), Some(c)) => Some(a.min(c)),
                (a, c) => a.or(c),
            };
            joined.generation = joined.generation.max(b.generation);
            docs.push(b.docs);
        }
        joined.docs = concat_rows(docs)?;
        Ok(Some(joined))
    }

    /// Keeps only what `keep(partition, offset)` accepts: rows, deletions, dead letters and ranges
    /// (a range shrinks to start at its first kept offset; a partition with nothing kept disappears).
    pub fn retain(&mut self, keep: impl Fn(&Partition, i64) -> bool) -> Result<usize> {
        let mask: BooleanArray = self.origin.iter().map(|(p, o)| Some(keep(p, *o))).collect();
        let before = self.origin.len() + self.dead.len() + self.deleted.len();
        // Kept rows before each place, to re-place the deletions among the rows that remain.
        let mut kept_before = vec![0usize; self.origin.len() + 1];
        for (i, k) in mask.values().iter().enumerate() {
            kept_before[i + 1] = kept_before[i] + usize::from(k);
        }
        if mask.true_count() < self.origin.len() {
            self.docs = arrow_select::filter::filter_record_batch(&self.docs, &mask)?;
            self.origin.retain(|(p, o)| keep(p, *o));
        }
        self.dead.retain(|d| keep(&d.partition, d.offset));
        self.deleted.retain(|d| keep(&d.partition, d.offset));
        for d in &mut self.deleted {
            d.deletion.before_row = kept_before[d.deletion.before_row];
        }
        let mut ranges = Ranges::new();
        let kept = self
            .origin
            .iter()
            .map(|(p, o)| (p, *o))
            .chain(self.dead.iter().map(|d| (&d.partition, d.offset)))
            .chain(self.deleted.iter().map(|d| (&d.partition, d.offset)));
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
        Ok(before - self.origin.len() - self.dead.len() - self.deleted.len())
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether there is anything to commit to Lance: rows or deletions.
    pub fn has_changes(&self) -> bool {
        self.docs.num_rows() > 0 || !self.deleted.is_empty()
    }

    /// The batch's rows (embedded, of `schema`) and deletions in arrival order, latest change per id.
    pub fn changes(&self, schema: &SchemaRef) -> Result<lexembed_lance::Changes> {
        let mut log = lexembed_lance::ChangeLog::in_memory(schema.clone());
        let placed = self
            .deleted
            .iter()
            .map(|d| (d.deletion.before_row, d.deletion.id.as_str()));
        log.push_placed(&self.docs, placed)?;
        Ok(log.finish()?)
    }
}

/// The rows of every batch in one, of the schema the rows have. A batch without rows may have only
/// the documents' columns (no vectors were made for it: dead letters or deletions only); it adds
/// nothing and must not decide the schema, since `concat_batches` takes the columns of the schema it
/// is given and silently drops the others (the vectors of every batch after it).
fn concat_rows(docs: Vec<RecordBatch>) -> Result<RecordBatch> {
    let mut with_rows: Vec<RecordBatch> =
        docs.iter().filter(|b| b.num_rows() > 0).cloned().collect();
    let Some(first) = with_rows.first() else {
        return docs
            .into_iter()
            .next()
            .ok_or_else(|| KafkaError::Runtime("no batch to join".into()));
    };
    let schema = first.schema();
    if let Some(other) = with_rows.iter().find(|b| b.schema() != schema) {
        return Err(KafkaError::Arrow(arrow_schema::ArrowError::SchemaError(
            format!(
                "gathered batches of different columns cannot join: {:?} and {:?}",
                field_names(&schema),
                field_names(&other.schema())
            ),
        )));
    }
    if with_rows.len() == 1 {
        return Ok(with_rows.remove(0));
    }
    Ok(arrow_select::concat::concat_batches(&schema, &with_rows)?)
}

fn field_names(schema: &arrow_schema::Schema) -> Vec<&str> {
    schema.fields().iter().map(|f| f.name().as_str()).collect()
}

/// Batches for the crate's tests: a Kafka source's micro-batch, and closed batches of documents
/// `{partition}-{offset}` at consecutive offsets of one partition.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// An empty micro-batch of the documents schema that closes at `rows` rows.
    pub(crate) fn micro_batch(rows: usize) -> MicroBatch {
        let y = "name: k\nsource:\n  kind: kafka\n  kafka: {brokers: b, topics: [t], group_id: g}\nsink: {uri: o, mode: append}\n";
        let spec = lexembed_pipeline::spec::parse(y, std::path::Path::new("k.yaml"))
            .unwrap()
            .source;
        let schema = lexembed_lance::schema::documents(&[]).unwrap();
        let limits = BatchLimits {
            rows,
            bytes: 1 << 30,
            linger: Duration::from_secs(60),
        };
        MicroBatch::new(schema, &spec, limits)
    }

    /// Documents of `p` at `offsets`, closed at revocation count `generation`.
    pub(crate) fn closed(
        p: &Partition,
        offsets: std::ops::Range<i64>,
        generation: u64,
    ) -> ClosedBatch {
        let mut b = micro_batch(1 << 20);
        for o in offsets {
            let doc = Doc {
                id: format!("{}-{o}", p.partition),
                text: format!("text {o}"),
                metadata: vec![],
            };
            b.push_doc(p, o, None, &doc);
        }
        b.close(generation).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::micro_batch;

    fn doc(id: &str) -> Doc {
        Doc {
            id: id.into(),
            text: format!("text {id}"),
            metadata: vec![],
        }
    }

    #[test]
    fn closes_on_rows_and_retain_drops_rows_and_shrinks_ranges() {
        let mut b = micro_batch(3);
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

    /// Gathered batches join into one: rows in order, ranges per partition, deletions still after
    /// the rows they followed.
    #[test]
    fn batches_join_in_order_with_their_deletions_in_place() {
        let schema = lexembed_lance::schema::documents(&[]).unwrap();
        let mut b = micro_batch(100);
        let (p0, p1) = (Partition::new("t", 0), Partition::new("t", 1));
        b.push_doc(&p0, 0, Some(70), &doc("a"));
        b.push_doc(&p1, 0, None, &doc("x"));
        let first = b.close(2).unwrap();
        b.push_doc(&p0, 1, Some(40), &doc("b"));
        b.push_delete(&p0, 2, None, "a".into());
        b.push_doc(&p1, 1, None, &doc("y"));
        let second = b.close(2).unwrap();
        assert!(ClosedBatch::concat(vec![]).unwrap().is_none());
        let j = ClosedBatch::concat(vec![first, second]).unwrap().unwrap();
        assert_eq!(j.docs.num_rows(), 4);
        assert_eq!(
            j.origin,
            vec![
                (p0.clone(), 0),
                (p1.clone(), 0),
                (p0.clone(), 1),
                (p1.clone(), 1)
            ]
        );
        assert_eq!((j.ranges[&p0], j.ranges[&p1]), ((0, 3), (0, 2)));
        assert_eq!((j.oldest_timestamp_ms, j.generation), (Some(40), 2));
        let places: Vec<(&str, usize)> = j
            .deleted
            .iter()
            .map(|d| (d.deletion.id.as_str(), d.deletion.before_row))
            .collect();
        assert_eq!(places, vec![("a", 3)], "after a, x and b");
        let ids = j.docs.column_by_name("id").unwrap();
        let ids = ids
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        assert_eq!(
            ids.iter().flatten().collect::<Vec<_>>(),
            ["a", "x", "b", "y"]
        );
        let changes = j.changes(&schema).unwrap();
        assert_eq!(changes.deletes, vec!["a".to_string()]);
    }

    /// A gather that starts with a batch without rows (dead letters or deletions only: no vectors
    /// were made, so it has only the documents' columns) keeps the vectors of the batches after it.
    /// Before, the first batch's columns decided and the vectors were dropped: the replica then
    /// refused its own rows ("pipeline writes [] that the dataset lacks; dataset has [emb_64, …]").
    #[test]
    fn a_gather_opened_by_a_batch_without_rows_keeps_the_vectors_after_it() {
        let p = Partition::new("t", 0);
        let mut b = micro_batch(100);
        b.push_delete(&p, 0, None, "gone".into());
        let no_rows = b.close(0).unwrap();
        let mut embedded = fixtures::closed(&p, 1..4, 0);
        let vectors = arrow_array::FixedSizeListArray::try_new(
            lexembed_encoder::matryoshka::item_field(),
            2,
            std::sync::Arc::new(arrow_array::Float32Array::from(vec![0.5f32; 6])),
            None,
        )
        .unwrap();
        let mut fields: Vec<arrow_schema::FieldRef> =
            embedded.docs.schema().fields().iter().cloned().collect();
        fields.push(std::sync::Arc::new(arrow_schema::Field::new(
            "emb_2",
            arrow_array::Array::data_type(&vectors).clone(),
            false,
        )));
        let mut columns = embedded.docs.columns().to_vec();
        columns.push(std::sync::Arc::new(vectors));
        embedded.docs = RecordBatch::try_new(
            std::sync::Arc::new(arrow_schema::Schema::new(fields)),
            columns,
        )
        .unwrap();
        let joined = ClosedBatch::concat(vec![no_rows, embedded.clone()])
            .unwrap()
            .unwrap();
        assert!(
            joined.docs.column_by_name("emb_2").is_some(),
            "vectors dropped"
        );
        assert_eq!((joined.docs.num_rows(), joined.deleted.len()), (3, 1));
        // Rows of other columns do not join silently.
        let plain = fixtures::closed(&p, 4..5, 0);
        let Err(err) = ClosedBatch::concat(vec![embedded, plain]) else {
            panic!("rows of other columns joined")
        };
        assert!(err.to_string().contains("emb_2"), "{err}");
    }

    /// Deletions are fenced like rows and keep their place among the rows that remain; the latest
    /// change of an id wins.
    #[test]
    fn deletions_are_fenced_and_keep_their_place() {
        let schema = lexembed_lance::schema::documents(&[]).unwrap();
        let mut b = micro_batch(100);
        let (p0, p1) = (Partition::new("t", 0), Partition::new("t", 1));
        b.push_doc(&p1, 3, None, &doc("x"));
        b.push_doc(&p0, 5, None, &doc("a"));
        b.push_delete(&p0, 6, None, "a".into());
        b.push_doc(&p0, 7, None, &doc("b"));
        b.push_delete(&p0, 8, None, "b".into());
        b.push_doc(&p0, 9, None, &doc("b"));
        let mut c = b.close(0).unwrap();
        assert!(c.has_changes());
        let dropped = c.retain(|p, _| p == &p0).unwrap();
        assert_eq!(dropped, 1);
        assert_eq!(c.ranges[&p0], (5, 10));
        let places: Vec<(&str, usize)> = c
            .deleted
            .iter()
            .map(|d| (d.deletion.id.as_str(), d.deletion.before_row))
            .collect();
        assert_eq!(places, vec![("a", 1), ("b", 2)]);
        let changes = c.changes(&schema).unwrap();
        assert_eq!(changes.deletes, vec!["a".to_string()]);
        assert_eq!((changes.rows_in, changes.rows_kept), (3, 1));
        // Fencing off every offset leaves nothing to commit.
        c.retain(|_, _| false).unwrap();
        assert!(!c.has_changes() && c.is_empty());
    }
}
