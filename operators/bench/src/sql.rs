//! `lexembed bench sql`: (1) `SELECT embed(text) FROM t` against the encoder called directly on the
//! same texts, interleaved, for the SQL overhead; (2) vector-search latency p50/p99 over 100 queries on
//! a 100,000-row dataset at dim 256, exact and with an IVF_PQ index, and the indexed recall@10.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{
    FixedSizeListArray, Float32Array, RecordBatch, RecordBatchIterator, StringArray,
};
use clap::Args;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use lexembed_encoder::runtime::lexembed_home;
use lexembed_encoder::{Dim, Encoder, PromptChoice, Role};
use lexembed_lance::schema::WrittenBy;
use lexembed_lance::{
    DatasetLocation, IndexParams, SearchMode, SearchOptions, SinkMode, build_index, hits,
};
use lexembed_sql::{BatchPolicy, register_functions};

use super::median;
use lexembed_encoder::cli::EncoderArgs;

#[derive(Args, Debug)]
pub struct SqlBenchArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Rows embedded through SQL and directly.
    #[arg(long, default_value_t = 10_000)]
    pub rows: usize,
    /// Rows of the synthetic vector-search dataset.
    #[arg(long, default_value_t = 100_000)]
    pub search_rows: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long)]
    pub json: bool,
}

/// `n` BOE texts (titles and bodies), repeating the corpus when it is shorter.
fn texts(n: usize) -> anyhow::Result<Vec<String>> {
    let all = super::texts::load(&lexembed_home().join("data/boe_articles.jsonl"), usize::MAX)?;
    Ok(all.into_iter().cycle().take(n).collect())
}

pub fn run(args: SqlBenchArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let encoder = Arc::new(args.encoder.open(&[])?);
    let rows = texts(args.rows)?;
    let (sql, direct) = rt.block_on(embed_overhead(&encoder, &rows, args.rounds))?;
    let search = rt.block_on(search_latency(args.search_rows))?;
    let report = serde_json::json!({
        "model": encoder.model().model_id, "rows": rows.len(),
        "sql_seconds": sql, "direct_seconds": direct, "sql_overhead": sql / direct - 1.0,
        "search": search,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} rows, model {}, median of {} rounds",
            rows.len(),
            encoder.model().model_id,
            args.rounds
        );
        println!(
            "SELECT embed(text) FROM t  {sql:.2}s   encoder directly {direct:.2}s   overhead {:+.1}%",
            100.0 * (sql / direct - 1.0)
        );
        println!(
            "vector search, {} rows, dim 256, 100 queries, k 10:",
            args.search_rows
        );
        for k in ["exact", "ivf_pq"] {
            let s = &search[k];
            println!(
                "  {k:<7} p50 {:.2} ms  p99 {:.2} ms",
                s["p50_ms"].as_f64().unwrap_or(0.0),
                s["p99_ms"].as_f64().unwrap_or(0.0)
            );
        }
        println!(
            "  ivf_pq recall@10 vs exact: {:.3}",
            search["recall_at_10"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

async fn embed_overhead(
    encoder: &Arc<Encoder>,
    rows: &[String],
    rounds: usize,
) -> anyhow::Result<(f64, f64)> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_batch_size(1024));
    register_functions(&ctx, encoder.clone(), BatchPolicy::whole_requests())?;
    // `embed()` puts the model's document prompt: the direct calls do too.
    let doc_prompt = encoder.prompt(Role::Document, &PromptChoice::Model)?;
    let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "text",
        arrow_schema::DataType::Utf8,
        false,
    )]));
    let batches: Vec<RecordBatch> = rows
        .chunks(1024)
        .map(|c| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from_iter_values(c))],
            )
        })
        .collect::<Result<_, _>>()?;
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![batches])?))?;
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (mut s, mut d) = (vec![], vec![]);
    for r in 0..rounds.max(1) {
        let t = Instant::now();
        let out = ctx
            .sql("SELECT embed(text) FROM t")
            .await?
            .collect()
            .await?;
        anyhow::ensure!(out.iter().map(RecordBatch::num_rows).sum::<usize>() == rows.len());
        s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        // The same work without SQL: the encoder on the same chunks, Arrow arrays out.
        for c in refs.chunks(1024) {
            encoder.encode_array(
                &StringArray::from(c.to_vec()),
                &[encoder.dims().full()],
                &doc_prompt,
            )?;
        }
        d.push(t.elapsed().as_secs_f64());
        eprintln!("round {}: sql {:.2}s, direct {:.2}s", r + 1, s[r], d[r]);
    }
    Ok((median(s), median(d)))
}

/// Deterministic unit vectors (xorshift).
pub(super) fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut v: Vec<f32> = (0..n * dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    for row in v.chunks_exact_mut(dim) {
        lexembed_encoder::pooling::l2_normalize(row);
    }
    v
}

async fn search_latency(n: usize) -> anyhow::Result<serde_json::Value> {
    let dim = 256;
    let dir = tempfile::tempdir()?;
    let loc = DatasetLocation::new(dir.path().join("search.lance").display().to_string());
    let by = WrittenBy::new("bench", &[Dim(dim as u32)], Default::default());
    let schema = lexembed_lance::schema::embedded_dataset(&by, &[])?;
    let values = random_vectors(n, dim, 0x9E37_79B9);
    let batches: Vec<Result<RecordBatch, arrow_schema::ArrowError>> = (0..n)
        .step_by(10_000)
        .map(|start| {
            let end = (start + 10_000).min(n);
            let ids = StringArray::from_iter_values((start..end).map(|i| format!("v{i}")));
            let texts = StringArray::from_iter_values((start..end).map(|_| ""));
            let vals = Float32Array::from(values[start * dim..end * dim].to_vec());
            let list = FixedSizeListArray::try_new(
                lexembed_encoder::matryoshka::item_field(),
                dim as i32,
                Arc::new(vals),
                None,
            )?;
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(ids), Arc::new(texts), Arc::new(list)],
            )
        })
        .collect();
    loc.commit(
        SinkMode::Create,
        Box::new(RecordBatchIterator::new(batches, schema)),
        &lexembed_lance::CommitRecord::default(),
    )
    .await?;
    let queries = random_vectors(100, dim, 0x1234_5678);
    let mut ds = loc.open().await?;
    let time = |ds: lance::Dataset, mode: SearchMode| {
        let queries = queries.clone();
        async move {
            let opts = SearchOptions {
                k: 10,
                ..SearchOptions::default()
            };
            let mut lat = Vec::new();
            let mut ids = Vec::new();
            for q in queries.chunks_exact(dim) {
                let t = Instant::now();
                let h = hits(&ds, "emb_256", q, mode, &opts).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                ids.push(h.into_iter().map(|h| h.id).collect::<Vec<_>>());
            }
            lat.sort_by(f64::total_cmp);
            anyhow::Ok((lat[49], lat[98], ids))
        }
    };
    let (e50, e99, exact) = time(ds.clone(), SearchMode::Exact).await?;
    build_index(&mut ds, "emb_256", &IndexParams::default()).await?;
    let (i50, i99, approx) = time(ds.clone(), SearchMode::Index).await?;
    let found: usize = exact
        .iter()
        .zip(&approx)
        .map(|(e, a)| a.iter().filter(|x| e.contains(x)).count())
        .sum();
    Ok(serde_json::json!({
        "exact": {"p50_ms": e50, "p99_ms": e99},
        "ivf_pq": {"p50_ms": i50, "p99_ms": i99},
        "recall_at_10": found as f64 / (exact.len() * 10) as f64,
    }))
}
