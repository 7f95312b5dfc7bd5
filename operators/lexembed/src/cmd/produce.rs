//! `lexembed produce`: loads a file (or stdin) into a Kafka topic, one message per non-empty line,
//! byte for byte (or, with `--tombstones`, one tombstone per line: the line is the key, the value
//! null, which deletes that id from a `sink.mode: upsert` dataset); creates the topic first when
//! `--partitions` is given.

use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lexembed_kafka::{ProduceOptions, create_topic, produce_lines};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Input file (JSONL, one message per line); `-` for stdin.
    pub file: PathBuf,
    #[arg(
        long,
        env = "LEXEMBED_KAFKA_BROKERS",
        default_value = "127.0.0.1:19092"
    )]
    pub brokers: String,
    #[arg(long)]
    pub topic: String,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor for a topic created here.
    #[arg(long, default_value_t = 1)]
    pub replication: i32,
    /// JSON field whose value becomes the message key (same key, same partition).
    #[arg(long)]
    pub key_field: Option<String>,
    /// Each line is a key: produce a tombstone (key, null value) for it, which deletes that id from
    /// a dataset written with `sink.mode: upsert`.
    #[arg(long, conflicts_with = "key_field")]
    pub tombstones: bool,
    /// librdkafka producer property KEY=VALUE (repeatable), e.g. security.protocol=SASL_SSL.
    #[arg(long = "property", short = 'X', value_parser = parse_kv)]
    pub properties: Vec<(String, String)>,
    #[arg(long)]
    pub json: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s}"))
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    if let Some(n) = args.partitions {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(create_topic(
            &args.brokers,
            &args.topic,
            n,
            args.replication,
        ))?;
    }
    let opts = ProduceOptions {
        brokers: args.brokers.clone(),
        topic: args.topic.clone(),
        key_field: args.key_field.clone(),
        tombstones: args.tombstones,
        properties: args.properties.clone(),
    };
    let summary = if args.file.as_os_str() == "-" {
        produce_lines(std::io::stdin().lock(), &opts)?
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        produce_lines(BufReader::new(f), &opts)?
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} messages ({} bytes) → {} in {:.1}s",
            summary.messages, summary.bytes, summary.topic, summary.seconds
        );
    }
    Ok(())
}
