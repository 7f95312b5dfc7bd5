//! `lexembed eval`: IR evaluation of a pipeline's dataset over held-out QA pairs, once or on a cron
//! schedule, with history, alerts and `lexembed eval report`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::{Args, Subcommand};
use lexembed_eval::alerts::AlertRules;
use lexembed_eval::history::{self, RunInfo};
use lexembed_eval::report::{ReferenceCard, card_table, render_with};
use lexembed_eval::{EvalJob, EvalResult, EvalRun, Measure, SearchMode};
use lexembed_eval::{Metric, UnknownMetric};
use lexembed_lance::DatasetLocation;
use lexembed_pipeline::schedule::Schedule;

use lexembed_encoder::cli::EncoderArgs;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalCommand {
    #[command(subcommand)]
    pub report: Option<EvalSub>,
    #[command(flatten)]
    pub run: EvalArgs,
}

#[derive(Subcommand, Debug)]
pub enum EvalSub {
    /// Write a Markdown/HTML report with SVG charts from the evaluation history.
    Report {
        /// Lance table of evaluation history (written by `lexembed eval --history`).
        #[arg(long)]
        history: String,
        /// Output directory.
        #[arg(long, default_value = "eval-report")]
        out: PathBuf,
        /// Another evaluation's numbers to draw beside the latest run (dashed) and table against it,
        /// e.g. the model card's: {"name": "model card", "dims": {"1024": {"ndcg@10": 0.7276}}}.
        #[arg(long)]
        reference: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Take dataset, model, QA set, history, schedule and alert rules from a pipeline spec's `eval:`
    /// block (flags given here override it).
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Corpus: a Lance dataset written by a pipeline (its stored vectors are used). Required.
    #[arg(long)]
    pub dataset: Option<String>,
    /// QA pairs: JSONL ({query_id, query, relevant_ids}), Parquet or a .lance table. Required.
    #[arg(long)]
    pub qa: Option<PathBuf>,
    /// Dims to evaluate (default: every emb_<dim> column of the dataset).
    #[arg(long = "dim")]
    pub dims: Vec<u32>,
    /// Print JSON (the metrics keyed dim_<d>_cosine_<metric>@<k>) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Append the results to this Lance table (history for trends and drop alerts).
    #[arg(long)]
    pub history: Option<String>,
    /// Fail when a watched metric falls more than this against the previous comparable run.
    #[arg(long)]
    pub max_drop: Option<f64>,
    /// Metric watched for drops (repeatable; default cosine_ndcg@10). Names are the evaluator's:
    /// cosine_{accuracy,precision,recall}@{1,3,5,10}, cosine_mrr@10, cosine_ndcg@10, cosine_map@100.
    #[arg(long = "watch", value_parser = parse_metric)]
    pub watched: Vec<Metric>,
    /// Floor, as metric=value (e.g. cosine_ndcg@10=0.6), at every dim (repeatable).
    #[arg(long = "min", value_parser = parse_floor)]
    pub min: Vec<(Metric, f64)>,
    /// Write each query's ranking (top 100 corpus ids per dim) to this JSONL file.
    #[arg(long)]
    pub rankings: Option<PathBuf>,
    /// How queries are ranked: exact (every stored vector scored, as sentence-transformers'
    /// evaluator), or the path users search by: index (the vector index, as `lexembed search`; adds
    /// index_knn_recall@10, its overlap with exact search), fts (BM25 on the full-text index) or
    /// hybrid (their reciprocal-rank fusion). Metrics are named by the path (index_ndcg@10), history
    /// keeps each path apart, and --min/--watch names without a path mean the run's path.
    #[arg(long, default_value = "exact", value_parser = check_search)]
    pub search: String,
    /// Run on a cron schedule (five fields, crontab(5) semantics), e.g. "0 3 * * *", instead of once.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Time zone whose wall clock the schedule follows (IANA name, e.g. Europe/Madrid); default UTC.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Run once now even if the pipeline spec sets a schedule.
    #[arg(long)]
    pub once: bool,
    /// Write the metrics here after every run, failed or not (Prometheus text, for node_exporter's
    /// textfile collector): lexembed_eval_metric{dim, metric} and the job's outcome.
    #[arg(long, value_name = "FILE", env = "LEXEMBED_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    s.parse().map_err(|e: UnknownMetric| e.to_string())
}

fn parse_floor(s: &str) -> Result<(Metric, f64), String> {
    let (m, v) = s.split_once('=').ok_or("expected metric=value")?;
    Ok((
        parse_metric(m)?,
        v.parse().map_err(|e| format!("{v}: {e}"))?,
    ))
}

pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    if let Some(EvalSub::Report {
        history,
        out,
        reference,
    }) = cmd.report
    {
        return report(&history, &out, reference.as_deref());
    }
    let mut args = cmd.run;
    // The job's outcome is labelled by pipeline when the evaluation comes from a spec.
    let name = match args.pipeline.clone() {
        Some(file) => from_pipeline(&mut args, &file)?,
        None => String::new(),
    };
    let job = eval_job(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let encoder = args.encoder.open(&[])?;
    super::metrics::install(&[])?;
    let once = || -> anyhow::Result<()> {
        let outcome = super::metrics::JobRun::start("eval", &name, args.metrics_file.as_deref());
        let result = rt.block_on(job.run(&encoder)).map_err(anyhow::Error::from);
        let result = result.and_then(|run| {
            print_result(&args, &run)?;
            report_alerts(&run)
        });
        outcome.finish(&result)?;
        result
    };
    match (&args.schedule, args.once) {
        (Some(expr), false) => {
            let schedule =
                Schedule::parse_in(expr, args.tz.as_deref()).map_err(anyhow::Error::msg)?;
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(sig, stop.clone())?;
            }
            schedule.run(&stop, || once().map_err(|e| format!("{e:#}")));
            Ok(())
        }
        _ => once(),
    }
}

/// The job the flags (filled from the pipeline spec) describe.
/// A run whose metrics fired alerts: the process exits with `ALERT_EXIT_CODE`, not 1, so a scheduler
/// tells a quality alert from an error (the chart's podFailurePolicy does).
#[derive(Debug)]
pub struct AlertsFired(pub usize);

impl std::fmt::Display for AlertsFired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} metric alert(s)", self.0)
    }
}

impl std::error::Error for AlertsFired {}

/// The exit code of an evaluation that fired alerts.
pub const ALERT_EXIT_CODE: u8 = 3;

/// `--search` checked by clap; parsed (with the deprecation warning of an old spelling) by
/// `search_mode` once logging is set up: clap parses before it, and the warning would be lost.
fn check_search(s: &str) -> Result<String, String> {
    match SearchMode::is_spelling(s) {
        true => Ok(s.to_string()),
        false => Err(lexembed_lance::UnknownSearchMode(s.to_string()).to_string()),
    }
}

impl EvalArgs {
    fn search_mode(&self) -> anyhow::Result<SearchMode> {
        Ok(SearchMode::parse(&self.search)?)
    }
}

fn eval_job(args: &EvalArgs) -> anyhow::Result<EvalJob> {
    let (Some(dataset), Some(qa)) = (&args.dataset, &args.qa) else {
        anyhow::bail!(
            "lexembed eval needs --dataset and --qa (or the report subcommand); see --help"
        );
    };
    Ok(EvalJob {
        dataset: DatasetLocation::new(dataset),
        qa: qa.clone(),
        dims: args.dims.clone(),
        history: args.history.as_deref().map(DatasetLocation::new),
        rules: AlertRules {
            max_drop: args.max_drop,
            watched: args.watched.clone(),
            min: args.min.clone(),
        },
        rankings: args.rankings.clone(),
        search: args.search_mode()?,
    })
}

/// Alerts are logged, printed and make the run fail (a CronJob shows it).
fn report_alerts(run: &EvalRun) -> anyhow::Result<()> {
    for a in &run.alerts {
        tracing::error!(dim = a.dim, metric = %a.metric, value = a.value, reference = a.reference, kind = a.kind.name(), "retrieval alert");
        eprintln!("ALERT: {a}");
    }
    if !run.alerts.is_empty() {
        return Err(AlertsFired(run.alerts.len()).into());
    }
    Ok(())
}

/// Fills what the flags left out from the pipeline spec's sink, encoder and `eval:` block; returns the
/// pipeline's name.
fn from_pipeline(args: &mut EvalArgs, file: &std::path::Path) -> anyhow::Result<String> {
    let loaded = lexembed_pipeline::LoadedSpec::load(file)?;
    let spec = &loaded.spec;
    let ev = spec
        .eval
        .as_ref()
        .with_context(|| format!("{}: no eval: block", file.display()))?;
    args.dataset
        .get_or_insert_with(|| loaded.resolve(&spec.sink.uri));
    args.qa
        .get_or_insert_with(|| PathBuf::from(loaded.resolve(&ev.qa)));
    if args.history.is_none() {
        args.history = ev.history.as_deref().map(|h| loaded.resolve(h));
    }
    if args.schedule.is_none()
        && let Some(schedule) = &ev.schedule
    {
        args.schedule = Some(schedule.cron().to_string());
        args.tz = args.tz.take().or(schedule.tz().map(str::to_string));
    }
    if args.dims.is_empty() {
        args.dims = ev.dims.clone();
    }
    args.max_drop = args.max_drop.or(ev.max_drop);
    let named = |field: &str, m: &str| {
        m.parse::<Metric>()
            .with_context(|| format!("{}: eval.{field}", file.display()))
    };
    if args.watched.is_empty() {
        args.watched = ev
            .watch
            .iter()
            .map(|m| named("watch", m))
            .collect::<anyhow::Result<_>>()?;
    }
    if args.min.is_empty() {
        args.min = ev
            .min
            .iter()
            .map(|(m, v)| Ok((named("min", m)?, *v)))
            .collect::<anyhow::Result<_>>()?;
    }
    if args.encoder.model.is_none() {
        args.encoder.model = spec
            .encoder
            .model
            .as_deref()
            .map(|m| PathBuf::from(loaded.resolve(m)));
    }
    Ok(spec.name.clone())
}

fn print_result(args: &EvalArgs, run: &EvalRun) -> anyhow::Result<()> {
    let (info, r): (&RunInfo, &EvalResult) = (&run.info, &run.result);
    if args.json {
        let out = serde_json::json!({
            "model_id": info.model_id, "dataset": info.dataset_uri, "dataset_version": info.dataset_version,
            "qa_digest": info.qa_digest, "queries": r.queries_evaluated, "queries_without_relevant": r.queries_without_relevant,
            "unknown_relevant_ids": r.unknown_relevant_ids, "corpus_size": r.corpus_size, "metrics": r.metrics,
        });
        println!("{out}");
        return Ok(());
    }
    let mut by_dim: BTreeMap<u32, BTreeMap<String, f64>> = BTreeMap::new();
    for (k, v) in &r.metrics {
        // The card's columns, whatever the path (named in the header line).
        by_dim
            .entry(k.dim)
            .or_default()
            .insert(k.metric.at(SearchMode::Exact).to_string(), *v);
    }
    println!(
        "{} queries ({} without relevant docs dropped, {} relevant ids not in the corpus) over {} documents, model {}",
        r.queries_evaluated,
        r.queries_without_relevant,
        r.unknown_relevant_ids,
        r.corpus_size,
        info.model_id
    );
    println!("search path: {}", args.search_mode()?.name());
    print!("{}", card_table(&by_dim));
    for (k, v) in &r.metrics {
        if k.metric.measure == Measure::KnnRecall {
            println!("dim {}: {} {v:.4}", k.dim, k.metric);
        }
    }
    Ok(())
}

fn report(
    history_uri: &str,
    out: &PathBuf,
    reference: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let card = match reference {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--reference {}", path.display()))?;
            let card = ReferenceCard::from_json(&text)
                .map_err(|e| anyhow::anyhow!("--reference {}: {e}", path.display()))?;
            Some(card)
        }
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rows = rt.block_on(history::read(&DatasetLocation::new(history_uri)))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, content) in render_with(&rows, card.as_ref()) {
        std::fs::write(out.join(&name), content).with_context(|| format!("writing {name}"))?;
    }
    println!(
        "report of {} history rows written to {}/report.md and report.html",
        rows.len(),
        out.display()
    );
    Ok(())
}
