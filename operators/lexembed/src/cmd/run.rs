//! `lexembed run FILE.yaml`: runs a pipeline and prints its summary. File and SQL sources run to
//! completion (one commit); Kafka sources run as a consumer-group member until SIGTERM (or `--exit-when-idle`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Args;
use lexembed_pipeline::spec::SourceKind;
use lexembed_pipeline::{LoadedSpec, RunOptions, Shard, run_pipeline, run_pipeline_from};

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
    /// without messages; for backfills from a topic. Default: run until SIGTERM.
    #[arg(long, value_name = "SECONDS")]
    pub exit_when_idle: Option<f64>,
    /// Write the run's metrics here when it ends, failed or not (Prometheus text, for
    /// node_exporter's textfile collector): rows, bad records by kind, encoder time, the job's
    /// outcome. Kafka sources serve them on --http-addr as well.
    #[arg(long, value_name = "FILE", env = "LEXEMBED_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
}

fn run_kafka(spec: &LoadedSpec, args: &RunArgs) -> anyhow::Result<()> {
    // SIGTERM (Kubernetes) and SIGINT stop the operator: it commits the batch in hand and leaves the group.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let opts = lexembed_kafka::OperatorOptions {
        http_addr: (!args.http_addr.is_empty()).then(|| args.http_addr.clone()),
        exit_when_idle: args.exit_when_idle.map(std::time::Duration::from_secs_f64),
        stop: Some(stop),
        render_metrics: Some(super::metrics::renderer()),
    };
    let io = io_runtime()?;
    let s = lexembed_kafka::run_operator(spec, &opts, io.handle())?;
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    println!("pipeline {} (kafka) → {}", s.pipeline, s.dataset);
    println!("  messages consumed  {}", s.consumed);
    println!(
        "  rows written       {} in {} commits",
        s.written, s.commits
    );
    println!("  dead-lettered      {}", s.dead_lettered);
    println!("  skipped            {}", s.skipped);
    println!("  dropped (owned elsewhere) {}", s.dropped_not_owned);
    println!(
        "  time               {:.1}s ({:.0}% in the encoder)",
        s.seconds,
        100.0 * s.encoder_seconds / s.seconds.max(1e-9)
    );
    Ok(())
}

/// The runtime the libraries' Lance, object-store and DataFusion I/O runs on.
fn io_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let spec = LoadedSpec::load(&args.file)?;
    let shard = args
        .shard
        .map(|s| ("shard", format!("{}/{}", s.index, s.count)));
    super::metrics::install(shard.as_slice())?;
    let job = super::metrics::JobRun::start("run", &spec.spec.name, args.metrics_file.as_deref());
    let result = run_spec(&spec, &args);
    job.finish(&result)?;
    result
}

fn run_spec(spec: &LoadedSpec, args: &RunArgs) -> anyhow::Result<()> {
    if spec.spec.source.kind == SourceKind::Kafka {
        anyhow::ensure!(
            args.shard.is_none(),
            "--shard is for file and SQL sources: a Kafka source scales out by its consumer group (run more replicas)"
        );
        return run_kafka(spec, args);
    }
    let opts = RunOptions {
        progress: std::io::stderr().is_terminal(),
        resume: args.resume.then_some(true),
        shard: args.shard,
    };
    let io = io_runtime()?;
    let s = match spec.spec.source.kind {
        SourceKind::Sql => {
            let docs = lexembed_sql::query_documents(spec, args.shard, io.handle())?;
            run_pipeline_from(spec, &opts, Some(docs), io.handle())?
        }
        _ => run_pipeline(spec, &opts, io.handle())?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    println!("pipeline {} → {}", s.pipeline, s.dataset);
    println!(
        "  files            {} ({} already committed, skipped)",
        s.files, s.files_already_committed
    );
    println!("  rows read        {}", s.rows_read);
    println!("  rows embedded    {}", s.rows_embedded);
    let skipped: usize = s.skipped.values().sum();
    println!("  rows skipped     {skipped}");
    for (why, n) in &s.skipped {
        println!("    {n:>8}  {why}");
    }
    println!("  rows written     {}", s.rows_written);
    match s.version {
        Some(v) => println!(
            "  lance version    {v} ({} rows in the dataset)",
            s.rows_in_dataset
        ),
        None => println!("  lance version    unchanged (nothing to write)"),
    }
    if !s.indexes.is_empty() {
        println!("  indexes          {}", s.indexes.join(", "));
    }
    let rate = s.rows_embedded as f64 / s.seconds.max(1e-9);
    println!(
        "  time             {:.1}s ({rate:.0} rows/s, {:.0}% in the encoder)",
        s.seconds,
        100.0 * s.encoder_seconds / s.seconds.max(1e-9)
    );
    Ok(())
}
