//! `lexembed bench writers`: N writers on one Lance dataset, each offered a fixed rate of rows, through
//! the production commit code: the Kafka operator's (batches gathered by its commit policy, data files
//! written first, offsets re-read, fence, the conditional commit on the version the fence read; each
//! writer owns one partition of a topic), and the plain append of `--shard` runs (each writer's rows
//! in one commit, all at the same moment). The rows skip the encoder: vectors are made once and
//! replayed, so this measures the write path, not the model. Each writer is a task with its own
//! dataset handle and object-store client, as a replica would have.
//!
//! Rates and superseded attempts per landed commit are taken after a warm-up quarter of the run (the
//! whole run's superseded share is reported beside it: writers started together collide most at
//! first). A writer that falls behind holds its source back, as a consumer lags a topic; when the
//! offer ends, what its source could not hand over within `OFFER_GRACE` stays behind (reported as
//! `behind`, the consumer lag at the end) instead of being drained for minutes. Every writer then
//! commits what it holds and the dataset is scanned: every row handed to a writer must be there
//! exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow_array::{FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use clap::Args;
use futures::TryStreamExt;
use lexembed_encoder::Dim;
use lexembed_kafka::KafkaError;
use lexembed_kafka::batch::{BatchLimits, ClosedBatch, MicroBatch};
use lexembed_kafka::commit_policy::{CommitPolicy, Gatherer, RetryPace};
use lexembed_kafka::fenced::{BatchWrite, FencedCommit, commit_gathered};
use lexembed_kafka::offsets::{LanceOffsets, Partition};
use lexembed_lance::{CommitRecord, DatasetLocation, KafkaCommit, SinkMode};
use lexembed_pipeline::source::rows::Doc;
use lexembed_pipeline::spec::SourceSpec;
use tokio::sync::mpsc;

use super::percentile;
use super::sql::random_vectors;

const TOPIC: &str = "bench";
const GROUP: &str = "bench-writers";
/// Encoder batches a writer's source may hand over before it waits (the operator's `encoder.ahead`).
const AHEAD: usize = 2;
/// How long after the offer ends a source still waits for its writer to take the next batch.
const OFFER_GRACE: Duration = Duration::from_secs(1);

#[derive(Args, Debug)]
pub struct WritersBenchArgs {
    /// Writer counts, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4, 8, 16])]
    pub writers: Vec<usize>,
    /// Rows a second offered to each writer (2,000: the production model on one GPU).
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Rows per encoder batch handed to a writer.
    #[arg(long, default_value_t = 256)]
    pub batch_rows: usize,
    /// Seconds of offered rows per run; rates count from the end of the first quarter (warm-up).
    /// A writer that falls behind is offered nothing after the window (plus 1 s): what it had not
    /// taken by then is reported as `behind` (the consumer lag), not drained.
    #[arg(long, default_value_t = 40.0)]
    pub seconds: f64,
    /// Vector columns: one 64-dim column by default, so that two cores measure commits, not bandwidth.
    #[arg(long, value_delimiter = ',', default_values_t = [64u32])]
    pub dims: Vec<u32>,
    /// Where the datasets go: `local` (a temporary directory), or `LABEL=URI[@ENDPOINT]` with a
    /// `s3://bucket/prefix` URI (credentials from the AWS_* environment; ENDPOINT overrides
    /// AWS_ENDPOINT, e.g. a latency proxy in front of the same store). Repeat for several.
    #[arg(long = "store", default_values_t = ["local".to_string()])]
    pub stores: Vec<String>,
    /// Commit policies: `gathered` (the Kafka operator's default: batches gathered per adaptive
    /// interval, a lost race retried after a jittered backoff), `gathered-at-once` (the same, lost
    /// races retried at once: the policy before the backoff), `per-batch` (one commit per batch:
    /// lexembed before, the reference), `shards` (each writer's rows in one plain append, all at
    /// once, as `--shard` runs finishing together).
    #[arg(long, value_delimiter = ',', default_values_t = ["gathered".to_string(), "per-batch".to_string()])]
    pub policies: Vec<String>,
    /// The gathered policy's `commit_interval_ms`.
    #[arg(long, default_value_t = 1000)]
    pub commit_interval_ms: u64,
    /// The gathered policy's `commit_interval_max_ms`.
    #[arg(long, default_value_t = 30_000)]
    pub commit_interval_max_ms: u64,
    /// The gathered policy's `commit_rows` (default: the pipeline spec's).
    #[arg(long, default_value_t = lexembed_pipeline::spec::DEFAULT_COMMIT_ROWS)]
    pub commit_rows: usize,
    /// Compact the dataset every this many seconds while the writers commit (0: never).
    #[arg(long, default_value_t = 0.0)]
    pub compact_every: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file (the table still prints).
    #[arg(long)]
    pub json_out: Option<std::path::PathBuf>,
}

/// How the writers of a run commit.
#[derive(Debug, Clone, Copy)]
enum Policy {
    Fenced(CommitPolicy),
    Shards,
}

impl Policy {
    fn parse(name: &str, args: &WritersBenchArgs) -> anyhow::Result<Self> {
        let gathered = CommitPolicy::gathered(
            args.commit_interval_ms,
            args.commit_interval_max_ms,
            args.commit_rows,
        );
        Ok(match name {
            "gathered" => Policy::Fenced(gathered),
            "gathered-at-once" => Policy::Fenced(CommitPolicy {
                retry: RetryPace::AtOnce,
                ..gathered
            }),
            "per-batch" => Policy::Fenced(CommitPolicy::per_batch()),
            "shards" => Policy::Shards,
            other => anyhow::bail!(
                "--policies: unknown policy {other:?} (gathered, gathered-at-once, per-batch or shards)"
            ),
        })
    }

    fn name(&self) -> String {
        match self {
            Policy::Fenced(p) => p.name(),
            Policy::Shards => "shards".into(),
        }
    }
}

/// A store the runs write to: where, and the label the report gives it.
struct Store {
    label: String,
    /// A prefix under which each run makes its own dataset; `None`: a temporary directory.
    prefix: Option<String>,
    endpoint: Option<String>,
}

impl Store {
    fn parse(s: &str) -> anyhow::Result<Self> {
        if s == "local" {
            return Ok(Store {
                label: "local".into(),
                prefix: None,
                endpoint: None,
            });
        }
        let (label, rest) = s.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("--store {s:?}: expected `local` or LABEL=URI[@ENDPOINT]")
        })?;
        let (uri, endpoint) = match rest.split_once('@') {
            Some((u, e)) => (u, Some(e.to_string())),
            None => (rest, None),
        };
        anyhow::ensure!(
            uri.contains("://"),
            "--store {s:?}: {uri:?} is not an object-store URI (s3://bucket/prefix)"
        );
        Ok(Store {
            label: label.into(),
            prefix: Some(uri.trim_end_matches('/').into()),
            endpoint,
        })
    }

    fn location(&self, dir: &std::path::Path, name: &str) -> DatasetLocation {
        let mut loc = match &self.prefix {
            Some(p) => DatasetLocation::new(format!("{p}/{name}.lance")),
            None => DatasetLocation::new(dir.join(format!("{name}.lance")).display().to_string()),
        };
        if let Some(e) = &self.endpoint {
            loc.storage_options.insert("aws_endpoint".into(), e.clone());
            loc.storage_options
                .insert("allow_http".into(), "true".into());
        }
        loc
    }
}

/// What one run offers: rows per writer, in batches, at a rate, with these columns.
struct Offer {
    rate: f64,
    batch_rows: usize,
    batches: usize,
    warmup: Duration,
    window: Duration,
    schema: SchemaRef,
    /// The documents' schema (before the vector columns).
    docs_schema: SchemaRef,
    docs: SourceSpec,
    /// One batch's vector columns, made once and replayed.
    vectors: Vec<FixedSizeListArray>,
}

impl Offer {
    fn new(args: &WritersBenchArgs) -> anyhow::Result<Self> {
        anyhow::ensure!(
            args.rate > 0.0 && args.batch_rows > 0 && args.seconds > 0.0,
            "--rate, --batch-rows and --seconds must be positive"
        );
        let dims: Vec<Dim> = args.dims.iter().map(|&d| Dim(d)).collect();
        let by = lexembed_lance::schema::WrittenBy::new("bench-writers", &dims, Default::default());
        let schema = lexembed_lance::schema::embedded_dataset(&by, &[])?;
        let y = "name: bench\nsource:\n  kind: kafka\n  kafka: {brokers: b, topics: [bench], group_id: g}\nsink: {uri: o, mode: append}\n";
        let docs = lexembed_pipeline::spec::parse(y, std::path::Path::new("bench.yaml"))?.source;
        let vectors = args
            .dims
            .iter()
            .enumerate()
            .map(|(k, &dim)| {
                let values = random_vectors(args.batch_rows, dim as usize, k as u64 + 7);
                FixedSizeListArray::try_new(
                    lexembed_encoder::matryoshka::item_field(),
                    dim as i32,
                    Arc::new(Float32Array::from(values)),
                    None,
                )
            })
            .collect::<Result<_, _>>()?;
        let batches = ((args.rate * args.seconds) / args.batch_rows as f64)
            .round()
            .max(1.0) as usize;
        let window = Duration::from_secs_f64(args.seconds);
        Ok(Self {
            rate: args.rate,
            batch_rows: args.batch_rows,
            batches,
            warmup: window / 4,
            window,
            schema,
            docs_schema: lexembed_lance::schema::documents(&[])?,
            docs,
            vectors,
        })
    }

    fn rows_per_writer(&self) -> usize {
        self.batches * self.batch_rows
    }

    /// Writer `w`'s batch `k`: offsets `k × batch_rows ..` of its partition, embedded.
    fn batch(&self, w: usize, k: usize) -> anyhow::Result<ClosedBatch> {
        let limits = BatchLimits {
            rows: usize::MAX,
            bytes: usize::MAX,
            linger: Duration::from_secs(3600),
        };
        let mut b = MicroBatch::new(self.docs_schema.clone(), &self.docs, limits);
        let p = partition(w);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        for r in 0..self.batch_rows {
            let offset = (k * self.batch_rows + r) as i64;
            let doc = Doc {
                id: format!("w{w}-{offset}"),
                text: format!("Artículo {offset}."),
                metadata: vec![],
            };
            b.push_doc(&p, offset, Some(now_ms), &doc);
        }
        let mut closed = b.close(0)?;
        closed.docs =
            lexembed_pipeline::with_vectors(&self.schema, &closed.docs, self.vectors.clone())?;
        Ok(closed)
    }
}

fn partition(w: usize) -> Partition {
    Partition::new(TOPIC, w as i32)
}

/// One landed commit, as a writer saw it.
struct Landed {
    /// Since the run started.
    at: Duration,
    rows: usize,
    superseded: usize,
    ms: f64,
}

/// What a writer did.
#[derive(Default)]
struct WriterLog {
    commits: Vec<Landed>,
    /// Commits given up after too many superseded attempts in a row (then retried, as a restarted
    /// replica would).
    gave_up: usize,
    interval_at_end: Duration,
    /// Rows its source handed over (the rest stayed behind when the offer ended).
    taken: usize,
}

/// The Kafka operator's writer loop on a replayed source: gather, then prepare, re-fence, commit.
async fn fenced_writer(
    location: DatasetLocation,
    policy: CommitPolicy,
    mut rx: mpsc::Receiver<ClosedBatch>,
    t0: Instant,
) -> anyhow::Result<WriterLog> {
    let mut log = WriterLog::default();
    let mut gathered = Gatherer::new(policy);
    let mut offsets = LanceOffsets::new(location.clone(), GROUP);
    let mut open = true;
    while open || !gathered.is_empty() {
        if open {
            match tokio::time::timeout(gathered.wait(), rx.recv()).await {
                Ok(Some(b)) => gathered.push(b),
                Ok(None) => open = false,
                Err(_) => {}
            }
        }
        if gathered.is_due() || (!open && !gathered.is_empty()) {
            let Some(closed) = ClosedBatch::concat(gathered.take())? else {
                continue;
            };
            let started = Instant::now();
            let (done, rows) =
                commit_one(&location, policy.retry, &mut offsets, closed, &mut log).await?;
            gathered.landed(&done);
            log.commits.push(Landed {
                at: t0.elapsed(),
                rows,
                superseded: done.conflicts,
                ms: started.elapsed().as_secs_f64() * 1e3,
            });
        }
    }
    log.interval_at_end = gathered.interval();
    Ok(log)
}

/// One gather through the operator's commit steps (`commit_gathered`); a commit superseded too
/// often in a row is tried again from the start (a replica would exit and restart). Returns what
/// the commit did (its superseded attempts counted over every try) and the rows it landed.
async fn commit_one(
    location: &DatasetLocation,
    retry: RetryPace,
    offsets: &mut LanceOffsets,
    closed: ClosedBatch,
    log: &mut WriterLog,
) -> anyhow::Result<(FencedCommit, usize)> {
    let owned = |_: &Partition| true;
    let record = |o: &LanceOffsets, c: &ClosedBatch| CommitRecord {
        pipeline: Some("bench-writers".into()),
        kafka: Some(KafkaCommit {
            group: GROUP.into(),
            ranges: c.ranges.clone(),
            checkpoint: Some(o.checkpoint_with(&c.ranges)),
        }),
        ..CommitRecord::default()
    };
    let mut superseded = 0;
    loop {
        let mut attempt = closed.clone();
        let result = commit_gathered(
            location,
            &BatchWrite::Append,
            retry,
            offsets,
            &mut attempt,
            &owned,
            record,
        )
        .await;
        match result {
            Ok(mut done) => {
                let rows = if done.version.is_some() {
                    attempt.docs.num_rows()
                } else {
                    0
                };
                done.conflicts += superseded;
                return Ok((done, rows));
            }
            Err(KafkaError::Superseded { attempts, .. }) => {
                log.gave_up += 1;
                superseded += attempts;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writer `w`'s source: batch k is offered at `t0 + (k + 1) × batch_rows / rate`; a writer that
/// falls behind holds the source back (its batches wait, as messages wait in a topic) until the offer
/// ends, plus `OFFER_GRACE`. Returns the rows handed over.
async fn source(
    w: usize,
    offer: Arc<Offer>,
    tx: mpsc::Sender<ClosedBatch>,
    t0: tokio::time::Instant,
) -> anyhow::Result<usize> {
    let closes = t0 + offer.window + OFFER_GRACE;
    for k in 0..offer.batches {
        let due =
            t0 + Duration::from_secs_f64((k + 1) as f64 * offer.batch_rows as f64 / offer.rate);
        tokio::time::sleep_until(due).await;
        match tokio::time::timeout_at(closes, tx.send(offer.batch(w, k)?)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => anyhow::bail!("writer {w} stopped before its source ended"),
            Err(_) => return Ok(k * offer.batch_rows),
        }
    }
    Ok(offer.rows_per_writer())
}

/// Compactions while the writers commit: (done, errors).
async fn compactor(
    location: DatasetLocation,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> (usize, Vec<String>) {
    let (mut done, mut errors) = (0, Vec::new());
    loop {
        let t = Instant::now();
        while t.elapsed() < every {
            if stop.load(Ordering::Acquire) {
                return (done, errors);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let compacted = async {
            let mut ds = location.open().await?;
            lexembed_lance::compact(&mut ds).await
        }
        .await;
        match compacted {
            Ok(_) => done += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
}

/// Every id the dataset holds, counted: (duplicates, missing) against the rows handed to each writer
/// (`taken[w]` rows of writer `w`).
async fn check_exactly_once(
    location: &DatasetLocation,
    taken: &[usize],
) -> anyhow::Result<(usize, usize)> {
    let ds = location.open().await?;
    let batches: Vec<RecordBatch> = ds
        .scan()
        .project(&["id"])?
        .try_into_stream()
        .await?
        .try_collect()
        .await?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for b in &batches {
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| anyhow::anyhow!("id is not a string column"))?;
        for id in ids.iter().flatten() {
            *seen.entry(id.to_string()).or_default() += 1;
        }
    }
    let duplicates = seen.values().map(|&n| n - 1).sum();
    let expected: usize = taken.iter().sum();
    let present = (taken.iter().enumerate())
        .flat_map(|(w, &rows)| (0..rows).map(move |o| format!("w{w}-{o}")))
        .filter(|id| seen.contains_key(id))
        .count();
    Ok((duplicates, expected - present))
}

/// A run's figures, as reported.
struct RunResult {
    writers: usize,
    store: String,
    policy: String,
    offered: f64,
    landed: f64,
    commits_per_s: f64,
    /// Superseded attempts per landed commit, in the steady window and over the whole run.
    superseded_per_commit: Option<(f64, f64)>,
    commit_ms: Vec<f64>,
    rows_per_commit: f64,
    buffered_at_end: usize,
    /// Rows the writers could not take before the offer ended (the consumer lag).
    behind: usize,
    duplicates: usize,
    missing: usize,
    gave_up: usize,
    interval_ms: f64,
    compactions: usize,
    compaction_errors: Vec<String>,
}

impl RunResult {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "writers": self.writers,
            "store": self.store,
            "policy": self.policy,
            "offered_rows_per_s": self.offered,
            "landed_rows_per_s": self.landed,
            "commits_per_s": self.commits_per_s,
            "superseded_per_commit": self.superseded_per_commit.map(|s| s.0),
            "superseded_per_commit_whole_run": self.superseded_per_commit.map(|s| s.1),
            "commit_p50_ms": percentile(&self.commit_ms, 0.5),
            "commit_p99_ms": percentile(&self.commit_ms, 0.99),
            "rows_per_commit": self.rows_per_commit,
            "rows_buffered_at_end": self.buffered_at_end,
            "rows_behind_at_end": self.behind,
            "duplicates": self.duplicates,
            "missing": self.missing,
            "gave_up": self.gave_up,
            "interval_at_end_ms": self.interval_ms,
            "compactions": self.compactions,
            "compaction_errors": self.compaction_errors,
        })
    }
}

async fn run_fenced(
    n: usize,
    location: &DatasetLocation,
    policy: CommitPolicy,
    offer: &Arc<Offer>,
    compact_every: Option<Duration>,
) -> anyhow::Result<(Vec<WriterLog>, (usize, Vec<String>))> {
    let t0 = tokio::time::Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let compaction =
        compact_every.map(|every| tokio::spawn(compactor(location.clone(), every, stop.clone())));
    let mut writers = Vec::new();
    let mut sources = Vec::new();
    for w in 0..n {
        let (tx, rx) = mpsc::channel(AHEAD);
        sources.push(tokio::spawn(source(w, offer.clone(), tx, t0)));
        writers.push(tokio::spawn(fenced_writer(
            location.clone(),
            policy,
            rx,
            t0.into_std(),
        )));
    }
    let mut logs = Vec::new();
    for (s, w) in sources.into_iter().zip(writers) {
        let taken = s.await??;
        logs.push(WriterLog { taken, ..w.await?? });
    }
    stop.store(true, Ordering::Release);
    let compacted = match compaction {
        Some(c) => c.await?,
        None => (0, Vec::new()),
    };
    Ok((logs, compacted))
}

/// `--shard` runs finishing together: each writer's rows in one plain append, all started at once.
async fn run_shards(
    n: usize,
    location: &DatasetLocation,
    offer: &Arc<Offer>,
) -> anyhow::Result<(Vec<WriterLog>, Duration)> {
    let mut rows = Vec::new();
    for w in 0..n {
        let batches: Vec<RecordBatch> = (0..offer.batches)
            .map(|k| Ok(offer.batch(w, k)?.docs))
            .collect::<anyhow::Result<_>>()?;
        rows.push(datafusion::arrow::compute::concat_batches(
            &offer.schema,
            &batches,
        )?);
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (w, batch) in rows.into_iter().enumerate() {
        let location = location.clone();
        let schema = offer.schema.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let record = CommitRecord {
                pipeline: Some(format!("bench-writers-shard-{w}")),
                ..CommitRecord::default()
            };
            let reader: Box<dyn arrow_array::RecordBatchReader + Send> = Box::new(
                arrow_array::RecordBatchIterator::new(vec![Ok(batch)], schema),
            );
            location.commit(SinkMode::Append, reader, &record).await?;
            anyhow::Ok(started.elapsed())
        }));
    }
    let mut logs = Vec::new();
    for t in tasks {
        let took = t.await??;
        logs.push(WriterLog {
            commits: vec![Landed {
                at: t0.elapsed(),
                rows: offer.rows_per_writer(),
                superseded: 0,
                ms: took.as_secs_f64() * 1e3,
            }],
            taken: offer.rows_per_writer(),
            ..WriterLog::default()
        });
    }
    Ok((logs, t0.elapsed()))
}

async fn one_run(
    n: usize,
    store: &Store,
    policy: Policy,
    offer: &Arc<Offer>,
    args: &WritersBenchArgs,
    dir: &std::path::Path,
) -> anyhow::Result<RunResult> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let location = store.location(dir, &format!("writers-{stamp}-{n}"));
    let compact_every =
        (args.compact_every > 0.0).then(|| Duration::from_secs_f64(args.compact_every));
    let (logs, (compactions, compaction_errors), span) = match policy {
        Policy::Fenced(p) => {
            let (logs, c) = run_fenced(n, &location, p, offer, compact_every).await?;
            (logs, c, None)
        }
        Policy::Shards => {
            let (logs, took) = run_shards(n, &location, offer).await?;
            (logs, (0, Vec::new()), Some(took))
        }
    };
    let rows = offer.rows_per_writer();
    let taken: Vec<usize> = logs.iter().map(|l| l.taken).collect();
    let (duplicates, missing) = check_exactly_once(&location, &taken).await?;
    let taken_rows: usize = taken.iter().sum();
    let commits: Vec<&Landed> = logs.iter().flat_map(|l| l.commits.iter()).collect();
    let landed_by =
        |t: Duration| -> usize { commits.iter().filter(|c| c.at <= t).map(|c| c.rows).sum() };
    let in_window = |c: &&&Landed| c.at > offer.warmup && c.at <= offer.window;
    let (landed, commits_per_s) = match span {
        Some(took) => (
            (n * rows) as f64 / took.as_secs_f64(),
            commits.len() as f64 / took.as_secs_f64(),
        ),
        None => {
            let steady = (offer.window - offer.warmup).as_secs_f64();
            let rows_in = landed_by(offer.window) - landed_by(offer.warmup);
            (
                rows_in as f64 / steady,
                commits.iter().filter(in_window).count() as f64 / steady,
            )
        }
    };
    let per_commit = |cs: &[&&Landed]| {
        cs.iter().map(|c| c.superseded).sum::<usize>() as f64 / cs.len().max(1) as f64
    };
    let steady: Vec<&&Landed> = commits.iter().filter(in_window).collect();
    let all: Vec<&&Landed> = commits.iter().collect();
    let fenced = matches!(policy, Policy::Fenced(_));
    Ok(RunResult {
        writers: n,
        store: store.label.clone(),
        policy: policy.name(),
        offered: offer.rate * n as f64,
        landed,
        commits_per_s,
        superseded_per_commit: fenced.then(|| (per_commit(&steady), per_commit(&all))),
        commit_ms: commits.iter().map(|c| c.ms).collect(),
        rows_per_commit: commits.iter().map(|c| c.rows).sum::<usize>() as f64
            / commits.len().max(1) as f64,
        buffered_at_end: if fenced {
            taken_rows.saturating_sub(landed_by(offer.window))
        } else {
            0
        },
        behind: n * rows - taken_rows,
        duplicates,
        missing,
        gave_up: logs.iter().map(|l| l.gave_up).sum(),
        interval_ms: logs
            .iter()
            .map(|l| l.interval_at_end.as_secs_f64() * 1e3)
            .sum::<f64>()
            / logs.len().max(1) as f64,
        compactions,
        compaction_errors,
    })
}

pub fn run(args: WritersBenchArgs) -> anyhow::Result<()> {
    let stores: Vec<Store> = args
        .stores
        .iter()
        .map(|s| Store::parse(s))
        .collect::<anyhow::Result<_>>()?;
    let policies: Vec<Policy> = args
        .policies
        .iter()
        .map(|p| Policy::parse(p, &args))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(
        args.writers.iter().all(|&n| n > 0),
        "--writers: every count must be at least 1"
    );
    let offer = Arc::new(Offer::new(&args)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    if !args.json {
        println!(
            "writers on one dataset: {} rows/s offered to each in batches of {} for {} s (rates after a {} s warm-up); columns {:?}",
            args.rate,
            args.batch_rows,
            args.seconds,
            offer.warmup.as_secs_f64(),
            args.dims
        );
        println!(
            "the rows skip the encoder (vectors made once, replayed): this measures the write path, not the model"
        );
        println!(
            "{:<15}{:<52}{:>4}{:>10}{:>10}{:>7}{:>10}{:>10}{:>7}{:>9}{:>9}{:>10}{:>9}{:>6}{:>6}",
            "store",
            "policy",
            "N",
            "offered/s",
            "landed/s",
            "ratio",
            "commits/s",
            "supers/c",
            "(all)",
            "p50 ms",
            "p99 ms",
            "buffered",
            "behind",
            "dups",
            "miss"
        );
    }
    let mut results = Vec::new();
    for store in &stores {
        for &policy in &policies {
            for &n in &args.writers {
                let r = rt.block_on(one_run(n, store, policy, &offer, &args, dir.path()))?;
                if !args.json {
                    print_row(&r);
                }
                results.push(r);
            }
        }
    }
    let runs: Vec<serde_json::Value> = results.iter().map(RunResult::json).collect();
    let report = serde_json::json!({"rows_skip_the_encoder": true, "runs": runs});
    if let Some(out) = &args.json_out {
        std::fs::write(out, serde_json::to_vec_pretty(&report)?)?;
    }
    if args.json {
        println!("{report}");
    }
    Ok(())
}

fn print_row(r: &RunResult) {
    let (supers, supers_all) = r
        .superseded_per_commit
        .map_or(("-".into(), "-".into()), |s| {
            (format!("{:.2}", s.0), format!("{:.2}", s.1))
        });
    // Shards commit everything at once: their rate is the commits' own, not a share of an offer.
    let ratio = match r.superseded_per_commit {
        Some(_) => format!("{:.3}", r.landed / r.offered),
        None => "-".into(),
    };
    println!(
        "{:<15}{:<52}{:>4}{:>10.0}{:>10.0}{:>7}{:>10.2}{:>10}{:>7}{:>9.1}{:>9.1}{:>10}{:>9}{:>6}{:>6}",
        r.store,
        r.policy,
        r.writers,
        r.offered,
        r.landed,
        ratio,
        r.commits_per_s,
        supers,
        supers_all,
        percentile(&r.commit_ms, 0.5),
        percentile(&r.commit_ms, 0.99),
        r.buffered_at_end,
        r.behind,
        r.duplicates,
        r.missing
    );
    if r.gave_up > 0 {
        println!(
            "    {} commits gave up after 64 superseded attempts in a row (retried)",
            r.gave_up
        );
    }
    if r.compactions > 0 || !r.compaction_errors.is_empty() {
        println!(
            "    {} compactions while writing; errors: {:?}",
            r.compactions, r.compaction_errors
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: WritersBenchArgs,
    }

    fn offer(flags: &[&str]) -> Arc<Offer> {
        let cli = Cli::parse_from(std::iter::once("writers").chain(flags.iter().copied()));
        Arc::new(Offer::new(&cli.args).unwrap())
    }

    #[tokio::test]
    async fn a_source_whose_writer_falls_behind_stops_when_the_offer_ends() {
        // 5 batches of 4 rows over 0.5 s; the writer takes nothing, so the channel's AHEAD batches
        // are all the source hands over, and it gives up 1 s (OFFER_GRACE) after the offer ends.
        let offer = offer(&["--rate", "40", "--batch-rows", "4", "--seconds", "0.5"]);
        let (tx, _rx) = mpsc::channel(AHEAD);
        let t0 = tokio::time::Instant::now();
        let handed = source(0, offer.clone(), tx, t0).await.unwrap();
        assert_eq!(handed, AHEAD * 4);
        let gave_up = t0.elapsed();
        assert!(
            gave_up >= offer.window + OFFER_GRACE
                && gave_up < offer.window + OFFER_GRACE + Duration::from_millis(500),
            "gave up after {gave_up:?}"
        );
    }

    #[tokio::test]
    async fn a_source_whose_writer_keeps_up_hands_over_every_row() {
        let offer = offer(&["--rate", "40", "--batch-rows", "4", "--seconds", "0.5"]);
        let (tx, mut rx) = mpsc::channel::<ClosedBatch>(AHEAD);
        let taker = tokio::spawn(async move {
            let mut rows = 0;
            while let Some(b) = rx.recv().await {
                rows += b.origin.len();
            }
            rows
        });
        let handed = source(0, offer.clone(), tx, tokio::time::Instant::now())
            .await
            .unwrap();
        assert_eq!((handed, taker.await.unwrap()), (20, 20));
    }
}
