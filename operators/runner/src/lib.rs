//! Runs a pipeline spec, whatever its source: the one place that dispatches on the source kind.
//! File and SQL sources go through the pipeline runner (documents → encoder stage → one Lance
//! commit); a Kafka source runs the consumer-group operator until stopped. The `lexembed` binary
//! parses arguments, owns the process (runtime, signals, metrics recorder) and calls `run`.
//!
//! `summary` owns what a run reports, for people (`Display`) and machines (`Serialize`).

mod summary;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use lexembed_kafka::{OperatorOptions, RenderMetrics};
use lexembed_pipeline::spec::SourceInput;
use lexembed_pipeline::{LoadedSpec, RunOptions, Shard, run_pipeline, run_pipeline_from};
use tokio::runtime::Handle;

pub use summary::Summary;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Pipeline(#[from] lexembed_pipeline::PipelineError),
    #[error(transparent)]
    Sql(#[from] lexembed_sql::SqlError),
    /// Boxed: the Kafka error is large, and results travel through every call.
    #[error(transparent)]
    Kafka(#[from] Box<lexembed_kafka::KafkaError>),
    #[error(
        "--shard is for file and SQL sources: a Kafka source scales out by its consumer group (run more replicas)"
    )]
    ShardOfStream,
}

/// How to run, besides the spec.
#[derive(Clone, Default)]
pub struct RunnerOptions {
    /// Skip sources an earlier commit of this pipeline holds (`None`: the spec's `sink.resume`).
    pub resume: Option<bool>,
    /// Run one shard of a file or SQL source.
    pub shard: Option<Shard>,
    /// Show a progress bar (a terminal).
    pub progress: bool,
    /// Kafka: serve /metrics, /healthz, /readyz here.
    pub http_addr: Option<String>,
    /// Kafka: stop after this long without messages.
    pub exit_when_idle: Option<Duration>,
    /// Set to stop a streaming run (the binary's signal handlers set it).
    pub stop: Option<Arc<AtomicBool>>,
    /// Kafka: `/metrics`' body.
    pub render_metrics: Option<RenderMetrics>,
}

/// Whether the spec's source runs until stopped (a Kafka consumer) rather than to its end: the
/// binary then turns SIGTERM/SIGINT into a stop request instead of leaving them fatal.
pub fn runs_until_stopped(loaded: &LoadedSpec) -> bool {
    matches!(loaded.spec.source.input, SourceInput::Kafka(_))
}

/// Runs `loaded` to its end (file, SQL) or until `opts.stop` (Kafka). Lance, object-store and
/// DataFusion I/O runs on `io`, the caller's runtime; this thread blocks on it.
pub fn run(loaded: &LoadedSpec, opts: &RunnerOptions, io: &Handle) -> Result<Summary, RunError> {
    let batch = RunOptions {
        progress: opts.progress,
        resume: opts.resume,
        shard: opts.shard,
    };
    Ok(match &loaded.spec.source.input {
        SourceInput::File { .. } => Summary::Batch(run_pipeline(loaded, &batch, io)?),
        SourceInput::Sql(sql) => {
            let docs = lexembed_sql::query_documents(loaded, sql, opts.shard, io)?;
            Summary::Batch(run_pipeline_from(loaded, &batch, Some(docs), io)?)
        }
        SourceInput::Kafka(kafka) => {
            if opts.shard.is_some() {
                return Err(RunError::ShardOfStream);
            }
            let stream = OperatorOptions {
                http_addr: opts.http_addr.clone(),
                exit_when_idle: opts.exit_when_idle,
                stop: opts.stop.clone(),
                render_metrics: opts.render_metrics.clone(),
            };
            Summary::Stream(
                lexembed_kafka::run_operator(loaded, kafka, &stream, io).map_err(Box::new)?,
            )
        }
    })
}
