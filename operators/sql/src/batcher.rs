//! One shared batcher per model: the only place SQL calls the encoder.
//!
//! DataFusion evaluates `embed()` per partition and per (small) record batch, concurrently. Each call
//! sends its texts over a channel and awaits a oneshot reply; one background thread owns the encoder,
//! takes the first waiting request, gathers more until `max_rows` or `linger` passes, runs them as one
//! encoder call (which cuts token-budget batches itself) and answers each caller with its own rows.
//! The batching policy is `gather`, one function.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use lexembed_encoder::{Embeddings, Encoder};
use tokio::sync::oneshot;
use tracing::debug;

/// Texts from one `embed()` call and where to send their full-width vectors.
struct Request {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Embeddings, String>>,
}

/// When a gathered batch is cut.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Rows per encoder call at most (requests are never split).
    pub max_rows: usize,
    /// How long to wait for more requests once one is waiting.
    pub linger: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_rows: 1024,
            linger: Duration::from_millis(5),
        }
    }
}

/// Handle to a model's batching thread; cheap to clone, shared by every `embed()` of a session.
#[derive(Clone)]
pub struct SharedBatcher {
    tx: Sender<Request>,
    encoder: Arc<Encoder>,
}

impl SharedBatcher {
    pub fn start(encoder: Arc<Encoder>, policy: BatchPolicy) -> Self {
        let (tx, rx) = channel::<Request>();
        let worker = encoder.clone();
        std::thread::Builder::new()
            .name("lexembed-batcher".into())
            .spawn(move || run(&worker, &rx, policy))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the batcher thread: {e}"));
        Self { tx, encoder }
    }

    pub fn encoder(&self) -> &Arc<Encoder> {
        &self.encoder
    }

    /// Full-width embeddings of `texts`, computed together with whatever else is waiting.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Embeddings, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { texts, reply })
            .map_err(|_| "the batcher thread has stopped".to_string())?;
        rx.await
            .map_err(|_| "the batcher dropped the request".to_string())?
    }
}

/// Takes the first request and whatever arrives within `linger`, up to `max_rows` rows.
fn gather(rx: &Receiver<Request>, first: Request, policy: BatchPolicy) -> Vec<Request> {
    let mut rows = first.texts.len();
    let mut batch = vec![first];
    let deadline = Instant::now() + policy.linger;
    while rows < policy.max_rows {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(r) => {
                rows += r.texts.len();
                batch.push(r);
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    batch
}

fn run(encoder: &Encoder, rx: &Receiver<Request>, policy: BatchPolicy) {
    while let Ok(first) = rx.recv() {
        let batch = gather(rx, first, policy);
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|r| r.texts.iter().map(String::as_str))
            .collect();
        debug!(
            requests = batch.len(),
            rows = texts.len(),
            "embedding a gathered batch"
        );
        match encoder.encode(&texts) {
            Ok(all) => {
                let mut at = 0;
                for r in batch {
                    let n = r.texts.len();
                    let values = all.values[at * all.dim..(at + n) * all.dim].to_vec();
                    at += n;
                    let _ = r.reply.send(Ok(Embeddings {
                        dim: all.dim,
                        values,
                    }));
                }
            }
            Err(e) => {
                for r in batch {
                    let _ = r.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
