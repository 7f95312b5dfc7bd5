//! `lexembed run FILE.yaml`: runs a pipeline and prints its summary. File and SQL sources run to
//! completion (one commit); Kafka sources run as a consumer-group member until SIGTERM (or
//! `--exit-when-idle`). The dispatch on the source is `lexembed_runner`'s; this module parses the
//! arguments and owns the process: the I/O runtime, signals and the metrics recorder.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Args;
use lexembed_pipeline::{LoadedSpec, Shard};
use lexembed_runner::RunnerOptions;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Pipeline spec (YAML).
    pub file: PathBuf,
    /// Skip source files an earlier run of this pipeline committed (needs sink mode append).
    #[arg(long)]
    pub resume: bool,
    /// File and SQL sources: run only shard INDEX of COUNT (files by a stable hash of their path, SQL
    /// rows by a stable hash of their id), appending to the one dataset; COUNT runs with INDEX 0 …
    /// COUNT-1 together write every row once (a Kubernetes Indexed Job: `--shard
    /// $(JOB_COMPLETION_INDEX)/COUNT`). Shards build no index: run `lexembed index` after the last.
    #[arg(long, value_name = "INDEX/COUNT", env = "LEXEMBED_SHARD")]
    pub shard: Option<Shard>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Kafka sources: serve /metrics, /healthz and /readyz on this address ("" to turn off).
    #[arg(long, env = "LEXEMBED_HTTP_ADDR", default_value = "0.0.0.0:9464")]
    pub http_addr: String,
    /// Kafka sources: stop (commit the batch in hand, leave the group, exit 0) after this many seconds
    /// without messages, once the broker confirms every partition is read to its end (a broker that
    /// is down or frozen is not an idle topic); for backfills from a topic. Default: run until
    /// SIGTERM.
    #[arg(long, value_name = "SECONDS")]
    pub exit_when_idle: Option<f64>,
    /// Write the run's metrics here when it ends, failed or not (Prometheus text, for
    /// node_exporter's textfile collector): rows, bad records by kind, encoder time, the job's
    /// outcome. Kafka sources serve them on --http-addr as well.
    #[arg(long, value_name = "FILE", env = "LEXEMBED_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// The runtime the libraries' Lance, object-store and DataFusion I/O runs on.
fn io_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let spec = LoadedSpec::load(&args.file)?;
    // Every series names the source kind, so one dashboard reads file, SQL and Kafka runs alike
    // (the names are shared: lexembed_rows_written_total, lexembed_encoder_seconds, …).
    let mut labels = vec![("source", spec.spec.source.input.kind().name().to_string())];
    if let Some(s) = args.shard {
        labels.push(("shard", format!("{}/{}", s.index, s.count)));
    }
    super::metrics::install(&labels)?;
    let job = super::metrics::JobRun::start("run", &spec.spec.name, args.metrics_file.as_deref());
    let result = run_spec(&spec, &args);
    job.finish(&result)?;
    result
}

fn run_spec(spec: &LoadedSpec, args: &RunArgs) -> anyhow::Result<()> {
    let mut opts = RunnerOptions {
        resume: args.resume.then_some(true),
        shard: args.shard,
        progress: std::io::stderr().is_terminal(),
        http_addr: (!args.http_addr.is_empty()).then(|| args.http_addr.clone()),
        exit_when_idle: args.exit_when_idle.map(std::time::Duration::from_secs_f64),
        stop: None,
        render_metrics: Some(super::metrics::renderer()),
    };
    if lexembed_runner::runs_until_stopped(spec) {
        // SIGTERM (Kubernetes) and SIGINT stop a streaming run: it commits the batch in hand and
        // leaves the group. A run to completion keeps them fatal (it commits once, at its end).
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        opts.stop = Some(stop);
    }
    let io = io_runtime()?;
    let summary = lexembed_runner::run(spec, &opts, io.handle())?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(())
}
