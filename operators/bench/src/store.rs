//! `lexembed bench store`: what Lance on object storage costs against a local directory. The same
//! appends (the Kafka operator's unit of work: one commit per micro-batch, here with the production
//! model's 1024/256/64 columns) go to a dataset in a local temporary directory and to a new dataset
//! under `--uri`, alternating which goes first; then each is opened cold and scanned whole, in
//! alternating rounds. Prints latencies side by side and the ratios object store / local.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use clap::Args;
use futures::TryStreamExt;
use lexembed_encoder::Dim;
use lexembed_lance::{Conditional, DatasetLocation, PendingAppend};

use super::sql::random_vectors;
use super::{median, percentile};

const DIMS: [u32; 3] = [1024, 256, 64];

#[derive(Args, Debug)]
pub struct StoreBenchArgs {
    /// Where the object-store dataset goes: a new `bench-<time>.lance` is made under this prefix, e.g.
    /// `s3://lexembed/bench`. Endpoint and credentials come from the AWS_* environment
    /// (`eval "$(integration/s3.sh env)"` for the local SeaweedFS).
    #[arg(long)]
    pub uri: String,
    /// Commits to each dataset: the first creates it (timed apart), the rest append.
    #[arg(long, default_value_t = 20)]
    pub commits: usize,
    /// Rows per append.
    #[arg(long, default_value_t = 512)]
    pub rows: usize,
    /// Cold open + full scan rounds per dataset.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long)]
    pub json: bool,
}

/// Latencies of one store, milliseconds.
#[derive(Default)]
struct Timings {
    /// The first append, which creates the dataset.
    create: Vec<f64>,
    append: Vec<f64>,
    open: Vec<f64>,
    scan: Vec<f64>,
}

pub fn run(args: StoreBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.commits >= 2 && args.rows > 0 && args.rounds > 0,
        "--commits must be at least 2 (the first creates the dataset); --rows and --rounds positive"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let stores = [
        DatasetLocation::new(dir.path().join("bench.lance").display().to_string()),
        DatasetLocation::new(format!(
            "{}/bench-{}.lance",
            args.uri.trim_end_matches('/'),
            stamp.as_millis()
        )),
    ];
    let mut timings = [Timings::default(), Timings::default()];
    rt.block_on(appends(&stores, &mut timings, &args))?;
    rt.block_on(scans(&stores, &mut timings, args.rounds))?;
    report(&stores, &timings, &args);
    Ok(())
}

async fn appends(
    stores: &[DatasetLocation; 2],
    timings: &mut [Timings; 2],
    args: &StoreBenchArgs,
) -> anyhow::Result<()> {
    let mut bases: [Option<Arc<lance::Dataset>>; 2] = [None, None];
    for i in 0..args.commits {
        let batch = batch(i, args.rows)?;
        // Alternate which store goes first, so neither always meets a warm connection or cache.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            let t = Instant::now();
            // The operator's commit: conditional on the version it read (alone here, never
            // superseded).
            let mut pending = PendingAppend::new(batch.clone());
            let committed = stores[s]
                .append_if_latest(bases[s].take(), &mut pending, &Default::default())
                .await?;
            let Conditional::Committed(ds) = committed else {
                anyhow::bail!("{}: the only writer was superseded", stores[s].uri);
            };
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if i == 0 {
                timings[s].create.push(ms);
            } else {
                timings[s].append.push(ms);
            }
            bases[s] = Some(Arc::new(*ds));
        }
    }
    Ok(())
}

async fn scans(
    stores: &[DatasetLocation; 2],
    timings: &mut [Timings; 2],
    rounds: usize,
) -> anyhow::Result<()> {
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            let t = Instant::now();
            let ds = stores[s].open().await?;
            timings[s].open.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let batches: Vec<RecordBatch> =
                ds.scan().try_into_stream().await?.try_collect().await?;
            timings[s].scan.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(!batches.is_empty(), "{}: scanned nothing", stores[s].uri);
        }
    }
    Ok(())
}

/// `rows` rows of the embedded-dataset schema with unit vectors at every dim, ids unique per append.
fn batch(index: usize, rows: usize) -> anyhow::Result<RecordBatch> {
    let dims: Vec<Dim> = DIMS.iter().map(|&d| Dim(d)).collect();
    let by = lexembed_lance::schema::WrittenBy::new("bench", &dims, Default::default());
    let schema = lexembed_lance::schema::embedded_dataset(&by, &[])?;
    let ids = StringArray::from_iter_values((0..rows).map(|r| format!("b{index}-{r}")));
    let texts = StringArray::from_iter_values((0..rows).map(|r| format!("Artículo {r}.")));
    let mut columns: Vec<arrow_array::ArrayRef> = vec![Arc::new(ids), Arc::new(texts)];
    for (k, &dim) in DIMS.iter().enumerate() {
        let values = random_vectors(rows, dim as usize, (index * DIMS.len() + k + 1) as u64);
        columns.push(Arc::new(FixedSizeListArray::try_new(
            lexembed_encoder::matryoshka::item_field(),
            dim as i32,
            Arc::new(Float32Array::from(values)),
            None,
        )?));
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn report(stores: &[DatasetLocation; 2], t: &[Timings; 2], args: &StoreBenchArgs) {
    let rows: [(&str, f64, f64); 5] = [
        (
            "create ms",
            median(t[0].create.clone()),
            median(t[1].create.clone()),
        ),
        (
            "append p50 ms",
            median(t[0].append.clone()),
            median(t[1].append.clone()),
        ),
        (
            "append p95 ms",
            percentile(&t[0].append, 0.95),
            percentile(&t[1].append, 0.95),
        ),
        (
            "cold open ms",
            median(t[0].open.clone()),
            median(t[1].open.clone()),
        ),
        (
            "full scan ms",
            median(t[0].scan.clone()),
            median(t[1].scan.clone()),
        ),
    ];
    let mb = (args.rows * DIMS.iter().sum::<u32>() as usize * 4) as f64 / 1e6;
    if args.json {
        let metrics: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(name, local, remote)| {
                let key = name.replace(' ', "_");
                (key, serde_json::json!({"local": local, "object_store": remote, "ratio": remote / local}))
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"uri": stores[1].uri, "commits": args.commits, "rows_per_commit": args.rows,
                "mb_per_commit": mb, "metrics": metrics})
        );
        return;
    }
    println!(
        "{} commits of {} rows ({mb:.1} MB of vectors each; the first creates the dataset), then {} cold open + full scan rounds",
        args.commits, args.rows, args.rounds
    );
    println!("  local:        {}", stores[0].uri);
    println!("  object store: {}", stores[1].uri);
    println!(
        "{:<16}{:>12}{:>15}{:>9}",
        "", "local", "object store", "ratio"
    );
    for (name, local, remote) in rows {
        println!(
            "{name:<16}{local:>12.1}{remote:>15.1}{:>8.2}×",
            remote / local
        );
    }
}
