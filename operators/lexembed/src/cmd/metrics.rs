//! The process's metrics: the Prometheus exporter installed as the `metrics` recorder (the operator
//! crates record through the facade), its rendering for the Kafka operator's `/metrics`, and the
//! textfile a batch job (file or SQL run, eval) writes when it ends: Prometheus text, as
//! node_exporter's textfile collector reads it, with the job's outcome.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use metrics::{describe_gauge, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the exporter as the recorder (once per process). `global_labels` go on every series
/// (a sharded backfill's `shard`, so that its shards' files do not collide).
pub fn install(global_labels: &[(&str, String)]) -> anyhow::Result<()> {
    let mut builder = PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Full("lexembed_batch_seconds".into()),
        &lexembed_kafka::BATCH_SECONDS_BUCKETS,
    )?;
    builder = builder.set_buckets_for_metric(
        Matcher::Full("lexembed_encoder_seconds".into()),
        &ENCODER_SECONDS_BUCKETS,
    )?;
    builder = builder.set_buckets_for_metric(
        Matcher::Full("lexembed_serve_request_seconds".into()),
        &REQUEST_SECONDS_BUCKETS,
    )?;
    for (key, value) in global_labels {
        builder = builder.add_global_label(*key, value.clone());
    }
    let handle = builder
        .install_recorder()
        .context("installing the metrics recorder")?;
    let _ = HANDLE.set(handle);
    metrics::describe_counter!(
        crate::logging::STORE_RETRIES,
        "Object-store requests retried after a transport error or a 5xx (object_store's retry)."
    );
    describe_gauge!(
        "lexembed_job_success",
        "1 when the job's last run succeeded, 0 when it failed."
    );
    describe_gauge!(
        "lexembed_job_last_run_timestamp_seconds",
        "When the job's last run ended (Unix seconds)."
    );
    describe_gauge!(
        "lexembed_job_duration_seconds",
        "How long the job's last run took."
    );
    Ok(())
}

/// Buckets of `lexembed_encoder_seconds` (one observation per batch, or per run for file jobs).
const ENCODER_SECONDS_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];

/// Buckets of `lexembed_serve_request_seconds` (one observation per HTTP request).
const REQUEST_SECONDS_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Everything recorded so far, as Prometheus text (empty before `install`).
pub fn render() -> String {
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}

/// What `/metrics` serves.
pub fn renderer() -> lexembed_kafka::RenderMetrics {
    std::sync::Arc::new(render)
}

/// A batch job's run: records its outcome and writes the textfile when asked for one.
pub struct JobRun<'a> {
    job: &'static str,
    pipeline: String,
    file: Option<&'a Path>,
    started: Instant,
}

impl<'a> JobRun<'a> {
    pub fn start(job: &'static str, pipeline: &str, file: Option<&'a Path>) -> Self {
        Self {
            job,
            pipeline: pipeline.to_string(),
            file,
            started: Instant::now(),
        }
    }

    /// Records how the run ended and rewrites the textfile (atomically: a collector never reads
    /// half a file). A failure to write it is an error of its own, after the job's.
    pub fn finish<T>(&self, result: &anyhow::Result<T>) -> anyhow::Result<()> {
        let labels = [
            ("job", self.job.to_string()),
            ("pipeline", self.pipeline.clone()),
        ];
        gauge!("lexembed_job_success", &labels).set(f64::from(u8::from(result.is_ok())));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        gauge!("lexembed_job_last_run_timestamp_seconds", &labels).set(now);
        gauge!("lexembed_job_duration_seconds", &labels).set(self.started.elapsed().as_secs_f64());
        match self.file {
            Some(path) => write_textfile(path),
            None => Ok(()),
        }
    }
}

fn write_textfile(path: &Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, render())
        .with_context(|| format!("writing metrics to {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing metrics to {}", path.display()))
}
