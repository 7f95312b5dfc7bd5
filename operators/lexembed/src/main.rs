//! The `lexembed` command: wires the operators into subcommands. Owns argument parsing, logging setup
//! and exit codes; the work itself lives in the operator crates.

mod cmd;
mod logging;

use clap::{Parser, Subcommand};

/// lexembed turns text into Matryoshka embeddings with sentence-transformers models exported to ONNX.
///
/// Start with `integration/setup.sh` (ONNX Runtime, the default model, demo data), then try
/// `lexembed embed "¿Cuál es el plazo para resolver?"`.
#[derive(Parser)]
#[command(name = "lexembed", version, about, long_about)]
struct Cli {
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long, global = true, env = "LEXEMBED_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts (arguments, or one per line on stdin) and print one JSON line per text.
    Embed(cmd::embed::EmbedArgs),
    /// Inspect a model directory.
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
    /// Benchmarks that compare lexembed with reference engines in the same run (encode, pipeline,
    /// sql, eval, kafka, store): runs the lexembed-bench binary.
    Bench(cmd::bench::BenchArgs),
    /// Demo: embed Spanish legal sentences and print how similar they are.
    Demo(cmd::demo::DemoArgs),
    /// Run a pipeline spec: read, embed, write one Lance commit, build the indexes it asks for.
    Run(cmd::run::RunArgs),
    /// Check pipeline specs without running them.
    Validate(cmd::validate::ValidateArgs),
    /// Print the JSON Schema of pipeline specs (for editors).
    Schema,
    /// Serve the model over HTTP: OpenAI-compatible /v1/embeddings, TEI-compatible /embed, /search
    /// over Lance datasets it wrote, /health, /info, /metrics.
    Serve(Box<cmd::serve::ServeArgs>),
    /// Nearest rows of a dataset to a query, embedded with the dataset's model.
    Search(cmd::dataset::SearchArgs),
    /// Build a cosine vector index on embedding columns.
    Index(cmd::dataset::IndexArgs),
    /// Rewrite small fragments of a dataset into larger ones.
    Compact(cmd::dataset::CompactArgs),
    /// Remove old versions of a dataset, keeping what `run --resume` and the Kafka operator need to
    /// recover (a recovery commit of every pipeline's files and every group's offsets comes first).
    Cleanup(cmd::dataset::CleanupArgs),
    /// SQL over Lance datasets with embed(text [, dim]) and vector functions.
    Sql(cmd::sql::SqlArgs),
    /// Load a JSONL file into a Kafka topic (one message per line), creating the topic if asked.
    Produce(cmd::produce::ProduceArgs),
    /// IR evaluation over held-out QA pairs, every Matryoshka dim (`eval report` renders the history).
    Eval(Box<cmd::eval::EvalCommand>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_json);
    let result = match cli.command {
        Command::Embed(a) => cmd::embed::run(a),
        Command::Model(c) => cmd::model::run(c),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::Schema => cmd::validate::schema(),
        Command::Serve(a) => cmd::serve::run(*a),
        Command::Search(a) => cmd::dataset::search(a),
        Command::Index(a) => cmd::dataset::index(a),
        Command::Compact(a) => cmd::dataset::compact_cmd(a),
        Command::Cleanup(a) => cmd::dataset::cleanup_cmd(a),
        Command::Eval(c) => cmd::eval::run(*c),
        Command::Sql(a) => cmd::sql::run(a),
        Command::Produce(a) => cmd::produce::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<cmd::eval::AlertsFired>().is_some() {
                std::process::ExitCode::from(cmd::eval::ALERT_EXIT_CODE)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
