//! The `eval:` block: scheduled IR evaluation of the dataset a pipeline writes, and the schedule
//! syntax scheduled jobs share (a cron expression, optionally on a time zone's wall clock).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scheduled IR evaluation of the dataset this pipeline writes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// QA pairs: JSONL, Parquet or a Lance table (relative to the spec file).
    pub qa: String,
    /// Lance table the results are appended to.
    #[serde(default)]
    pub history: Option<String>,
    /// Cron schedule (five fields, crontab(5)), e.g. "0 3 * * *" (UTC), or with a time zone
    /// `{cron: "0 3 * * *", tz: Europe/Madrid}`; without one, `lexembed eval --pipeline` runs once.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// Dims to evaluate (default: every vector column of the dataset).
    #[serde(default)]
    pub dims: Vec<u32>,
    /// Fail when a watched metric falls more than this against the previous comparable run.
    #[serde(default)]
    pub max_drop: Option<f64>,
    /// Metrics watched for drops (default cosine_ndcg@10).
    #[serde(default)]
    pub watch: Vec<String>,
    /// Floors: metric → smallest allowed value at every dim.
    #[serde(default)]
    pub min: BTreeMap<String, f64>,
}

/// When a scheduled job runs: a cron expression read in UTC, or on a time zone's wall clock.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ScheduleSpec {
    /// Five fields in UTC: `"0 3 * * *"`.
    Utc(String),
    /// `{cron: "0 3 * * *", tz: Europe/Madrid}`: 03:00 Madrid time, summer and winter.
    Zoned(ZonedSchedule),
}

/// A cron expression on a time zone's wall clock.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZonedSchedule {
    /// Five fields: minute hour day-of-month month day-of-week.
    pub cron: String,
    /// IANA time zone name, e.g. Europe/Madrid (default UTC).
    #[serde(default)]
    pub tz: Option<String>,
}

impl ScheduleSpec {
    /// The cron expression.
    pub fn cron(&self) -> &str {
        match self {
            Self::Utc(cron) | Self::Zoned(ZonedSchedule { cron, .. }) => cron,
        }
    }

    /// The time zone, when one is named.
    pub fn tz(&self) -> Option<&str> {
        match self {
            Self::Utc(_) => None,
            Self::Zoned(z) => z.tz.as_deref(),
        }
    }
}
