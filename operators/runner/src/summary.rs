//! What a run reports: a batch run's summary (file and SQL sources) or a streaming run's (Kafka),
//! printed for people by `Display` and as the same JSON as before by `Serialize`.

use std::fmt;

use lexembed_kafka::OperatorSummary;
use lexembed_pipeline::RunSummary;
use serde::Serialize;

/// The summary of one run.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Summary {
    Batch(RunSummary),
    Stream(OperatorSummary),
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Summary::Batch(s) => batch(f, s),
            Summary::Stream(s) => stream(f, s),
        }
    }
}

fn share(part: f64, whole: f64) -> f64 {
    100.0 * part / whole.max(1e-9)
}

fn batch(f: &mut fmt::Formatter<'_>, s: &RunSummary) -> fmt::Result {
    writeln!(f, "pipeline {} → {}", s.pipeline, s.dataset)?;
    writeln!(
        f,
        "  files            {} ({} already committed, skipped)",
        s.files, s.files_already_committed
    )?;
    writeln!(f, "  rows read        {}", s.rows_read)?;
    writeln!(f, "  rows embedded    {}", s.rows_embedded)?;
    let skipped: usize = s.skipped.values().sum();
    writeln!(f, "  rows skipped     {skipped}")?;
    for (why, n) in &s.skipped {
        writeln!(f, "    {n:>8}  {why}")?;
    }
    writeln!(f, "  rows written     {}", s.rows_written)?;
    match s.version {
        Some(v) => writeln!(
            f,
            "  lance version    {v} ({} rows in the dataset)",
            s.rows_in_dataset
        )?,
        None => writeln!(f, "  lance version    unchanged (nothing to write)")?,
    }
    if !s.indexes.is_empty() {
        writeln!(f, "  indexes          {}", s.indexes.join(", "))?;
    }
    let rate = s.rows_embedded as f64 / s.seconds.max(1e-9);
    write!(
        f,
        "  time             {:.1}s ({rate:.0} rows/s, {:.0}% in the encoder)",
        s.seconds,
        share(s.encoder_seconds, s.seconds)
    )
}

fn stream(f: &mut fmt::Formatter<'_>, s: &OperatorSummary) -> fmt::Result {
    writeln!(f, "pipeline {} (kafka) → {}", s.pipeline, s.dataset)?;
    writeln!(f, "  messages consumed  {}", s.consumed)?;
    writeln!(
        f,
        "  rows written       {} in {} commits",
        s.written, s.commits
    )?;
    writeln!(f, "  dead-lettered      {}", s.dead_lettered)?;
    writeln!(f, "  skipped            {}", s.skipped)?;
    writeln!(f, "  dropped (owned elsewhere) {}", s.dropped_not_owned)?;
    write!(
        f,
        "  time               {:.1}s ({:.0}% in the encoder)",
        s.seconds,
        share(s.encoder_seconds, s.seconds)
    )
}
