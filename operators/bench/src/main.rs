//! `lexembed-bench` (also reached as `lexembed bench …`): each benchmark runs lexembed and its
//! reference in the same process or run, interleaving rounds, and prints ratios (this machine is
//! noisy: only ratios taken side by side mean anything).
//!
//! A binary of its own so that the product binary links no benchmark-only crate and no path of the
//! build machine; built with `--no-default-features` it holds only `encode` (what the GPU machine
//! runs), without lance, datafusion or rdkafka.

mod encode;
#[cfg(feature = "full")]
mod eval;
#[cfg(feature = "full")]
mod kafka;
#[cfg(feature = "full")]
mod pipeline;
#[cfg(feature = "full")]
mod serve;
#[cfg(feature = "full")]
mod sql;
#[cfg(feature = "full")]
mod store;
mod texts;
#[cfg(feature = "full")]
mod writers;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Benchmarks that compare lexembed with reference engines in the same run.
#[derive(Parser)]
#[command(name = "lexembed-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Encoder throughput against sentence-transformers and a bare ONNX Runtime session (CPU or GPU).
    Encode(encode::EncodeBenchArgs),
    /// IR metric computation alone against numpy, 2,373 queries × 20,000 docs × 6 dims.
    #[cfg(feature = "full")]
    Eval(eval::EvalBenchArgs),
    /// SQL embed() overhead against the encoder, and vector-search latency with and without an index.
    #[cfg(feature = "full")]
    Sql(sql::SqlBenchArgs),
    /// The Kafka operator's messages/s against a bare rdkafka consumer, and its encoder share.
    #[cfg(feature = "full")]
    Kafka(kafka::KafkaBenchArgs),
    /// A whole pipeline run against a bare encoder over the same rows.
    #[cfg(feature = "full")]
    Pipeline(pipeline::PipelineBenchArgs),
    /// `lexembed serve` under 1, 8, 64 concurrent clients against the bare encoder; 429s past the queue.
    #[cfg(feature = "full")]
    Serve(serve::ServeBenchArgs),
    /// Lance on object storage (`--uri s3://…`) against a local directory: appends, cold open, scan.
    #[cfg(feature = "full")]
    Store(store::StoreBenchArgs),
    /// N writers on one dataset through the Kafka operator's commit code and `--shard` appends:
    /// landed rows/s, superseded attempts per commit, commit latency, exactly once.
    #[cfg(feature = "full")]
    Writers(writers::WritersBenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEXEMBED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        BenchCommand::Encode(a) => encode::run(a),
        #[cfg(feature = "full")]
        BenchCommand::Pipeline(a) => pipeline::run(a),
        #[cfg(feature = "full")]
        BenchCommand::Eval(a) => eval::run(a),
        #[cfg(feature = "full")]
        BenchCommand::Sql(a) => sql::run(a),
        #[cfg(feature = "full")]
        BenchCommand::Kafka(a) => kafka::run(a),
        #[cfg(feature = "full")]
        BenchCommand::Store(a) => store::run(a),
        #[cfg(feature = "full")]
        BenchCommand::Serve(a) => serve::run(a),
        #[cfg(feature = "full")]
        BenchCommand::Writers(a) => writers::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A file of the lexembed repository (reference scripts, fixtures): under `$LEXEMBED_REPO`, else the
/// current directory when it is a checkout (the GPU machine runs from one), else the checkout this
/// binary was built from.
fn repo_file(rel: &str) -> PathBuf {
    if let Some(root) = std::env::var_os("LEXEMBED_REPO") {
        return PathBuf::from(root).join(rel);
    }
    let here = PathBuf::from(rel);
    if here.exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// Median of a few timings, seconds.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The `p` quantile (0..=1) of some timings: the nearest rank, no interpolation.
#[cfg(feature = "full")]
fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}
