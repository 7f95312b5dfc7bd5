//! `lexembed eval`: IR evaluation of a pipeline's dataset over held-out QA pairs, once or on a cron
//! schedule, with history, alerts and `lexembed eval report`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Subcommand};
use lexembed_eval::alerts::{AlertRules, check, previous_run};
use lexembed_eval::history::{self, RunInfo};
use lexembed_eval::report::{card_table, render};
use lexembed_eval::schedule::Schedule;
use lexembed_eval::{EvalResult, MetricConfig, evaluate, qa};
use lexembed_lance::DatasetLocation;

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
    /// Metric watched for drops (repeatable; default cosine_ndcg@10).
    #[arg(long = "watch")]
    pub watched: Vec<String>,
    /// Floor, as metric=value (e.g. cosine_ndcg@10=0.6), at every dim (repeatable).
    #[arg(long = "min", value_parser = parse_floor)]
    pub min: Vec<(String, f64)>,
    /// Write each query's ranking (top 100 corpus ids per dim) to this JSONL file.
    #[arg(long)]
    pub rankings: Option<PathBuf>,
    /// Run on a cron schedule (UTC), e.g. "0 3 * * *", instead of once.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Run once now even if the pipeline spec sets a schedule.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

fn parse_floor(s: &str) -> Result<(String, f64), String> {
    let (m, v) = s.split_once('=').ok_or("expected metric=value")?;
    Ok((m.to_string(), v.parse().map_err(|e| format!("{v}: {e}"))?))
}

pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    if let Some(EvalSub::Report { history, out }) = cmd.report {
        return report(&history, &out);
    }
    let mut args = cmd.run;
    if let Some(file) = args.pipeline.clone() {
        from_pipeline(&mut args, &file)?;
    }
    anyhow::ensure!(
        args.dataset.is_some() && args.qa.is_some(),
        "lexembed eval needs --dataset and --qa (or the report subcommand); see --help"
    );
    match (&args.schedule, args.once) {
        (Some(expr), false) => scheduled(&args, expr),
        _ => once(&args),
    }
}

/// Fills what the flags left out from the pipeline spec's sink, encoder and `eval:` block.
fn from_pipeline(args: &mut EvalArgs, file: &std::path::Path) -> anyhow::Result<()> {
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
    if args.schedule.is_none() {
        args.schedule = ev.schedule.clone();
    }
    if args.dims.is_empty() {
        args.dims = ev.dims.clone();
    }
    args.max_drop = args.max_drop.or(ev.max_drop);
    if args.watched.is_empty() {
        args.watched = ev.watch.clone();
    }
    if args.min.is_empty() {
        args.min = ev.min.iter().map(|(k, v)| (k.clone(), *v)).collect();
    }
    if args.encoder.model.is_none() {
        args.encoder.model = spec
            .encoder
            .model
            .as_deref()
            .map(|m| PathBuf::from(loaded.resolve(m)));
    }
    Ok(())
}

fn scheduled(args: &EvalArgs, expr: &str) -> anyhow::Result<()> {
    let schedule = Schedule::parse(expr)?;
    loop {
        let now = unix_now_secs();
        let next = schedule
            .next_after(now)
            .context("the schedule never fires")?;
        tracing::info!(
            next_in_s = next - now,
            "waiting for the next scheduled evaluation"
        );
        std::thread::sleep(std::time::Duration::from_secs((next - now).max(0) as u64));
        if let Err(e) = once(args) {
            // A scheduled runner keeps going; the failure is logged (and visible in the history).
            tracing::error!("evaluation failed: {e:#}");
        }
    }
}

fn unix_now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn once(args: &EvalArgs) -> anyhow::Result<()> {
    let started_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (dataset, qa_path) = match (&args.dataset, &args.qa) {
        (Some(d), Some(q)) => (d.clone(), q.clone()),
        _ => anyhow::bail!("--dataset and --qa are required"),
    };
    let location = DatasetLocation::new(&dataset);
    let loaded = rt.block_on(lexembed_eval::corpus::load(&location))?;
    let enc = args.encoder.open(&[])?;
    if let Some(m) = &loaded.model_id {
        anyhow::ensure!(
            m == &enc.model().model_id,
            "dataset {} was embedded with model {m}, but --model is {}: queries must use the dataset's model",
            dataset,
            enc.model().model_id
        );
    }
    let pairs = qa::load(&qa_path)?;
    let texts: Vec<&str> = pairs.iter().map(|p| p.query.as_str()).collect();
    let emb = enc.encode(&texts)?;
    let width = loaded.corpus.width;
    anyhow::ensure!(
        width <= emb.dim,
        "the dataset's vectors ({width}) are wider than the model's ({})",
        emb.dim
    );
    let queries: Vec<f32> = emb
        .values
        .chunks_exact(emb.dim)
        .flat_map(|r| r[..width].iter().copied())
        .collect();
    let dims = if args.dims.is_empty() {
        loaded.dims.clone()
    } else {
        args.dims.clone()
    };
    let result = evaluate(
        &loaded.corpus,
        &queries,
        &pairs,
        &dims,
        &MetricConfig::default(),
    )?;
    if result.unknown_relevant_ids > 0 {
        tracing::warn!(
            count = result.unknown_relevant_ids,
            "relevant ids of the QA set are not in the corpus (they count as misses)"
        );
    }
    let info = RunInfo {
        run_time_us: started_us,
        model_id: enc.model().model_id.clone(),
        dataset_uri: dataset.clone(),
        dataset_version: loaded.version,
        qa_digest: qa::digest(&pairs),
    };
    let mut alerts = Vec::new();
    if let Some(h) = &args.history {
        let hloc = DatasetLocation::new(h);
        let past = rt.block_on(history::read(&hloc))?;
        let prev = previous_run(&past, &info.dataset_uri, &info.model_id, &info.qa_digest);
        let rules = AlertRules {
            max_drop: args.max_drop,
            watched: args.watched.clone(),
            min: args.min.clone(),
        };
        alerts = check(&result, prev.as_ref(), &rules);
        rt.block_on(history::append(&hloc, &history::rows(&info, &result)))?;
    } else if !args.min.is_empty() {
        let rules = AlertRules {
            max_drop: None,
            watched: vec![],
            min: args.min.clone(),
        };
        alerts = check(&result, None, &rules);
    }
    if let Some(path) = &args.rankings {
        write_rankings(path, &result, &loaded.corpus.ids)?;
    }
    print_result(args, &info, &result)?;
    for a in &alerts {
        tracing::error!(dim = a.dim, metric = %a.metric, value = a.value, reference = a.reference, kind = a.kind, "retrieval alert");
        eprintln!("ALERT: {a}");
    }
    anyhow::ensure!(alerts.is_empty(), "{} metric alert(s)", alerts.len());
    Ok(())
}

fn write_rankings(path: &PathBuf, r: &EvalResult, corpus_ids: &[String]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for (dim, queries) in &r.rankings {
        for (qid, ranked) in r.query_ids.iter().zip(queries) {
            let ids: Vec<&str> = ranked
                .iter()
                .map(|&c| corpus_ids[c as usize].as_str())
                .collect();
            serde_json::to_writer(
                &mut f,
                &serde_json::json!({"query_id": qid, "dim": dim, "ids": ids}),
            )?;
            f.write_all(b"\n")?;
        }
    }
    Ok(())
}

fn print_result(args: &EvalArgs, info: &RunInfo, r: &EvalResult) -> anyhow::Result<()> {
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
        if let Some((d, m)) = k.strip_prefix("dim_").and_then(|s| s.split_once('_')) {
            by_dim
                .entry(d.parse()?)
                .or_default()
                .insert(m.to_string(), *v);
        }
    }
    println!(
        "{} queries ({} without relevant docs dropped, {} relevant ids not in the corpus) over {} documents, model {}",
        r.queries_evaluated,
        r.queries_without_relevant,
        r.unknown_relevant_ids,
        r.corpus_size,
        info.model_id
    );
    print!("{}", card_table(&by_dim));
    Ok(())
}

fn report(history_uri: &str, out: &PathBuf) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rows = rt.block_on(history::read(&DatasetLocation::new(history_uri)))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, content) in render(&rows) {
        std::fs::write(out.join(&name), content).with_context(|| format!("writing {name}"))?;
    }
    println!(
        "report of {} history rows written to {}/report.md and report.html",
        rows.len(),
        out.display()
    );
    Ok(())
}
