//! Removing old versions without losing what resume and offset recovery need.
//!
//! Resume (which files a pipeline committed) and Kafka offset recovery (where each partition resumes)
//! read commits' transaction properties, which `cleanup_old_versions` deletes with their versions. So
//! cleanup here first commits one [`Recovery`]: everything every pipeline and consumer group committed
//! up to the latest version, as a config-only commit that lands directly on that version (a commit
//! landing in between makes it re-read and retry, so nothing is left out), with the dataset config
//! pointing at it. Only then are versions below it removed: the recovery commit and everything after
//! it always stay, and readers start at the version the config names instead of the first one.

use std::collections::HashMap;
use std::sync::Arc;

use lance::Dataset;
use lance::dataset::cleanup::CleanupPolicy;
use lance::dataset::transaction::{Operation, Transaction, UpdateMap, UpdateMapEntry};
use tracing::info;

use crate::commit::{CommitRecord, Recovery};
use crate::error::{Result, StoreError, lance_err};
use crate::keys::RECOVERY_VERSION_KEY;
use crate::store::{DatasetLocation, commit_history};

/// Recovery commits superseded in a row before cleanup gives up (each means another commit landed).
const MAX_ATTEMPTS: usize = 32;

/// What a cleanup did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CleanupSummary {
    /// The version of the recovery commit: it and every later version are kept.
    pub recovery_version: u64,
    pub versions_removed: u64,
    pub bytes_removed: u64,
}

/// Commits a recovery of everything committed so far, then removes the versions below it (only those
/// older than `older_than`, when given: time travel to recent versions keeps working).
pub async fn cleanup(
    location: &DatasetLocation,
    older_than: Option<chrono::Duration>,
) -> Result<CleanupSummary> {
    let ds = commit_recovery(location).await?;
    let recovery_version = ds.version().version;
    let policy = CleanupPolicy {
        before_version: Some(recovery_version),
        before_timestamp: older_than.map(|d| chrono::Utc::now() - d),
        ..CleanupPolicy::default()
    };
    let stats = ds
        .cleanup_with_policy(policy)
        .await
        .map_err(lance_err(&location.uri))?;
    info!(
        uri = %location.uri, recovery_version, versions_removed = stats.old_versions,
        bytes_removed = stats.bytes_removed, "cleaned up old versions"
    );
    Ok(CleanupSummary {
        recovery_version,
        versions_removed: stats.old_versions,
        bytes_removed: stats.bytes_removed,
    })
}

/// Commits the recovery of the latest version on exactly that version; returns the dataset at it.
async fn commit_recovery(location: &DatasetLocation) -> Result<Dataset> {
    for _ in 0..MAX_ATTEMPTS {
        let ds = Arc::new(location.open().await?);
        let latest = ds.version().version;
        let mut recovery = Recovery::default();
        for (version, record) in commit_history(&ds).await? {
            recovery.fold(version, &record);
        }
        recovery.through_version = latest;
        let record = CommitRecord {
            job: Some("cleanup".into()),
            recovery: Some(recovery),
            ..CommitRecord::default()
        };
        let pointer =
            UpdateMapEntry::from((RECOVERY_VERSION_KEY, (latest + 1).to_string().as_str()));
        let operation = Operation::UpdateConfig {
            config_updates: Some(UpdateMap {
                update_entries: vec![pointer],
                replace: false,
            }),
            table_metadata_updates: None,
            schema_metadata_updates: None,
            field_metadata_updates: HashMap::new(),
        };
        let mut tx = Transaction::new(latest, operation, None);
        tx.transaction_properties = Some(Arc::new(record.to_properties()));
        if let Some(committed) = location.commit_on(ds, tx).await? {
            return Ok(committed);
        }
    }
    Err(StoreError::Invalid(format!(
        "{}: {MAX_ATTEMPTS} recovery commits in a row were superseded by other commits; retry when \
         the dataset is quieter",
        location.uri
    )))
}

/// The version of the newest recovery commit, if a cleanup made one.
pub fn recovery_version(ds: &Dataset) -> Option<u64> {
    ds.config().get(RECOVERY_VERSION_KEY)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::{KafkaCommit, OffsetRanges, TopicPartition};
    use arrow_array::{Int32Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    fn batch(values: &[i32]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(values.to_vec()))]).unwrap()
    }

    fn files(pipeline: &str, keys: &[&str]) -> CommitRecord {
        CommitRecord {
            pipeline: Some(pipeline.into()),
            sources: keys.iter().map(|k| k.to_string()).collect(),
            ..CommitRecord::default()
        }
    }

    fn kafka(next: i64) -> CommitRecord {
        let mut ranges = OffsetRanges::new();
        ranges.insert(TopicPartition::new("t", 0), (next - 2, next));
        CommitRecord {
            kafka: Some(KafkaCommit {
                group: "g".into(),
                ranges,
                checkpoint: None,
            }),
            ..CommitRecord::default()
        }
    }

    /// Every version below the recovery commit is removed, and what the removed commits held (files
    /// per pipeline, offsets per group) is all in the history that remains; a second cleanup carries
    /// the first one's recovery forward.
    #[tokio::test]
    async fn cleanup_removes_old_versions_and_keeps_what_they_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        loc.append(None, batch(&[1]), &files("p", &["a.jsonl"]))
            .await
            .unwrap();
        loc.append(None, batch(&[2]), &kafka(2)).await.unwrap();
        loc.append(None, batch(&[3]), &kafka(4)).await.unwrap();
        let mut ds = loc.open().await.unwrap();
        crate::compact(&mut ds).await.unwrap();
        let before = ds.versions().await.unwrap().len();
        let done = cleanup(&loc, None).await.unwrap();
        assert_eq!(done.versions_removed as usize, before, "{done:?}");
        let ds = loc.open().await.unwrap();
        assert_eq!(ds.versions().await.unwrap().len(), 1);
        assert_eq!(recovery_version(&ds), Some(done.recovery_version));
        assert_eq!(ds.count_rows(None).await.unwrap(), 3, "no row lost");
        let recovered = |history: Vec<(u64, CommitRecord)>| {
            let mut r = Recovery::default();
            for (v, record) in history {
                r.fold(v, &record);
            }
            r
        };
        let r = recovered(commit_history(&ds).await.unwrap());
        assert!(r.sources["p"].contains("a.jsonl"));
        assert_eq!(r.offsets["g"][&TopicPartition::new("t", 0)], 4);
        // More commits, a second cleanup: the first recovery is folded into the second.
        loc.append(None, batch(&[4]), &files("p", &["b.jsonl"]))
            .await
            .unwrap();
        let again = cleanup(&loc, None).await.unwrap();
        assert_eq!(again.versions_removed, 2);
        let ds = loc.open().await.unwrap();
        let r = recovered(commit_history(&ds).await.unwrap());
        assert_eq!(r.sources["p"].len(), 2);
        assert_eq!(r.offsets["g"][&TopicPartition::new("t", 0)], 4);
    }

    /// `--older-than` keeps recent versions (time travel) and still commits the recovery.
    #[tokio::test]
    async fn older_than_keeps_recent_versions() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatasetLocation::new(dir.path().join("d.lance").display().to_string());
        for v in 0..3 {
            loc.append(None, batch(&[v]), &files("p", &[&format!("{v}.jsonl")]))
                .await
                .unwrap();
        }
        let done = cleanup(&loc, Some(chrono::Duration::hours(1)))
            .await
            .unwrap();
        assert_eq!((done.versions_removed, done.recovery_version), (0, 4));
        let ds = loc.open().await.unwrap();
        assert_eq!(ds.versions().await.unwrap().len(), 4);
    }
}
