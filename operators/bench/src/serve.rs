//! `lexembed bench serve`: `lexembed serve`'s routes in this process on a local port, loaded by N
//! concurrent clients (1, 8, 64 by default) each sending `/v1/embeddings` requests of 1–32 BOE texts,
//! against the bare encoder over the same texts, rounds interleaved. Reports texts/s per level and its
//! ratio to the bare encoder, p50/p99 request latency, and an overload level (many clients, a small
//! queue) where the server answers 429 instead of queueing without bound.

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
    let texts = super::texts::load(&args.input.corpus(), args.input.limit)?;
    let model = args.input.model();
    let encoder = Arc::new(Encoder::open(&model, &EncoderOptions::default())?);
    let requests = request_bodies(&texts, &encoder.model().model_id);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let url = rt.block_on(start(encoder.clone(), BatchPolicy::default().max_queued))?;
    let tight = rt.block_on(start(encoder.clone(), args.overload_queue))?;
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

/// Serves the routes on a free local port; returns the embeddings URL.
async fn start(encoder: Arc<Encoder>, max_queued: usize) -> anyhow::Result<String> {
    let policy = BatchPolicy {
        max_queued,
        linger: Duration::from_millis(2),
        ..BatchPolicy::default()
    };
    let state = Arc::new(ServeState {
        model_name: encoder.model().model_id.clone(),
        queue: SharedBatcher::start(encoder, policy),
        datasets: Default::default(),
        limits: Limits::default(),
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
