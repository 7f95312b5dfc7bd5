//! `lexembed bench kafka`: messages/s through the Kafka operator (poll → batch → embed → Lance commit
//! → offset commit) with the tiny model, next to a bare rdkafka consumer reading the same topic in the
//! same run; then, with all-MiniLM-L6-v2, the share of the operator's busy time spent in the encoder
//! (the operator must not be the bottleneck). Needs a broker (integration/kafka.sh start).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use lexembed_encoder::runtime::lexembed_home;
use lexembed_kafka::{
    OperatorOptions, OperatorSummary, ProduceOptions, create_topic, produce_lines,
};
use lexembed_pipeline::LoadedSpec;
use lexembed_pipeline::spec::SourceInput;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

#[derive(Args, Debug)]
pub struct KafkaBenchArgs {
    #[arg(
        long,
        env = "LEXEMBED_KAFKA_BROKERS",
        default_value = "127.0.0.1:19092"
    )]
    pub brokers: String,
    /// Messages for the tiny-model run and the bare consumer.
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// Messages for the all-MiniLM-L6-v2 run (encoder share).
    #[arg(long, default_value_t = 3_000)]
    pub minilm_messages: usize,
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Rows per batch (and per encoder call).
    #[arg(long, default_value_t = 1024)]
    pub batch_rows: usize,
    /// JSONL corpus for message texts (default: the BOE demo corpus).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

fn stamp() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Produces `n` messages cycling over `texts` into a new topic; returns its name.
fn load_topic(
    args: &KafkaBenchArgs,
    texts: &[String],
    n: usize,
    tag: &str,
) -> anyhow::Result<String> {
    let topic = format!("bench-{tag}-{}", stamp());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(create_topic(&args.brokers, &topic, args.partitions, 1))?;
    let mut body = Vec::new();
    for i in 0..n {
        let line = serde_json::json!({"id": format!("m{i}"), "text": texts[i % texts.len()]});
        serde_json::to_writer(&mut body, &line)?;
        body.push(b'\n');
    }
    let opts = ProduceOptions {
        brokers: args.brokers.clone(),
        topic: topic.clone(),
        key_field: Some("id".into()),
        tombstones: false,
        properties: vec![],
    };
    produce_lines(body.as_slice(), &opts)?;
    Ok(topic)
}

/// A bare consumer reading the whole topic: messages/s from the first message to the last.
fn bare_consumer(brokers: &str, topic: &str, n: usize) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-bare-{}", stamp()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let (mut seen, mut bytes, mut first) = (0usize, 0usize, None);
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "bare consumer read {seen} of {n} messages"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m?;
            first.get_or_insert_with(Instant::now);
            bytes += m.payload().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    let secs = first.map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    tracing::debug!(bytes, "bare consumer done");
    Ok(seen as f64 / secs)
}

fn operator(
    args: &KafkaBenchArgs,
    dir: &Path,
    topic: &str,
    model: &Path,
) -> anyhow::Result<OperatorSummary> {
    let spec = dir.join(format!("{topic}.yaml"));
    std::fs::write(
        &spec,
        format!(
            "name: bench-kafka\nsource:\n  kind: kafka\n  batch_rows: {}\n  kafka:\n    brokers: {}\n    topics: [{topic}]\n    group_id: {topic}-g\n    linger_ms: 200\nencoder:\n  model: {}\nsink:\n  uri: {}/{topic}.lance\n  mode: append\n",
            args.batch_rows,
            args.brokers,
            model.display(),
            dir.display()
        ),
    )?;
    let loaded = LoadedSpec::load(&spec)?;
    let opts = OperatorOptions {
        http_addr: None,
        exit_when_idle: Some(Duration::from_secs(3)),
        ..OperatorOptions::default()
    };
    let io = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let SourceInput::Kafka(kafka) = &loaded.spec.source.input else {
        anyhow::bail!("the benchmark's spec has no kafka source");
    };
    Ok(lexembed_kafka::run_operator(
        &loaded,
        kafka,
        &opts,
        io.handle(),
    )?)
}

pub fn run(args: KafkaBenchArgs) -> anyhow::Result<()> {
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| lexembed_home().join("data/boe_articles.jsonl"));
    let texts = super::texts::load(&corpus, 4000)?;
    let tiny = crate::repo_file("operators/encoder/tests/fixtures/tiny-xlmr");
    let minilm = lexembed_home().join("models/all-MiniLM-L6-v2");
    let dir = tempfile::tempdir()?;

    let topic = load_topic(&args, &texts, args.messages, "tiny")?;
    let bare = bare_consumer(&args.brokers, &topic, args.messages)?;
    let op = operator(&args, dir.path(), &topic, &tiny)?;
    anyhow::ensure!(
        op.written as usize == args.messages,
        "operator wrote {} of {}",
        op.written,
        args.messages
    );
    let op_rate = op.consumed as f64 / op.busy_seconds;

    let topic2 = load_topic(&args, &texts, args.minilm_messages, "minilm")?;
    let big = operator(&args, dir.path(), &topic2, &minilm)?;
    anyhow::ensure!(
        big.written as usize == args.minilm_messages,
        "operator wrote {} of {}",
        big.written,
        args.minilm_messages
    );
    let share = big.encoder_seconds / big.busy_seconds;
    let report = serde_json::json!({
        "messages": args.messages, "partitions": args.partitions, "batch_rows": args.batch_rows,
        "bare_consumer_msgs_per_s": bare, "operator_tiny_msgs_per_s": op_rate,
        "operator_vs_bare": op_rate / bare,
        "tiny_encoder_share": op.encoder_seconds / op.busy_seconds,
        "minilm_messages": args.minilm_messages,
        "operator_minilm_msgs_per_s": big.consumed as f64 / big.busy_seconds,
        "minilm_encoder_share": share,
    });
    if args.json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "{} messages over {} partitions, batches of {} rows",
        args.messages, args.partitions, args.batch_rows
    );
    println!(
        "bare rdkafka consumer {bare:>9.0} msg/s   operator (tiny model) {op_rate:>8.0} msg/s   ratio {:.3}   encoder share {:.1}%",
        op_rate / bare,
        100.0 * op.encoder_seconds / op.busy_seconds
    );
    println!(
        "operator (all-MiniLM-L6-v2, {} messages) {:.0} msg/s   encoder share {:.1}% (target ≥ 90%)",
        args.minilm_messages,
        big.consumed as f64 / big.busy_seconds,
        100.0 * share
    );
    Ok(())
}
