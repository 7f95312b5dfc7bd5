//! `lexembed bench …`: each benchmark runs lexembed and its reference in the same process or run,
//! interleaving rounds, and prints ratios (this machine is noisy: only ratios taken side by side mean
//! anything).

pub mod encode;
pub mod eval;
pub mod kafka;
pub mod pipeline;
pub mod sql;
pub mod store;
mod texts;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Encoder throughput against sentence-transformers and a bare ONNX Runtime session.
    Encode(encode::EncodeBenchArgs),
    /// IR metric computation alone against numpy, 2,373 queries × 20,000 docs × 6 dims.
    Eval(eval::EvalBenchArgs),
    /// SQL embed() overhead against the encoder, and vector-search latency with and without an index.
    Sql(sql::SqlBenchArgs),
    /// The Kafka operator's messages/s against a bare rdkafka consumer, and its encoder share.
    Kafka(kafka::KafkaBenchArgs),
    /// A whole pipeline run against a bare encoder over the same rows.
    Pipeline(pipeline::PipelineBenchArgs),
    /// Lance on object storage (`--uri s3://…`) against a local directory: appends, cold open, scan.
    Store(store::StoreBenchArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Encode(a) => encode::run(a),
        BenchCommand::Pipeline(a) => pipeline::run(a),
        BenchCommand::Eval(a) => eval::run(a),
        BenchCommand::Sql(a) => sql::run(a),
        BenchCommand::Kafka(a) => kafka::run(a),
        BenchCommand::Store(a) => store::run(a),
    }
}

/// Median of a few timings, seconds.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The `p` quantile (0..=1) of some timings: the nearest rank, no interpolation.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}
