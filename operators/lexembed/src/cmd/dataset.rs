//! Dataset commands: `lexembed search`, `lexembed index`, `lexembed compact`, `lexembed cleanup`.

use anyhow::Context;
use clap::Args;
use lexembed_lance::schema::column_dim;
use lexembed_lance::{
    DatasetLocation, IndexKind, IndexParams, SearchOptions, build_index, check_query_model,
    cleanup, compact, hits,
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
    /// Vector column, e.g. emb_256.
    #[arg(long)]
    pub column: String,
    /// Question or text to search for.
    #[arg(long)]
    pub query: String,
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    /// Exact (flat) search even when the column has an index.
    #[arg(long)]
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

pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    let ds = rt.block_on(DatasetLocation::new(&args.dataset).open())?;
    let dim = column_dim(&args.column)
        .with_context(|| format!("{} is not a vector column (emb_<dim>)", args.column))?;
    let enc = args.encoder.open(&[dim.0])?;
    check_query_model(&ds, &enc.model().model_id)?;
    let q = enc.encode(&[args.query.as_str()])?;
    let v = q.prefix(0, dim);
    let opts = SearchOptions {
        k: args.k,
        use_index: !args.exact,
        filter: args.filter.clone(),
        ..SearchOptions::default()
    };
    for (rank, h) in rt
        .block_on(hits(&ds, &args.column, &v, &opts))?
        .iter()
        .enumerate()
    {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"rank": rank + 1, "id": h.id, "score": 1.0 - h.distance, "distance": h.distance})
            );
        } else {
            let snippet: String = h
                .text
                .chars()
                .take(90)
                .collect::<String>()
                .replace('\n', " ");
            println!(
                "{:>3}  {:.4}  {:<40}  {snippet}",
                rank + 1,
                1.0 - h.distance,
                h.id
            );
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct IndexArgs {
    pub dataset: String,
    /// Vector column to index, e.g. emb_256 (repeatable).
    #[arg(long = "column", required = true)]
    pub columns: Vec<String>,
    /// ivf_pq or ivf_hnsw_sq.
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
