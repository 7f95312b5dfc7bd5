//! `lexembed bench serve`: `lexembed serve`'s routes in this process on a local port, loaded by N
//! concurrent clients (1, 8, 64 by default) each sending `/v1/embeddings` requests of 1–32 BOE texts,
//! against the bare encoder over the same texts, rounds interleaved. Reports texts/s per level and its
//! ratio to the bare encoder, p50/p99 request latency, and an overload level (many clients, a small
//! queue) where the server answers 429 instead of queueing without bound.
//!
//! `--bulk N`: head-of-line blocking instead. One client sends one-text queries (the corpus's titles)
//! back to back for `--seconds`, alone and then beside a bulk client that sends N-input requests
//! without pause; p50 and p99 of the queries in both, against servers that embed a request in pieces
//! of each `--piece-rows` and the reference that embeds each request whole, rounds interleaved. Also
//! the bulk client's texts/s alone and beside the queries (what the pieces cost it). `--streams 1,2`
//! runs the servers under test on a model with each number of sessions (the cores split between
//! them), one call in flight per session: with two, a query's call runs beside a bulk piece.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use lexembed_encoder::{BatchPolicy, Encoder, EncoderOptions, Prompt, SharedBatcher};
use lexembed_serve::{Limits, ServeState};

use super::median;

#[derive(Args, Debug)]
pub struct ServeBenchArgs {
    /// The texts (title and body of each row; `--limit` texts are sent at each level) and the model.
    #[command(flatten)]
    pub input: super::texts::CorpusArgs,
    /// Concurrent clients, one level per value.
    #[arg(long = "clients", value_delimiter = ',', default_values_t = [1, 8, 64])]
    pub clients: Vec<usize>,
    /// The overload level: this many clients against a queue of `--overload-queue` requests.
    #[arg(long, default_value_t = 64)]
    pub overload_clients: usize,
    #[arg(long, default_value_t = 4)]
    pub overload_queue: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Measure one-text queries beside a client sending requests of this many inputs (2048: OpenAI's
    /// limit) instead of the client levels.
    #[arg(long)]
    pub bulk: Option<usize>,
    /// Seconds of one-text queries per measurement (`--bulk`).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// The pieces of the servers under test (`--bulk`), one server per value; the reference embeds
    /// each request whole.
    #[arg(long, value_delimiter = ',', default_values_t = [1, lexembed_encoder::DEFAULT_PIECE_ROWS])]
    pub piece_rows: Vec<usize>,
    /// Model sessions of the servers under test (`--bulk`), one model per value, the cores split
    /// between its sessions, one queue lane per session; the reference runs on the first.
    #[arg(long, value_delimiter = ',', default_values_t = [1])]
    pub streams: Vec<usize>,
    #[arg(long)]
    pub json: bool,
}

/// One level's run: wall time, request latencies, answers by status.
#[derive(Debug, Default)]
struct Load {
    seconds: f64,
    latencies: Vec<f64>,
    ok: usize,
    refused: usize,
}

pub fn run(args: ServeBenchArgs) -> anyhow::Result<()> {
    if let Some(inputs) = args.bulk {
        return run_bulk(&args, inputs);
    }
    let texts = super::texts::load(&args.input.corpus(), args.input.limit)?;
    let model = args.input.model();
    let encoder = Arc::new(Encoder::open(&model, &EncoderOptions::default())?);
    let requests = request_bodies(&texts, &encoder.model().model_id);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let url = rt.block_on(start(
        encoder.clone(),
        served(BatchPolicy::default().max_queued),
    ))?;
    let tight = rt.block_on(start(encoder.clone(), served(args.overload_queue)))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let bare = || -> anyhow::Result<f64> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let t = Instant::now();
        encoder.encode(&refs, &Prompt::none())?;
        Ok(t.elapsed().as_secs_f64())
    };
    bare()?;
    rt.block_on(load(&client, &url, &requests, 8))?;
    let mut bare_s = Vec::new();
    let mut levels: Vec<Vec<Load>> = args.clients.iter().map(|_| Vec::new()).collect();
    for _ in 0..args.rounds {
        bare_s.push(bare()?);
        for (i, &n) in args.clients.iter().enumerate() {
            levels[i].push(rt.block_on(load(&client, &url, &requests, n))?);
        }
    }
    let overload = rt.block_on(load(&client, &tight, &requests, args.overload_clients))?;
    report(&args, &texts, median(bare_s), &levels, &overload)
}

/// `lexembed serve`'s queue policy, with room for `max_queued` requests.
fn served(max_queued: usize) -> BatchPolicy {
    BatchPolicy {
        max_queued,
        linger: Duration::from_millis(2),
        ..BatchPolicy::default()
    }
}

/// Serves the routes on a free local port; returns the embeddings URL.
async fn start(encoder: Arc<Encoder>, policy: BatchPolicy) -> anyhow::Result<String> {
    let state = Arc::new(ServeState {
        model_name: encoder.model().model_id.clone(),
        queue: SharedBatcher::start(encoder, policy),
        datasets: Default::default(),
        limits: Limits {
            // The bulk client's 2,048 long texts are over OpenAI's token bound: not what is measured.
            max_request_tokens: usize::MAX,
            ..Limits::default()
        },
        api_key: None,
        render_metrics: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/embeddings", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, lexembed_serve::router(state)).await });
    Ok(url)
}

/// The texts cut into requests of 1 to 32 texts (a fixed pseudo-random sequence), as JSON bodies
/// with their text counts.
fn request_bodies(texts: &[String], model: &str) -> Vec<(usize, String)> {
    let mut state = 0x2545_f491_u64;
    let mut out = Vec::new();
    let mut rest = texts;
    while !rest.is_empty() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let n = ((state >> 33) % 32 + 1) as usize;
        let (now, later) = rest.split_at(n.min(rest.len()));
        let body = serde_json::json!({"model": model, "input": now, "encoding_format": "base64"});
        out.push((now.len(), body.to_string()));
        rest = later;
    }
    out
}

/// Every request sent once by `clients` concurrent clients; a 429 is counted and not retried.
async fn load(
    client: &reqwest::Client,
    url: &str,
    requests: &[(usize, String)],
    clients: usize,
) -> anyhow::Result<Load> {
    let next = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(requests.to_vec());
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, next, requests) = (
                client.clone(),
                url.to_string(),
                next.clone(),
                requests.clone(),
            );
            tokio::spawn(async move {
                let mut mine = Load::default();
                while let Some((_, body)) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let t = Instant::now();
                    let response = client.post(&url).body(body.clone()).send().await?;
                    let status = response.status();
                    response.bytes().await?;
                    match status.as_u16() {
                        200 => {
                            mine.ok += 1;
                            mine.latencies.push(t.elapsed().as_secs_f64());
                        }
                        429 => mine.refused += 1,
                        other => anyhow::bail!("the server answered {other}"),
                    }
                }
                Ok(mine)
            })
        })
        .collect();
    let mut all = Load::default();
    for t in tasks {
        let mine = t.await??;
        all.ok += mine.ok;
        all.refused += mine.refused;
        all.latencies.extend(mine.latencies);
    }
    all.seconds = started.elapsed().as_secs_f64();
    Ok(all)
}

/// One `--bulk` measurement: the queries' latencies, and the bulk client's texts and seconds.
#[derive(Debug, Default)]
struct Beside {
    queries: Vec<f64>,
    bulk_texts: usize,
    bulk_seconds: f64,
}

fn run_bulk(args: &ServeBenchArgs, inputs: usize) -> anyhow::Result<()> {
    let corpus = args.input.corpus();
    let texts = super::texts::load(&corpus, args.input.limit)?;
    let titles = super::texts::load_fields(&corpus, args.input.limit, &["title".into()])?;
    anyhow::ensure!(
        !texts.is_empty() && !titles.is_empty(),
        "{} has no texts",
        corpus.display()
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let encoders = args
        .streams
        .iter()
        .map(|&s| {
            let s = s.max(1);
            let opts = EncoderOptions {
                streams: Some(s),
                intra_threads: Some((cores / s).max(1)),
                ..EncoderOptions::default()
            };
            Ok((s, Arc::new(Encoder::open(args.input.model(), &opts)?)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let Some((_, encoder)) = encoders.first().cloned() else {
        anyhow::bail!("--streams: no value");
    };
    let model = encoder.model().model_id.clone();
    let bulk: Vec<&String> = texts.iter().cycle().take(inputs).collect();
    let bulk =
        serde_json::json!({"model": model, "input": bulk, "encoding_format": "base64"}).to_string();
    let queries: Vec<String> = titles
        .iter()
        .map(|t| serde_json::json!({"model": model, "input": t}).to_string())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // (name, model, piece rows, lanes): each piece size on each model, then the reference.
    let mut servers: Vec<(String, Arc<Encoder>, usize, usize)> = Vec::new();
    for (s, model) in &encoders {
        for &p in &args.piece_rows {
            let name = match args.streams.len() {
                1 => format!("pieces of {p}"),
                _ => format!(
                    "pieces of {p}, {s} stream{}",
                    if *s == 1 { "" } else { "s" }
                ),
            };
            servers.push((name, model.clone(), p.max(1), *s));
        }
    }
    servers.push(("whole requests".into(), encoder.clone(), usize::MAX, 1));
    let mut urls = Vec::new();
    for (_, model, piece_rows, lanes) in &servers {
        let policy = BatchPolicy {
            piece_rows: *piece_rows,
            lanes: *lanes,
            ..served(BatchPolicy::default().max_queued)
        };
        urls.push(rt.block_on(start(model.clone(), policy))?);
    }
    let client = reqwest::Client::new();
    let window = Duration::from_secs(args.seconds.max(1));
    rt.block_on(beside(
        &client,
        &urls[0],
        &queries,
        None,
        Duration::from_secs(2),
    ))?;
    // Per server: [queries alone, queries beside bulk, bulk alone] over the rounds.
    let mut runs: Vec<[Vec<Beside>; 3]> = servers.iter().map(|_| Default::default()).collect();
    for _ in 0..args.rounds {
        for (url, run) in urls.iter().zip(&mut runs) {
            run[0].push(rt.block_on(beside(&client, url, &queries, None, window))?);
            run[1].push(rt.block_on(beside(&client, url, &queries, Some(&bulk), window))?);
            run[2].push(rt.block_on(beside(&client, url, &[], Some(&bulk), window))?);
        }
    }
    let names: Vec<String> = servers.into_iter().map(|(name, ..)| name).collect();
    report_bulk(args, inputs, &names, &runs)
}

/// Queries sent one after the other for `window` (at least one; none when `queries` is empty), beside
/// a client sending `bulk` without pause when given.
async fn beside(
    client: &reqwest::Client,
    url: &str,
    queries: &[String],
    bulk: Option<&String>,
    window: Duration,
) -> anyhow::Result<Beside> {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bulk_task = bulk.map(|body| {
        let (client, url, body, done) =
            (client.clone(), url.to_string(), body.clone(), done.clone());
        tokio::spawn(async move {
            let (mut texts, started) = (0, Instant::now());
            while !done.load(Ordering::Relaxed) {
                let response = client.post(&url).body(body.clone()).send().await?;
                anyhow::ensure!(response.status() == 200, "bulk: {}", response.status());
                let got: serde_json::Value = response.json().await?;
                texts += got["data"].as_array().map_or(0, Vec::len);
            }
            Ok((texts, started.elapsed().as_secs_f64()))
        })
    });
    if bulk_task.is_some() {
        tokio::time::sleep(Duration::from_millis(200)).await; // the bulk request is on the model
    }
    let mut out = Beside::default();
    let started = Instant::now();
    if queries.is_empty() {
        tokio::time::sleep(window).await;
    }
    for body in queries.iter().cycle() {
        if !out.queries.is_empty() && started.elapsed() >= window {
            break;
        }
        let t = Instant::now();
        let response = client.post(url).body(body.clone()).send().await?;
        anyhow::ensure!(response.status() == 200, "query: {}", response.status());
        response.bytes().await?;
        out.queries.push(t.elapsed().as_secs_f64());
    }
    done.store(true, Ordering::Relaxed);
    if let Some(task) = bulk_task {
        (out.bulk_texts, out.bulk_seconds) = task.await??;
    }
    Ok(out)
}

fn report_bulk(
    args: &ServeBenchArgs,
    inputs: usize,
    names: &[String],
    runs: &[[Vec<Beside>; 3]],
) -> anyhow::Result<()> {
    let stats = |rs: &[Beside]| {
        let mut lat: Vec<f64> = rs.iter().flat_map(|r| r.queries.clone()).collect();
        lat.sort_by(f64::total_cmp);
        let texts: usize = rs.iter().map(|r| r.bulk_texts).sum();
        let seconds: f64 = rs.iter().map(|r| r.bulk_seconds).sum();
        let rate = texts as f64 / seconds.max(1e-9);
        (
            lat.len(),
            percentile(&lat, 0.5) * 1e3,
            percentile(&lat, 0.99) * 1e3,
            rate,
        )
    };
    let mut rows = Vec::new();
    for (name, run) in names.iter().zip(runs) {
        let (_, a50, a99, _) = stats(&run[0]);
        let (n, b50, b99, rate) = stats(&run[1]);
        let (_, _, _, bulk_alone) = stats(&run[2]);
        rows.push(serde_json::json!({
            "server": name, "alone_p50_ms": a50, "alone_p99_ms": a99,
            "beside_bulk_queries": n, "beside_bulk_p50_ms": b50, "beside_bulk_p99_ms": b99,
            "p99_ratio": b99 / a99, "bulk_texts_per_s": rate, "bulk_alone_texts_per_s": bulk_alone,
        }));
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"bulk_inputs": inputs, "seconds": args.seconds, "rounds": args.rounds, "servers": rows})
        );
        return Ok(());
    }
    println!(
        "one-text queries for {} s beside a client sending {inputs}-input requests, {} rounds",
        args.seconds, args.rounds
    );
    for r in &rows {
        println!(
            "{:<16} alone p50 {:>6.1} ms p99 {:>6.1} ms | beside bulk ({} queries) p50 {:>8.1} ms p99 {:>8.1} ms | p99 x{:<6.1} | bulk {:>5.1} texts/s beside, {:>5.1} alone",
            r["server"].as_str().unwrap_or(""),
            r["alone_p50_ms"].as_f64().unwrap_or(f64::NAN),
            r["alone_p99_ms"].as_f64().unwrap_or(f64::NAN),
            r["beside_bulk_queries"],
            r["beside_bulk_p50_ms"].as_f64().unwrap_or(f64::NAN),
            r["beside_bulk_p99_ms"].as_f64().unwrap_or(f64::NAN),
            r["p99_ratio"].as_f64().unwrap_or(f64::NAN),
            r["bulk_texts_per_s"].as_f64().unwrap_or(f64::NAN),
            r["bulk_alone_texts_per_s"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn report(
    args: &ServeBenchArgs,
    texts: &[String],
    bare_s: f64,
    levels: &[Vec<Load>],
    overload: &Load,
) -> anyhow::Result<()> {
    let n = texts.len() as f64;
    let bare_rate = n / bare_s;
    let mut rows = Vec::new();
    for (&clients, runs) in args.clients.iter().zip(levels) {
        let seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
        let mut lat: Vec<f64> = runs.iter().flat_map(|r| r.latencies.clone()).collect();
        lat.sort_by(f64::total_cmp);
        let refused: usize = runs.iter().map(|r| r.refused).sum();
        let rate = n / median(seconds);
        rows.push(serde_json::json!({
            "clients": clients, "texts_per_s": rate, "vs_bare_encoder": rate / bare_rate,
            "p50_ms": percentile(&lat, 0.5) * 1e3, "p99_ms": percentile(&lat, 0.99) * 1e3,
            "refused_429": refused,
        }));
    }
    let over = serde_json::json!({
        "clients": args.overload_clients, "queue": args.overload_queue,
        "served": overload.ok, "refused_429": overload.refused,
    });
    if args.json {
        println!(
            "{}",
            serde_json::json!({"texts": texts.len(), "bare_encoder_texts_per_s": bare_rate, "levels": rows, "overload": over})
        );
        return Ok(());
    }
    println!(
        "lexembed serve: {} texts per level in requests of 1-32, median of {} rounds",
        texts.len(),
        args.rounds
    );
    println!("bare encoder      {bare_rate:>9.1} texts/s");
    for r in &rows {
        println!(
            "{:>3} clients       {:>9.1} texts/s  {:>5.1}% of the bare encoder  p50 {:>7.1} ms  p99 {:>7.1} ms  429s {}",
            r["clients"],
            r["texts_per_s"].as_f64().unwrap_or(f64::NAN),
            r["vs_bare_encoder"].as_f64().unwrap_or(f64::NAN) * 100.0,
            r["p50_ms"].as_f64().unwrap_or(f64::NAN),
            r["p99_ms"].as_f64().unwrap_or(f64::NAN),
            r["refused_429"],
        );
    }
    println!(
        "overload: {} clients, queue of {}: {} served, {} refused with 429",
        args.overload_clients, args.overload_queue, overload.ok, overload.refused
    );
    Ok(())
}
