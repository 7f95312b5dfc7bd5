//! `lexembed serve`: the model (and the Lance datasets it wrote) over HTTP. Parses arguments, loads
//! the model, checks every dataset against it, binds, and shuts down gracefully on SIGTERM/SIGINT
//! (in-flight requests finish); the routes live in `lexembed_serve`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lexembed_encoder::cli::EncoderArgs;
use lexembed_encoder::{BatchPolicy, ModelDir, SharedBatcher, piece_rows_for};
use lexembed_lance::schema::column_dim;
use lexembed_lance::{DatasetLocation, checked_query_prompt, vector_columns};
use lexembed_serve::{Limits, ServeState, ServedDataset};

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// A Lance dataset `/search` may read, as NAME=URI (repeatable); it must have been written by
    /// the served model.
    #[arg(long = "dataset", value_name = "NAME=URI", value_parser = parse_dataset)]
    pub datasets: Vec<(String, String)>,
    /// Address to listen on (`127.0.0.1:0` picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080", env = "LEXEMBED_HTTP_ADDR")]
    pub http_addr: String,
    /// The model name clients send in `model` (default: the model directory's model id).
    #[arg(long)]
    pub model_name: Option<String>,
    /// File holding the API key every request must bring as `Authorization: Bearer <key>` (except
    /// /health and /metrics). LEXEMBED_API_KEY sets the key itself.
    #[arg(long, value_name = "FILE", env = "LEXEMBED_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Texts per request, at most (OpenAI's limit: clients' default batches fit).
    #[arg(long, default_value_t = Limits::default().max_inputs)]
    pub max_inputs: usize,
    /// Tokens of one request's texts together, after truncation at the model's max length, at most
    /// (OpenAI's limit); a request over it gets a 400 naming both numbers.
    #[arg(long, default_value_t = Limits::default().max_request_tokens)]
    pub max_request_tokens: usize,
    /// Bytes per request body, at most.
    #[arg(long, default_value_t = Limits::default().max_request_bytes)]
    pub max_request_bytes: usize,
    /// Take token arrays in `input` (OpenAI) and `inputs` (TEI) as this model's own token ids: made
    /// with its tokenizer, special tokens included, at most its max length, given to the model as
    /// they are (no prompt). Off by default, when they get a 400: the arrays clients send unasked
    /// (LangChain's OpenAIEmbeddings sends tiktoken ids) mean nothing to this model.
    #[arg(long)]
    pub token_ids: bool,
    /// Requests waiting for or on the model at once; beyond that, requests get 429 with Retry-After.
    #[arg(long, default_value_t = BatchPolicy::default().max_queued)]
    pub max_queued: usize,
    /// How long the queue waits for more requests to batch with the first (milliseconds).
    #[arg(long, default_value_t = 2)]
    pub linger_ms: u64,
    /// Rows a request brings to one model call at most: a larger request (up to --max-inputs) is
    /// embedded in pieces this size, and the requests that fit in one get calls of their own between
    /// them, so one bulk client does not stall single queries. Default: 1 on a CPU (its time grows
    /// with every row), 64 on a GPU. Larger: a query beside a bulk request waits longer.
    #[arg(long)]
    pub piece_rows: Option<usize>,
    /// On SIGTERM, how long in-flight requests may take before the server exits anyway (seconds).
    #[arg(long, default_value_t = 30)]
    pub shutdown_grace: u64,
}

fn parse_dataset(s: &str) -> Result<(String, String), String> {
    let (name, uri) = s.split_once('=').ok_or("expected NAME=URI")?;
    if name.is_empty() || uri.is_empty() {
        return Err("expected NAME=URI".into());
    }
    Ok((name.to_string(), uri.to_string()))
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    super::metrics::install(&[])?;
    lexembed_serve::describe_metrics();
    let encoder = Arc::new(args.encoder.open(&[])?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let model_id = encoder.model().model_id.clone();
    let datasets = rt.block_on(open_datasets(&args.datasets, encoder.model()))?;
    let policy = BatchPolicy {
        linger: Duration::from_millis(args.linger_ms),
        max_queued: args.max_queued,
        piece_rows: args
            .piece_rows
            .unwrap_or_else(|| piece_rows_for(&encoder.provider()))
            .max(1),
        // One call in flight per model session: with --streams 2 a query runs beside a bulk piece.
        lanes: encoder.streams(),
        ..BatchPolicy::default()
    };
    let state = Arc::new(ServeState {
        queue: SharedBatcher::start(encoder, policy),
        model_name: args.model_name.clone().unwrap_or(model_id),
        datasets,
        limits: Limits {
            max_inputs: args.max_inputs,
            max_request_tokens: args.max_request_tokens,
            max_request_bytes: args.max_request_bytes,
            token_ids: args.token_ids,
            ..Limits::default()
        },
        api_key: api_key(args.api_key_file.as_deref())?,
        render_metrics: Some(Arc::new(super::metrics::render)),
    });
    let grace = Duration::from_secs(args.shutdown_grace);
    rt.block_on(serve(&args.http_addr, state, grace))
}

/// Each `NAME=URI`, opened and checked against the served model now rather than at the first search.
async fn open_datasets(
    named: &[(String, String)],
    model: &ModelDir,
) -> anyhow::Result<BTreeMap<String, ServedDataset>> {
    let mut out = BTreeMap::new();
    for (name, uri) in named {
        let location = DatasetLocation::new(uri);
        let ds = location
            .open()
            .await
            .with_context(|| format!("--dataset {name}={uri}"))?;
        checked_query_prompt(&ds, model).with_context(|| format!("--dataset {name}={uri}"))?;
        let dims = lexembed_encoder::widest_first(
            vector_columns(&ds).iter().filter_map(|c| column_dim(c)),
        );
        anyhow::ensure!(
            !dims.is_empty(),
            "--dataset {name}={uri}: no vector column (emb_<dim>)"
        );
        let served = ServedDataset {
            name: name.clone(),
            location,
            dims,
        };
        anyhow::ensure!(
            out.insert(name.clone(), served).is_none(),
            "--dataset {name} is given twice"
        );
    }
    Ok(out)
}

fn api_key(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let key = match file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("--api-key-file {}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("LEXEMBED_API_KEY").ok(),
    };
    match key {
        Some(k) if k.is_empty() => anyhow::bail!("the API key is empty"),
        k => Ok(k),
    }
}

async fn serve(addr: &str, state: Arc<ServeState>, grace: Duration) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    // The first line on stdout, for scripts and tests that asked for port 0.
    println!("lexembed serve: listening on http://{bound}");
    tracing::info!(%bound, model = %state.model_name, datasets = state.datasets.len(), "serving");
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        stop_signal().await;
        tracing::info!("stopping: finishing in-flight requests");
        let _ = stopping_tx.send(true);
    };
    let server = axum::serve(listener, lexembed_serve::router(state))
        .with_graceful_shutdown(shutdown)
        .into_future();
    // In-flight requests get `grace` after the signal; then the process exits anyway.
    let mut stopping = stopping_rx;
    let deadline = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("serving HTTP")?,
        () = deadline => tracing::warn!("requests still running after the grace period: exiting"),
    }
    Ok(())
}

/// SIGTERM (Kubernetes) or SIGINT (a terminal).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!("no SIGTERM handler ({e}): stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
