//! What a commit holds, typed: the one place that turns a commit's description into Lance transaction
//! properties and back. Every write path (file and SQL runs, the Kafka operator, `COPY … TO`) describes
//! its commit as a [`CommitRecord`]; readers (resume, offset recovery, history) parse it back. The
//! property names are in [`crate::keys`] and nowhere else.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Result, StoreError};
use crate::keys::{
    CHECKPOINT_KEY, CHECKPOINT_VERSION_KEY, DIMS_KEY, GROUP_KEY, JOB_KEY, MODEL_ID_KEY,
    OFFSETS_KEY, PIPELINE_KEY, SOURCES_KEY,
};
use crate::schema::{WrittenBy, format_dims, parse_dims};

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
}

impl CommitRecord {
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
            p.insert(MODEL_ID_KEY.into(), w.model_id.clone());
            p.insert(DIMS_KEY.into(), format_dims(&w.dims));
        }
        if !self.sources.is_empty() {
            let list = serde_json::to_string(&self.sources).unwrap_or_default();
            p.insert(SOURCES_KEY.into(), list);
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
        let written_by = match (p.get(MODEL_ID_KEY), p.get(DIMS_KEY)) {
            (Some(model), Some(dims)) => Some(WrittenBy {
                model_id: model.clone(),
                dims: parse_dims(dims),
            }),
            _ => None,
        };
        let sources = match p.get(SOURCES_KEY) {
            Some(list) => serde_json::from_str(list).map_err(|e| bad(SOURCES_KEY, e))?,
            None => Vec::new(),
        };
        Ok(Self {
            pipeline: p.get(PIPELINE_KEY).cloned(),
            job: p.get(JOB_KEY).cloned(),
            written_by,
            sources,
            kafka: kafka_commit(p)?,
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
        .map(|(k, [s, n])| {
            let (topic, part) = k
                .rsplit_once(':')
                .ok_or_else(|| bad(key, format!("{k:?} is not topic:partition")))?;
            let partition = part
                .parse()
                .map_err(|_| bad(key, format!("{k:?} has no partition number")))?;
            Ok((TopicPartition::new(topic, partition), (s, n)))
        })
        .collect()
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
