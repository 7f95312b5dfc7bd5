//! Kafka offsets recorded in Lance: the source of truth for where each partition resumes.
//!
//! Every Lance commit of the operator carries, in its transaction properties, the consumer group and,
//! per topic-partition, the half-open offset range `[start, next)` its rows (and dead letters) cover.
//! `LanceOffsets` folds those properties into "next offset per partition", reading only the versions
//! committed since it last looked, so refreshing on every assignment and before every commit is cheap.
//! Commits also carry a checkpoint of every partition's next offset, so a cold start reads back from
//! the newest version only to the newest checkpoint, not through the whole history.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use lance::Dataset;
use lexembed_lance::DatasetLocation;
use tracing::debug;

use crate::error::{KafkaError, Result};

pub use lexembed_lance::keys::{CHECKPOINT_KEY, CHECKPOINT_VERSION_KEY, GROUP_KEY, OFFSETS_KEY};

/// A topic-partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub topic: String,
    pub partition: i32,
}

impl Partition {
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.topic, self.partition)
    }
}

/// Offset ranges `[start, next)` per partition, as one commit records them.
pub type Ranges = BTreeMap<Partition, (i64, i64)>;

pub fn encode_ranges(ranges: &Ranges) -> String {
    let map: BTreeMap<String, [i64; 2]> = ranges
        .iter()
        .map(|(p, &(s, n))| (p.to_string(), [s, n]))
        .collect();
    serde_json::to_string(&map).unwrap_or_default()
}

pub fn decode_ranges(text: &str) -> std::result::Result<Ranges, String> {
    let map: BTreeMap<String, [i64; 2]> =
        serde_json::from_str(text).map_err(|e| format!("{OFFSETS_KEY} is not valid: {e}"))?;
    map.into_iter()
        .map(|(k, [s, n])| {
            let (topic, part) = k
                .rsplit_once(':')
                .ok_or_else(|| format!("{OFFSETS_KEY}: key {k} is not topic:partition"))?;
            let partition = part
                .parse()
                .map_err(|_| format!("{OFFSETS_KEY}: key {k} has no partition number"))?;
            Ok((Partition::new(topic, partition), (s, n)))
        })
        .collect()
}

/// The next offset per partition that the dataset's commits of one consumer group cover.
pub struct LanceOffsets {
    location: DatasetLocation,
    group: String,
    /// Latest version folded in (0: none yet).
    seen: u64,
    next: HashMap<Partition, i64>,
    dataset: Option<Arc<Dataset>>,
}

impl LanceOffsets {
    pub fn new(location: DatasetLocation, group: &str) -> Self {
        Self {
            location,
            group: group.to_string(),
            seen: 0,
            next: HashMap::new(),
            dataset: None,
        }
    }

    pub fn location(&self) -> &DatasetLocation {
        &self.location
    }

    /// The latest dataset version known (after `refresh`), if the dataset exists.
    pub fn dataset(&self) -> Option<Arc<Dataset>> {
        self.dataset.clone()
    }

    /// Where `p` resumes: one past the last offset a commit covers, or `None` if none does.
    pub fn next_offset(&self, p: &Partition) -> Option<i64> {
        self.next.get(p).copied()
    }

    /// Folds in every version committed since the last refresh (by any replica).
    pub async fn refresh(&mut self) -> Result<()> {
        let ds = match &self.dataset {
            Some(ds) => {
                let mut ds = ds.as_ref().clone();
                ds.checkout_latest()
                    .await
                    .map_err(|e| self.err(ds.version().version, e.to_string()))?;
                ds
            }
            None => match self.location.open_if_exists().await? {
                Some(ds) => ds,
                None => return Ok(()),
            },
        };
        self.fold_versions(&ds).await?;
        self.dataset = Some(Arc::new(ds));
        Ok(())
    }

    /// Records a commit this replica just made (its dataset handle is the newest view).
    pub async fn committed(&mut self, ds: Dataset) -> Result<()> {
        self.fold_versions(&ds).await?;
        self.dataset = Some(Arc::new(ds));
        Ok(())
    }

    /// Every partition's next offset as known now, with `ranges` (a batch about to be committed) folded
    /// in: the checkpoint that batch's commit carries.
    pub fn checkpoint_with(&self, ranges: &Ranges) -> (String, u64) {
        let mut all: Ranges = self
            .next
            .iter()
            .map(|(p, &n)| (p.clone(), (n, n)))
            .collect();
        for (p, &(s, n)) in ranges {
            let e = all.entry(p.clone()).or_insert((s, n));
            e.1 = e.1.max(n);
        }
        (encode_ranges(&all), self.seen)
    }

    /// Folds versions (seen, latest], newest first; on a cold start the newest checkpoint ends the walk
    /// at its version.
    async fn fold_versions(&mut self, ds: &Dataset) -> Result<()> {
        let latest = ds.version().version;
        let cold = self.seen == 0;
        let mut floor = self.seen;
        let mut v = latest;
        while v > floor {
            if let Some(props) = self.group_props(ds, v).await? {
                if let Some(text) = props.get(OFFSETS_KEY) {
                    let ranges = decode_ranges(text).map_err(|m| self.err(v, m))?;
                    self.fold(ranges);
                }
                if cold
                    && let (Some(cp), Some(at)) =
                        (props.get(CHECKPOINT_KEY), props.get(CHECKPOINT_VERSION_KEY))
                {
                    let ranges = decode_ranges(cp).map_err(|m| self.err(v, m))?;
                    self.fold(ranges);
                    let at: u64 = at.parse().map_err(|_| {
                        self.err(v, format!("{CHECKPOINT_VERSION_KEY} is not a number"))
                    })?;
                    floor = floor.max(at);
                }
            }
            v -= 1;
        }
        debug!(
            from = floor,
            to = latest,
            "folded Lance commits into offsets"
        );
        self.seen = self.seen.max(latest);
        Ok(())
    }

    fn fold(&mut self, ranges: Ranges) {
        for (p, (_, next)) in ranges {
            let e = self.next.entry(p).or_insert(next);
            *e = (*e).max(next);
        }
    }

    /// The transaction properties of version `v` if a commit of this group made it.
    async fn group_props(
        &self,
        ds: &Dataset,
        v: u64,
    ) -> Result<Option<Arc<HashMap<String, String>>>> {
        let tx = ds
            .read_transaction_by_version(v)
            .await
            .map_err(|e| self.err(v, e.to_string()))?;
        Ok(tx
            .and_then(|t| t.transaction_properties)
            .filter(|p| p.get(GROUP_KEY) == Some(&self.group)))
    }

    fn err(&self, version: u64, message: String) -> KafkaError {
        KafkaError::Offsets {
            uri: self.location.uri.clone(),
            version,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip_and_bad_text_is_an_error() {
        let mut r = Ranges::new();
        r.insert(Partition::new("boe.articles-v1", 3), (10, 42));
        r.insert(Partition::new("t", 0), (0, 1));
        assert_eq!(decode_ranges(&encode_ranges(&r)).unwrap(), r);
        assert!(
            decode_ranges("{\"t\": [1, 2]}")
                .unwrap_err()
                .contains("topic:partition")
        );
        assert!(
            decode_ranges("{\"t:x\": [1, 2]}")
                .unwrap_err()
                .contains("partition number")
        );
        assert!(decode_ranges("nope").is_err());
    }
}
