//! One shared batcher per model: the only place SQL calls the encoder.
//!
//! DataFusion evaluates `embed()` per partition and per (small) record batch, concurrently. Each call
//! sends its texts over a channel and awaits a oneshot reply; one background thread owns the encoder,
//! takes the first waiting request, gathers more until `max_rows` or `linger` passes, runs them as one
//! encoder call (which cuts token-budget batches itself) and answers each caller with its own rows.
//! The batching policy is `gather`, one function.
//!
//! The queue is bounded: at most `max_queued` requests wait or run at once, and a caller beyond that
//! waits (asynchronously) for room, so a query over a huge table cannot pile its texts up in memory.
//! An encoder call that panics fails the requests of that call only; the thread goes on serving.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use lexembed_encoder::{Embeddings, Encoder};
use tokio::sync::{Semaphore, oneshot};
use tracing::{debug, error};

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
    /// Requests queued or being embedded at once, at most; further callers wait for room.
    pub max_queued: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_rows: 1024,
            linger: Duration::from_millis(5),
            max_queued: 64,
        }
    }
}

/// What the batching thread calls: the encoder, in production.
type EncodeFn = Box<dyn Fn(&[&str]) -> Result<Embeddings, String> + Send>;

/// Handle to a model's batching thread; cheap to clone, shared by every `embed()` of a session.
#[derive(Clone)]
pub struct SharedBatcher {
    tx: Sender<Request>,
    room: Arc<Semaphore>,
    encoder: Arc<Encoder>,
}

impl SharedBatcher {
    pub fn start(encoder: Arc<Encoder>, policy: BatchPolicy) -> Self {
        let worker = encoder.clone();
        let encode =
            Box::new(move |texts: &[&str]| worker.encode(texts).map_err(|e| e.to_string()));
        Self::start_with(encoder, encode, policy)
    }

    /// `start`, with the thread calling `encode` instead of the encoder (tests put a fault in it).
    fn start_with(encoder: Arc<Encoder>, encode: EncodeFn, policy: BatchPolicy) -> Self {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("lexembed-batcher".into())
            .spawn(move || run(&encode, &rx, policy))
            .map(|_| ())
            .unwrap_or_else(|e| error!("cannot start the batcher thread: {e}"));
        Self {
            tx,
            room: Arc::new(Semaphore::new(policy.max_queued.max(1))),
            encoder,
        }
    }

    pub fn encoder(&self) -> &Arc<Encoder> {
        &self.encoder
    }

    /// Full-width embeddings of `texts`, computed together with whatever else is waiting.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Embeddings, String> {
        // Held until the reply arrives: the permit is the request's place in the queue.
        let _place = self
            .room
            .acquire()
            .await
            .map_err(|_| "the batcher is closed".to_string())?;
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

/// The encoder's answer for `texts`; a panic inside it becomes an error for this call only.
fn encode_guarded(encode: &EncodeFn, texts: &[&str]) -> Result<Embeddings, String> {
    catch_unwind(AssertUnwindSafe(|| encode(texts))).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        error!(rows = texts.len(), "the encoder panicked: {what}");
        Err(format!("the encoder panicked: {what}"))
    })
}

fn run(encode: &EncodeFn, rx: &Receiver<Request>, policy: BatchPolicy) {
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
        match encode_guarded(encode, &texts) {
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
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;

    fn tiny() -> Arc<Encoder> {
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../encoder/tests/fixtures/tiny-xlmr");
        Arc::new(Encoder::open(dir, &Default::default()).unwrap())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// The real encoder, except that a text "panic" makes the call panic, as a bug in a model
    /// runtime would. Before, the panic killed the thread and every later `embed()` failed.
    #[test]
    fn an_encoder_panic_fails_its_call_and_later_calls_work() {
        let encoder = tiny();
        let real = encoder.clone();
        let encode: EncodeFn = Box::new(move |texts: &[&str]| {
            assert!(!texts.contains(&"panic"), "a fault in the model runtime");
            real.encode(texts).map_err(|e| e.to_string())
        });
        let batcher = SharedBatcher::start_with(encoder.clone(), encode, BatchPolicy::default());
        let rt = runtime();
        let err = rt
            .block_on(batcher.embed(vec!["plazo".into(), "panic".into()]))
            .unwrap_err();
        assert!(
            err.contains("the encoder panicked: a fault in the model runtime"),
            "{err}"
        );
        for _ in 0..2 {
            let got = rt
                .block_on(batcher.embed(vec!["plazo de diez días".into()]))
                .unwrap();
            let want = encoder.encode(&["plazo de diez días"]).unwrap();
            assert_eq!(got.values, want.values);
        }
    }

    /// With room for two requests, no encoder call ever gathers more than two, however many
    /// callers wait; every caller still gets its own rows. Unbounded, the calls held back while
    /// the encoder is busy all piled into the next gather.
    #[test]
    fn the_queue_holds_at_most_max_queued_requests() {
        let encoder = tiny();
        let real = encoder.clone();
        let gathered = Arc::new(Mutex::new(Vec::new()));
        let seen = gathered.clone();
        let encode: EncodeFn = Box::new(move |texts: &[&str]| {
            seen.lock().unwrap().push(texts.len());
            // A slow model: the other callers arrive while it runs.
            std::thread::sleep(Duration::from_millis(30));
            real.encode(texts).map_err(|e| e.to_string())
        });
        let policy = BatchPolicy {
            max_rows: 1024,
            linger: Duration::from_millis(20),
            max_queued: 2,
        };
        let batcher = SharedBatcher::start_with(encoder.clone(), encode, policy);
        let rt = runtime();
        let texts: Vec<String> = (0..12).map(|i| format!("artículo {i}")).collect();
        let results = rt.block_on(async {
            let calls = texts.iter().map(|t| {
                let b = batcher.clone();
                let t = t.clone();
                tokio::spawn(async move { b.embed(vec![t]).await })
            });
            futures::future::join_all(calls).await
        });
        for (t, r) in texts.iter().zip(results) {
            let got = r.unwrap().unwrap();
            assert_eq!(
                got.values,
                encoder.encode(&[t.as_str()]).unwrap().values,
                "{t}"
            );
        }
        let gathered = gathered.lock().unwrap();
        assert_eq!(gathered.iter().sum::<usize>(), 12);
        assert!(gathered.iter().all(|&n| n <= 2), "{gathered:?}");
    }
}
