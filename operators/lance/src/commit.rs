//! What a commit holds, typed: the one place that turns a commit's description into Lance transaction
//! properties and back. Every write path (file and SQL runs, the Kafka operator, `COPY … TO`) describes
//! its commit as a [`CommitRecord`]; readers (resume, offset recovery, history) parse it back. The
//! property names are in [`crate::keys`] and nowhere else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use lance::dataset::transaction::Transaction;

use crate::error::{Result, StoreError};
use crate::keys::{
    CHECKPOINT_KEY, CHECKPOINT_VERSION_KEY, GROUP_KEY, JOB_KEY, OFFSETS_KEY, PIPELINE_KEY,
    RECOVERY_KEY, SOURCES_KEY,
};
use crate::schema::{WrittenBy, written_by};

/// A Kafka topic-partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.topic, self.partition)
    }
}

/// Offset ranges `[start, next)` per partition.
pub type OffsetRanges = BTreeMap<TopicPartition, (i64, i64)>;

/// Every partition's next offset as a replica saw the dataset at `at_version`, plus its own batch: a
/// reader starting cold folds the newest checkpoint and the commits after `at_version` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub ranges: OffsetRanges,
    pub at_version: u64,
}

/// What a Kafka operator's commit covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaCommit {
    /// The consumer group whose offsets these are.
    pub group: String,
    /// The offsets the commit's rows and dead letters cover.
    pub ranges: OffsetRanges,
    pub checkpoint: Option<Checkpoint>,
}

/// What one commit holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitRecord {
    /// The pipeline that made the commit.
    pub pipeline: Option<String>,
    /// The job that made it when not a pipeline (`eval` for evaluation history).
    pub job: Option<String>,
    /// The model and dims of its vectors.
    pub written_by: Option<WrittenBy>,
    /// The source keys (files, SQL shards) a file/SQL run committed.
    pub sources: Vec<String>,
    pub kafka: Option<KafkaCommit>,
    /// Everything committed up to a version (the commit `lexembed cleanup` makes before it removes
    /// older versions).
    pub recovery: Option<Recovery>,
}

/// What every pipeline and consumer group had committed up to `through_version`: the source keys per
/// pipeline and each partition's next offset per group. `lexembed cleanup` commits one before it
/// removes the versions below, so resume and offset recovery never need a removed version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub through_version: u64,
    pub sources: BTreeMap<String, BTreeSet<String>>,
    pub offsets: BTreeMap<String, BTreeMap<TopicPartition, i64>>,
}

impl Recovery {
    /// Folds in the commit made at `version`.
    pub fn fold(&mut self, version: u64, record: &CommitRecord) {
        if let Some(r) = &record.recovery {
            for (pipeline, keys) in &r.sources {
                self.add_sources(pipeline, keys.iter());
            }
            for (group, next) in &r.offsets {
                self.advance(group, next.iter().map(|(p, &n)| (p, n)));
            }
        }
        if let Some(pipeline) = &record.pipeline {
            self.add_sources(pipeline, record.sources.iter());
        }
        if let Some(k) = &record.kafka {
            let checkpoint = k.checkpoint.iter().flat_map(|c| c.ranges.iter());
            let ranges = k.ranges.iter().chain(checkpoint);
            self.advance(&k.group, ranges.map(|(p, &(_, next))| (p, next)));
        }
        self.through_version = self.through_version.max(version);
    }

    fn add_sources<'a>(&mut self, pipeline: &str, keys: impl Iterator<Item = &'a String>) {
        let mut keys = keys.peekable();
        if keys.peek().is_some() {
            let set = self.sources.entry(pipeline.to_string()).or_default();
            set.extend(keys.cloned());
        }
    }

    fn advance<'a>(&mut self, group: &str, next: impl Iterator<Item = (&'a TopicPartition, i64)>) {
        let offsets = self.offsets.entry(group.to_string()).or_default();
        for (p, n) in next {
            let e = offsets.entry(p.clone()).or_insert(n);
            *e = (*e).max(n);
        }
    }

    fn to_json(&self) -> String {
        let offsets: BTreeMap<&String, BTreeMap<String, i64>> = self
            .offsets
            .iter()
            .map(|(g, next)| (g, next.iter().map(|(p, &n)| (p.to_string(), n)).collect()))
            .collect();
        serde_json::json!({
            "through_version": self.through_version,
            "sources": self.sources,
            "offsets": offsets,
        })
        .to_string()
    }

    fn from_json(text: &str) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Json {
            through_version: u64,
            sources: BTreeMap<String, BTreeSet<String>>,
            offsets: BTreeMap<String, BTreeMap<String, i64>>,
        }
        let j: Json = serde_json::from_str(text).map_err(|e| bad(RECOVERY_KEY, e))?;
        let mut offsets = BTreeMap::new();
        for (group, next) in j.offsets {
            let parsed: Result<BTreeMap<TopicPartition, i64>> = next
                .into_iter()
                .map(|(k, n)| Ok((parse_partition(RECOVERY_KEY, &k)?, n)))
                .collect();
            offsets.insert(group, parsed?);
        }
        Ok(Self {
            through_version: j.through_version,
            sources: j.sources,
            offsets,
        })
    }
}

impl CommitRecord {
    /// The same description without the progress it records (source files, Kafka offsets, a
    /// recovery): for a commit that lands part of a write before the commit that records the write.
    pub fn without_progress(&self) -> Self {
        Self {
            pipeline: self.pipeline.clone(),
            job: self.job.clone(),
            written_by: self.written_by.clone(),
            ..Self::default()
        }
    }

    /// `tx` carrying this record in its transaction properties, where resume, offset recovery and
    /// history read it back.
    pub fn stamp(&self, mut tx: Transaction) -> Transaction {
        tx.transaction_properties = Some(Arc::new(self.to_properties()));
        tx
    }

    /// The transaction properties that record this commit.
    pub fn to_properties(&self) -> HashMap<String, String> {
        let mut p = HashMap::new();
        if let Some(name) = &self.pipeline {
            p.insert(PIPELINE_KEY.into(), name.clone());
        }
        if let Some(job) = &self.job {
            p.insert(JOB_KEY.into(), job.clone());
        }
        if let Some(w) = &self.written_by {
            p.extend(w.to_metadata());
        }
        if !self.sources.is_empty() {
            let list = serde_json::to_string(&self.sources).unwrap_or_default();
            p.insert(SOURCES_KEY.into(), list);
        }
        if let Some(r) = &self.recovery {
            p.insert(RECOVERY_KEY.into(), r.to_json());
        }
        if let Some(k) = &self.kafka {
            p.insert(GROUP_KEY.into(), k.group.clone());
            p.insert(OFFSETS_KEY.into(), encode_ranges(&k.ranges));
            if let Some(cp) = &k.checkpoint {
                p.insert(CHECKPOINT_KEY.into(), encode_ranges(&cp.ranges));
                p.insert(CHECKPOINT_VERSION_KEY.into(), cp.at_version.to_string());
            }
        }
        p
    }

    /// Reads a commit back from its transaction properties; a property lexembed wrote that does not
    /// parse is an error naming it (properties of other writers are ignored).
    pub fn from_properties(p: &HashMap<String, String>) -> Result<Self> {
        let sources = match p.get(SOURCES_KEY) {
            Some(list) => serde_json::from_str(list).map_err(|e| bad(SOURCES_KEY, e))?,
            None => Vec::new(),
        };
        Ok(Self {
            pipeline: p.get(PIPELINE_KEY).cloned(),
            job: p.get(JOB_KEY).cloned(),
            written_by: written_by(p),
            sources,
            kafka: kafka_commit(p)?,
            recovery: p
                .get(RECOVERY_KEY)
                .map(|t| Recovery::from_json(t))
                .transpose()?,
        })
    }
}

fn kafka_commit(p: &HashMap<String, String>) -> Result<Option<KafkaCommit>> {
    let Some(group) = p.get(GROUP_KEY) else {
        return Ok(None);
    };
    let ranges = match p.get(OFFSETS_KEY) {
        Some(text) => decode_ranges(OFFSETS_KEY, text)?,
        None => OffsetRanges::new(),
    };
    let checkpoint = match (p.get(CHECKPOINT_KEY), p.get(CHECKPOINT_VERSION_KEY)) {
        (Some(cp), Some(at)) => Some(Checkpoint {
            ranges: decode_ranges(CHECKPOINT_KEY, cp)?,
            at_version: at.parse().map_err(|e| bad(CHECKPOINT_VERSION_KEY, e))?,
        }),
        _ => None,
    };
    Ok(Some(KafkaCommit {
        group: group.clone(),
        ranges,
        checkpoint,
    }))
}

fn bad(key: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::BadCommitRecord {
        key,
        message: e.to_string(),
    }
}

/// `{"topic:partition": [start, next], …}`.
fn encode_ranges(ranges: &OffsetRanges) -> String {
    let map: BTreeMap<String, [i64; 2]> = ranges
        .iter()
        .map(|(p, &(s, n))| (p.to_string(), [s, n]))
        .collect();
    serde_json::to_string(&map).unwrap_or_default()
}

fn decode_ranges(key: &'static str, text: &str) -> Result<OffsetRanges> {
    let map: BTreeMap<String, [i64; 2]> = serde_json::from_str(text).map_err(|e| bad(key, e))?;
    map.into_iter()
        .map(|(k, [s, n])| Ok((parse_partition(key, &k)?, (s, n))))
        .collect()
}

/// `topic:partition` back into a partition (the property `key` is named in the error).
fn parse_partition(key: &'static str, k: &str) -> Result<TopicPartition> {
    let (topic, part) = k
        .rsplit_once(':')
        .ok_or_else(|| bad(key, format!("{k:?} is not topic:partition")))?;
    let partition = part
        .parse()
        .map_err(|_| bad(key, format!("{k:?} has no partition number")))?;
    Ok(TopicPartition::new(topic, partition))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka_record() -> CommitRecord {
        let mut ranges = OffsetRanges::new();
        ranges.insert(TopicPartition::new("boe.articles-v1", 3), (10, 42));
        ranges.insert(TopicPartition::new("t", 0), (0, 1));
        CommitRecord {
            pipeline: Some("p".into()),
            job: None,
            written_by: Some(WrittenBy {
                model_id: "m".into(),
                dims: vec![64, 32],
                prompts: lexembed_encoder::RolePrompts {
                    document: lexembed_encoder::Prompt::literal("passage: "),
                    query: lexembed_encoder::Prompt::none(),
                },
            }),
            sources: vec![],
            kafka: Some(KafkaCommit {
                group: "g".into(),
                ranges: ranges.clone(),
                checkpoint: Some(Checkpoint {
                    ranges,
                    at_version: 7,
                }),
            }),
            recovery: None,
        }
    }

    #[test]
    fn records_round_trip_through_properties() {
        let k = kafka_record();
        assert_eq!(
            CommitRecord::from_properties(&k.to_properties()).unwrap(),
            k
        );
        let files = CommitRecord {
            pipeline: Some("p".into()),
            sources: vec!["a.jsonl:10:20".into()],
            ..CommitRecord::default()
        };
        let p = files.to_properties();
        assert_eq!(p[PIPELINE_KEY], "p");
        assert_eq!(CommitRecord::from_properties(&p).unwrap(), files);
        assert_eq!(
            CommitRecord::from_properties(&HashMap::new()).unwrap(),
            CommitRecord::default()
        );
    }

    /// Folding commits (files of two pipelines, Kafka batches and checkpoints, an earlier recovery)
    /// gives what a resume and an offset recovery need; it survives its properties.
    #[test]
    fn a_recovery_folds_every_kind_of_commit_and_round_trips() {
        let mut earlier = Recovery::default();
        earlier.fold(
            2,
            &CommitRecord {
                pipeline: Some("p".into()),
                sources: vec!["old.jsonl".into()],
                ..CommitRecord::default()
            },
        );
        let mut r = Recovery::default();
        let cleanup = CommitRecord {
            job: Some("cleanup".into()),
            recovery: Some(earlier),
            ..CommitRecord::default()
        };
        r.fold(3, &cleanup);
        r.fold(4, &kafka_record());
        r.fold(
            5,
            &CommitRecord {
                pipeline: Some("q".into()),
                sources: vec!["b.jsonl".into()],
                ..CommitRecord::default()
            },
        );
        assert_eq!(r.through_version, 5);
        assert_eq!(r.sources["p"].iter().collect::<Vec<_>>(), vec!["old.jsonl"]);
        assert_eq!(r.sources["q"].len(), 1);
        assert_eq!(
            r.offsets["g"][&TopicPartition::new("boe.articles-v1", 3)],
            42
        );
        assert_eq!(r.offsets["g"][&TopicPartition::new("t", 0)], 1);
        let record = CommitRecord {
            recovery: Some(r),
            ..CommitRecord::default()
        };
        assert_eq!(
            CommitRecord::from_properties(&record.to_properties()).unwrap(),
            record
        );
        let mut p = record.to_properties();
        p.insert(RECOVERY_KEY.into(), "{\"through_version\": 1}".into());
        let e = CommitRecord::from_properties(&p).unwrap_err().to_string();
        assert!(e.contains(RECOVERY_KEY), "{e}");
    }

    #[test]
    fn a_bad_property_is_an_error_naming_it() {
        let mut p = kafka_record().to_properties();
        for (value, says) in [
            ("{\"t\": [1, 2]}", "topic:partition"),
            ("{\"t:x\": [1, 2]}", "partition number"),
            ("nope", "expected"),
        ] {
            p.insert(OFFSETS_KEY.into(), value.into());
            let e = CommitRecord::from_properties(&p).unwrap_err().to_string();
            assert!(e.contains(OFFSETS_KEY) && e.contains(says), "{e}");
        }
        let mut p = kafka_record().to_properties();
        p.insert(CHECKPOINT_VERSION_KEY.into(), "x".into());
        let e = CommitRecord::from_properties(&p).unwrap_err().to_string();
        assert!(e.contains(CHECKPOINT_VERSION_KEY), "{e}");
    }
}
