//! Dataset commands: `lexembed search`, `lexembed index`, `lexembed compact`, `lexembed cleanup`.

use anyhow::Context;
use clap::Args;
use lexembed_lance::schema::column_dim;
use lexembed_lance::{
    DEFAULT_RRF_K, DatasetLocation, IndexKind, IndexParams, Query, SearchMode, SearchOptions,
    build_index, checked_query_prompt, cleanup, compact, search as search_dataset,
};

use lexembed_encoder::cli::EncoderArgs;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Lance dataset written by a pipeline.
    pub dataset: String,
    /// Vector column, e.g. emb_256 (every mode but fts).
    #[arg(long, required_unless_present = "mode")]
    pub column: Option<String>,
    /// Question or text to search for (embedded with the model's query prompt, E5's "query: ").
    #[arg(long)]
    pub query: String,
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    /// index: nearest vectors of --column through its index when it has one (exact otherwise);
    /// exact: against every stored vector; fts: BM25 over the text column's full-text index (build it
    /// with `lexembed index DATASET --column text --type fts`); hybrid: reciprocal-rank fusion of the
    /// index path and fts. (`dense`, the old name of index, still works, with a warning.)
    #[arg(long, default_value = "index")]
    pub mode: String,
    /// Hybrid: a document at rank r of a list scores 1 / (rrf_k + r).
    #[arg(long, default_value_t = DEFAULT_RRF_K)]
    pub rrf_k: f32,
    /// Deprecated: say `--mode exact`.
    #[arg(long, hide = true)]
    pub exact: bool,
    /// SQL filter applied before ranking, e.g. "law = 'ley-58-2003'".
    #[arg(long)]
    pub filter: Option<String>,
    /// One JSON line per hit.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// The mode asked for, with the deprecated `--exact` folded in (it meant `--mode exact`). Read
/// here, not by clap, so that a deprecated spelling's warning reaches the log.
fn mode_of(args: &SearchArgs) -> anyhow::Result<SearchMode> {
    let mode = SearchMode::parse(&args.mode).context("--mode")?;
    if !args.exact {
        return Ok(mode);
    }
    tracing::warn!(
        "--exact is deprecated and will be refused in the next release: say --mode exact"
    );
    match mode {
        SearchMode::Index | SearchMode::Exact => Ok(SearchMode::Exact),
        other => anyhow::bail!(
            "--exact applies to the vector column alone; --mode {other} searches through the index (say --mode exact for exact search)"
        ),
    }
}

pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let mode = mode_of(&args)?;
    let rt = runtime()?;
    let ds = rt.block_on(DatasetLocation::new(&args.dataset).open())?;
    let column = args.column.clone().unwrap_or_default();
    let vector = match mode.needs_vector() {
        true => Some(query_vector(&args, mode, &ds, &column)?),
        false => None,
    };
    let opts = SearchOptions {
        k: args.k,
        filter: args.filter.clone(),
        ..SearchOptions::default()
    };
    let query = Query {
        text: &args.query,
        vector: vector.as_deref(),
        column: &column,
        mode,
        rrf_k: args.rrf_k,
    };
    for (rank, h) in rt
        .block_on(search_dataset(&ds, query, &opts))?
        .iter()
        .enumerate()
    {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"rank": rank + 1, "id": h.id, "score": h.score, "distance": h.distance})
            );
        } else {
            let snippet: String = h
                .text
                .chars()
                .take(90)
                .collect::<String>()
                .replace('\n', " ");
            println!("{:>3}  {:.4}  {:<40}  {snippet}", rank + 1, h.score, h.id);
        }
    }
    Ok(())
}

/// The query embedded at `column`'s dim by the dataset's model with its query prompt (both checked
/// against what the dataset records).
fn query_vector(
    args: &SearchArgs,
    mode: SearchMode,
    ds: &lexembed_lance::Dataset,
    column: &str,
) -> anyhow::Result<Vec<f32>> {
    anyhow::ensure!(
        !column.is_empty(),
        "--column is required for --mode {}",
        mode.name()
    );
    let dim = column_dim(column)
        .with_context(|| format!("{column} is not a vector column (emb_<dim>)"))?;
    let enc = args.encoder.open(&[dim.0])?;
    let prompt = checked_query_prompt(ds, enc.model())?;
    let q = enc.encode(&[args.query.as_str()], &prompt)?;
    Ok(q.prefix(0, dim))
}

#[derive(Args, Debug)]
pub struct IndexArgs {
    pub dataset: String,
    /// Column to index, e.g. emb_256 (repeatable); the text column (`text`) for --type fts.
    #[arg(long = "column", required = true)]
    pub columns: Vec<String>,
    /// ivf_pq or ivf_hnsw_sq (vector columns), or fts: a full-text index with a Spanish analyzer
    /// (lower case, accent folding, Spanish stemming and stop words) for --mode fts|hybrid searches.
    #[arg(long = "type", default_value = "ivf_pq")]
    pub kind: String,
    /// IVF partitions (default √rows).
    #[arg(long)]
    pub partitions: Option<usize>,
    /// PQ sub-vectors (default dim/16 or the nearest divisor).
    #[arg(long)]
    pub sub_vectors: Option<usize>,
}

pub fn index(args: IndexArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    let loc = DatasetLocation::new(&args.dataset);
    let params = IndexParams {
        kind: IndexKind::parse(&args.kind)?,
        num_partitions: args.partitions,
        num_sub_vectors: args.sub_vectors,
    };
    for c in &args.columns {
        let mut ds = rt.block_on(loc.open())?;
        rt.block_on(build_index(&mut ds, c, &params))?;
        println!(
            "{}: {} index on {c} (cosine), version {}",
            args.dataset,
            args.kind,
            ds.version().version
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct CompactArgs {
    pub dataset: String,
}

pub fn compact_cmd(args: CompactArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    let mut ds = rt.block_on(DatasetLocation::new(&args.dataset).open())?;
    let (removed, added) = rt.block_on(compact(&mut ds))?;
    println!(
        "{}: {removed} fragments rewritten into {added}, version {}",
        args.dataset,
        ds.version().version
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// Lance dataset (local path or s3://…).
    pub dataset: String,
    /// Keep versions younger than this (e.g. 7d, 12h, 30m) for time travel. Default: remove every
    /// version below the recovery commit.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Commits a recovery of what every pipeline and consumer group committed, then removes old versions
/// below it: resume and Kafka offset recovery keep working (unlike Lance's own cleanup).
pub fn cleanup_cmd(args: CleanupArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    let older_than = args
        .older_than
        .map(chrono::Duration::from_std)
        .transpose()
        .context("--older-than is too large")?;
    let loc = DatasetLocation::new(&args.dataset);
    let summary = rt.block_on(cleanup(&loc, older_than))?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{}: recovery committed as version {}; {} old versions removed ({} bytes)",
            args.dataset, summary.recovery_version, summary.versions_removed, summary.bytes_removed
        );
    }
    Ok(())
}
