//! One shared request queue per model, for callers that each bring a few texts at once: SQL's
//! `embed()` (DataFusion calls it per partition and per small record batch, concurrently) and
//! `lexembed serve`'s HTTP requests.
//!
//! Each call sends its texts over a channel and awaits a oneshot reply; one background thread owns
//! the encoder, takes the first waiting request, gathers more until `max_rows` or `linger` passes,
//! and runs encoder calls (which cut token-budget batches themselves) until every gathered request is
//! answered with its own rows and token counts. A request larger than `piece_rows` goes in pieces,
//! and the requests that fit in a piece get calls of their own between them: a one-text query that
//! arrives while a client's 2,048 texts are embedded waits for one piece, not for the 2,048 (the
//! head-of-line blocking `bench serve --bulk` measures). The policy is `plan_call`, one function.
//!
//! The queue is bounded: at most `max_queued` requests wait or run at once. `embed` waits
//! (asynchronously) for room, so a query over a huge table cannot pile its texts up in memory;
//! `try_embed` refuses at once (a server answers 429). An encoder call that panics fails the requests
//! of that call only; the thread goes on serving.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, TryAcquireError, oneshot};
use tracing::{debug, error};

use crate::encoder::{Embeddings, Encoder};
use crate::error::EncoderError;
use crate::prompt::Prompt;

/// Texts from one call and where to send their vectors.
struct Request {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Embedded, QueueError>>,
}

/// One call's answer: full-width vectors in input order and what the tokenizer made of each text.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub embeddings: Embeddings,
    /// Tokens the model saw per text (special tokens included, after truncation).
    pub tokens: Vec<usize>,
    /// Whether each text was cut at the model's max length.
    pub truncated: Vec<bool>,
}

/// Why a gathered batch got no vectors (every call with rows in it fails with this).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EncodeFailure {
    /// The encoder refused or failed (shared by the calls of the batch, hence the `Arc`).
    #[error(transparent)]
    Model(Arc<EncoderError>),
    /// The encoder panicked; the batching thread caught it and goes on.
    #[error("the encoder panicked: {0}")]
    Panicked(String),
}

/// Why a call got no vectors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// `max_queued` requests are already waiting or running (`try_embed` only).
    #[error("the queue is full ({0} requests waiting or running): retry later")]
    Full(usize),
    #[error("the embedding queue has stopped")]
    Closed,
    /// The encoder failed (or panicked) on the gathered batch this call was part of.
    #[error("{0}")]
    Encoder(EncodeFailure),
}

/// When a gathered batch is cut.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Rows per encoder call at most.
    pub max_rows: usize,
    /// Rows a request brings to one encoder call at most: larger requests go in pieces, between which
    /// the requests that fit in a piece are served (`piece_rows_for` the provider).
    pub piece_rows: usize,
    /// How long to wait for more requests once one is waiting.
    pub linger: Duration,
    /// Requests queued or being embedded at once, at most; further callers wait for room.
    pub max_queued: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_rows: 1024,
            piece_rows: DEFAULT_PIECE_ROWS,
            linger: Duration::from_millis(5),
            max_queued: 64,
        }
    }
}

impl BatchPolicy {
    /// Requests embedded whole (no pieces): for callers whose requests are all bulk, such as SQL's
    /// `embed()` (DataFusion batches of 256 rows from every partition), where pieces only cut the
    /// encoder's calls short (`lexembed bench sql`: +14% over the encoder alone with pieces of 32 rows,
    /// BENCHMARKS.md "SQL").
    pub fn whole_requests() -> Self {
        let default = Self::default();
        Self {
            piece_rows: default.max_rows,
            ..default
        }
    }
}

/// A large request's piece: what a query beside it waits for at most, besides its own call.
pub const DEFAULT_PIECE_ROWS: usize = 32;

/// The piece for a provider. A CPU's time grows with every row, so one row: a query beside a
/// 2,048-input client waits for one text's call (measured on 2 cores: p99 x2.7 its p99 alone, against
/// x1,771 with requests embedded whole; the bulk client alone loses 9% to pieces this small,
/// BENCHMARKS.md "Serving"). A GPU's call takes about as long for 64 rows as for one (not measured
/// here: no GPU was lent).
pub fn piece_rows_for(provider: &crate::runtime::Provider) -> usize {
    match provider {
        crate::runtime::Provider::Cpu => 1,
        _ => 64,
    }
}

/// What the batching thread calls: the encoder, in production.
type EncodeFn = Box<dyn Fn(&[&str]) -> crate::Result<Embedded> + Send>;

/// Tokenizes `texts` once with `prompt` before each, keeping the counts, and embeds the tokens.
pub fn embed_counted(
    encoder: &Encoder,
    texts: &[&str],
    prompt: &Prompt,
) -> crate::Result<Embedded> {
    let counted = encoder.tokenizer().encode_counted(texts, prompt)?;
    let tokens = counted.iter().map(|(t, _)| t.0.len()).collect();
    let truncated = counted.iter().map(|&(_, cut)| cut).collect();
    let ids = counted.into_iter().map(|(t, _)| t).collect();
    Ok(Embedded {
        embeddings: encoder.encode_tokens(ids)?,
        tokens,
        truncated,
    })
}

/// Handle to a model's batching thread; cheap to clone, shared by every caller of the model.
#[derive(Clone)]
pub struct SharedBatcher {
    tx: Sender<Request>,
    room: Arc<Semaphore>,
    max_queued: usize,
    encoder: Arc<Encoder>,
}

impl SharedBatcher {
    pub fn start(encoder: Arc<Encoder>, policy: BatchPolicy) -> Self {
        let worker = encoder.clone();
        let encode = Box::new(move |texts: &[&str]| {
            // Callers' prompts are already in the texts (`prompted`).
            embed_counted(&worker, texts, &Prompt::none())
        });
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
        let max_queued = policy.max_queued.max(1);
        Self {
            tx,
            room: Arc::new(Semaphore::new(max_queued)),
            max_queued,
            encoder,
        }
    }

    pub fn encoder(&self) -> &Arc<Encoder> {
        &self.encoder
    }

    /// Full-width embeddings of `texts` with `prompt` before each, computed together with whatever
    /// else is waiting (other callers' prompts may differ); waits for room in the queue. Token counts
    /// include the prompt.
    pub async fn embed(&self, texts: Vec<String>, prompt: &Prompt) -> Result<Embedded, QueueError> {
        // Held until the reply arrives: the permit is the request's place in the queue.
        let _place = self.room.acquire().await.map_err(|_| QueueError::Closed)?;
        self.send(prompted(texts, prompt)).await
    }

    /// `embed`, or `QueueError::Full` at once when the queue has no room.
    pub async fn try_embed(
        &self,
        texts: Vec<String>,
        prompt: &Prompt,
    ) -> Result<Embedded, QueueError> {
        let _place = self.room.try_acquire().map_err(|e| match e {
            TryAcquireError::NoPermits => QueueError::Full(self.max_queued),
            TryAcquireError::Closed => QueueError::Closed,
        })?;
        self.send(prompted(texts, prompt)).await
    }

    /// Requests that may wait or run at once.
    pub fn capacity(&self) -> usize {
        self.max_queued
    }

    /// Requests waiting or running now.
    pub fn queued(&self) -> usize {
        self.max_queued - self.room.available_permits()
    }

    async fn send(&self, texts: Vec<String>) -> Result<Embedded, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { texts, reply })
            .map_err(|_| QueueError::Closed)?;
        rx.await.map_err(|_| QueueError::Closed)?
    }
}

/// The texts with the prompt before each; as they are without one.
fn prompted(texts: Vec<String>, prompt: &Prompt) -> Vec<String> {
    match prompt.text() {
        None => texts,
        Some(_) => texts.iter().map(|t| prompt.apply(t)).collect(),
    }
}

/// A request being answered: the rows embedded so far, in order.
struct InProgress {
    request: Request,
    done: usize,
    values: Vec<f32>,
    tokens: Vec<usize>,
    truncated: Vec<bool>,
}

impl InProgress {
    fn new(request: Request) -> Self {
        Self {
            request,
            done: 0,
            values: Vec::new(),
            tokens: Vec::new(),
            truncated: Vec::new(),
        }
    }

    fn left(&self) -> usize {
        self.request.texts.len() - self.done
    }

    /// Takes the call's rows for this request (`at..at + rows` of `all`); true once it is complete.
    fn take(&mut self, all: &Embedded, at: usize, rows: usize) -> bool {
        let dim = all.embeddings.dim;
        let range = at..at + rows;
        self.values
            .extend_from_slice(&all.embeddings.values[range.start * dim..range.end * dim]);
        self.tokens.extend_from_slice(&all.tokens[range.clone()]);
        self.truncated.extend_from_slice(&all.truncated[range]);
        self.done += rows;
        self.left() == 0
    }

    fn answer(self, dim: usize) {
        let _ = self.request.reply.send(Ok(Embedded {
            embeddings: Embeddings {
                dim,
                values: self.values,
            },
            tokens: self.tokens,
            truncated: self.truncated,
        }));
    }
}

/// Waits for a first request when none is in progress, then takes whatever arrives within `linger`
/// up to `max_rows` rows; with requests in progress, takes only what has already arrived. False once
/// every sender is gone and nothing is left.
fn gather(rx: &Receiver<Request>, waiting: &mut Vec<InProgress>, policy: BatchPolicy) -> bool {
    if waiting.is_empty() {
        match rx.recv() {
            Ok(first) => waiting.push(InProgress::new(first)),
            Err(_) => return false,
        }
        let mut rows = waiting[0].left();
        let deadline = Instant::now() + policy.linger;
        while rows < policy.max_rows {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => {
                    rows += r.texts.len();
                    waiting.push(InProgress::new(r));
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
    } else {
        waiting.extend(rx.try_iter().map(InProgress::new));
    }
    true
}

/// Which requests the next call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// The requests that fit in a piece, whole.
    Small,
    /// A piece of each larger request.
    Large,
}

/// The next encoder call: (index in `waiting`, rows) pairs, in the order their rows are sent (indices
/// ascending), and whose turn it was. The requests that fit in a piece get calls of their own, whole, in arrival
/// order; larger ones a piece each. The turns alternate while both wait, so a query waits for at most
/// one piece and a bulk request is not starved by a stream of queries. `max_rows` rows per call.
fn plan_call(
    waiting: &[InProgress],
    policy: BatchPolicy,
    last: Turn,
) -> (Vec<(usize, usize)>, Turn) {
    let piece = policy.piece_rows.max(1);
    let has_small = waiting.iter().any(|w| w.left() <= piece);
    let has_large = waiting.iter().any(|w| w.left() > piece);
    let turn = match (has_small, has_large) {
        (true, true) if last == Turn::Small => Turn::Large,
        (true, _) => Turn::Small,
        _ => Turn::Large,
    };
    let mut room = policy.max_rows.max(1);
    let mut call = Vec::new();
    for (i, w) in waiting.iter().enumerate() {
        if (w.left() <= piece) != (turn == Turn::Small) {
            continue;
        }
        let rows = w.left().min(piece).min(room);
        call.push((i, rows));
        room -= rows;
        if room == 0 {
            break;
        }
    }
    (call, turn)
}

/// The encoder's answer for `texts`; a panic inside it becomes an error for this call only.
fn encode_guarded(encode: &EncodeFn, texts: &[&str]) -> Result<Embedded, EncodeFailure> {
    let called = catch_unwind(AssertUnwindSafe(|| encode(texts)));
    called
        .map_err(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            error!(rows = texts.len(), "the encoder panicked: {what}");
            EncodeFailure::Panicked(what)
        })?
        .map_err(|e| EncodeFailure::Model(Arc::new(e)))
}

fn run(encode: &EncodeFn, rx: &Receiver<Request>, policy: BatchPolicy) {
    let mut waiting: Vec<InProgress> = Vec::new();
    let mut last = Turn::Large;
    while gather(rx, &mut waiting, policy) {
        let (call, turn) = plan_call(&waiting, policy, last);
        last = turn;
        let texts: Vec<&str> = call
            .iter()
            .flat_map(|&(i, rows)| {
                let w = &waiting[i];
                w.request.texts[w.done..w.done + rows]
                    .iter()
                    .map(String::as_str)
            })
            .collect();
        debug!(
            requests = call.len(),
            rows = texts.len(),
            waiting = waiting.len(),
            "embedding a gathered batch"
        );
        match encode_guarded(encode, &texts) {
            Ok(all) => {
                let mut at = 0;
                let mut finished = Vec::new();
                for &(i, rows) in &call {
                    if waiting[i].take(&all, at, rows) {
                        finished.push(i);
                    }
                    at += rows;
                }
                for w in take_out(&mut waiting, &finished) {
                    w.answer(all.embeddings.dim);
                }
            }
            Err(e) => {
                // Every request with rows in the failed call fails as a whole.
                let failed: Vec<usize> = call.iter().map(|&(i, _)| i).collect();
                for w in take_out(&mut waiting, &failed) {
                    let _ = w.request.reply.send(Err(QueueError::Encoder(e.clone())));
                }
            }
        }
    }
}

/// Removes the requests at `indices` (ascending) from `waiting`, the others keeping their order.
fn take_out(waiting: &mut Vec<InProgress>, indices: &[usize]) -> Vec<InProgress> {
    indices.iter().rev().map(|&i| waiting.remove(i)).collect()
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
        let none = Prompt::none();
        let real = encoder.clone();
        let encode: EncodeFn = Box::new(move |texts: &[&str]| {
            assert!(!texts.contains(&"panic"), "a fault in the model runtime");
            embed_counted(&real, texts, &Prompt::none())
        });
        let batcher = SharedBatcher::start_with(encoder.clone(), encode, BatchPolicy::default());
        let rt = runtime();
        let err = rt
            .block_on(batcher.embed(vec!["plazo".into(), "panic".into()], &none))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the encoder panicked: a fault in the model runtime"),
            "{err}"
        );
        for _ in 0..2 {
            let got = rt
                .block_on(batcher.embed(vec!["plazo de diez días".into()], &none))
                .unwrap();
            let want = encoder.encode(&["plazo de diez días"], &none).unwrap();
            assert_eq!(got.embeddings.values, want.values);
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
            embed_counted(&real, texts, &Prompt::none())
        });
        let policy = BatchPolicy {
            linger: Duration::from_millis(20),
            max_queued: 2,
            ..BatchPolicy::default()
        };
        let batcher = SharedBatcher::start_with(encoder.clone(), encode, policy);
        let rt = runtime();
        let texts: Vec<String> = (0..12).map(|i| format!("artículo {i}")).collect();
        let results = rt.block_on(async {
            let calls = texts.iter().map(|t| {
                let b = batcher.clone();
                let t = t.clone();
                tokio::spawn(async move { b.embed(vec![t], &Prompt::none()).await })
            });
            futures::future::join_all(calls).await
        });
        for (t, r) in texts.iter().zip(results) {
            let got = r.unwrap().unwrap();
            assert_eq!(
                got.embeddings.values,
                encoder
                    .encode(&[t.as_str()], &Prompt::none())
                    .unwrap()
                    .values,
                "{t}"
            );
        }
        let gathered = gathered.lock().unwrap();
        assert_eq!(gathered.iter().sum::<usize>(), 12);
        assert!(gathered.iter().all(|&n| n <= 2), "{gathered:?}");
    }

    /// `try_embed` answers `Full` while `max_queued` calls hold the queue, instead of waiting; once
    /// they are answered it takes calls again. Token counts and truncation come back per text, the
    /// prompt included, and the vectors are those of the prompted texts.
    #[test]
    fn try_embed_refuses_when_full_and_counts_tokens() {
        let encoder = tiny();
        let real = encoder.clone();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let gate = Mutex::new((started_tx, go_rx));
        let encode: EncodeFn = Box::new(move |texts: &[&str]| {
            if texts.contains(&"hold") {
                let gate = gate.lock().unwrap();
                gate.0.send(()).unwrap();
                gate.1.recv().unwrap();
            }
            embed_counted(&real, texts, &Prompt::none())
        });
        let policy = BatchPolicy {
            max_queued: 1,
            ..BatchPolicy::default()
        };
        let batcher = SharedBatcher::start_with(encoder.clone(), encode, policy);
        let rt = runtime();
        let held = rt.spawn({
            let b = batcher.clone();
            async move { b.try_embed(vec!["hold".into()], &Prompt::none()).await }
        });
        started_rx.recv().unwrap();
        assert_eq!(batcher.queued(), 1);
        let refused = rt.block_on(batcher.try_embed(vec!["plazo".into()], &Prompt::none()));
        assert!(matches!(refused, Err(QueueError::Full(1))), "{refused:?}");
        go_tx.send(()).unwrap();
        rt.block_on(held).unwrap().unwrap();
        let long = "plazo ".repeat(5000);
        let query = Prompt::literal("query: ");
        let got = rt
            .block_on(batcher.try_embed(vec!["plazo".into(), long.clone()], &query))
            .unwrap();
        let ids = encoder.tokenize(&["plazo", long.as_str()], &query).unwrap();
        let bare = encoder.tokenize(&["plazo"], &Prompt::none()).unwrap();
        assert!(
            ids[0].0.len() > bare[0].0.len(),
            "the prompt's tokens count"
        );
        assert_eq!(got.tokens, vec![ids[0].0.len(), ids[1].0.len()]);
        assert_eq!(got.truncated, vec![false, true]);
        assert_eq!(
            got.embeddings.values,
            encoder
                .encode(&["plazo", long.as_str()], &query)
                .unwrap()
                .values
        );
    }

    /// A one-text request that arrives while a 40-text one is being embedded in pieces of 4 is
    /// answered before the large one finishes, in a call of its own; both get the
    /// vectors the encoder gives them alone. Before, the large request went as one call and the
    /// small one waited for all of it.
    #[test]
    fn a_small_request_is_not_stuck_behind_a_large_one() {
        let encoder = tiny();
        let real = encoder.clone();
        let calls = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
        let seen = calls.clone();
        let encode: EncodeFn = Box::new(move |texts: &[&str]| {
            seen.lock()
                .unwrap()
                .push(texts.iter().map(|t| t.to_string()).collect());
            std::thread::sleep(Duration::from_millis(20)); // a slow model
            embed_counted(&real, texts, &Prompt::none())
        });
        let policy = BatchPolicy {
            piece_rows: 4,
            linger: Duration::from_millis(1),
            ..BatchPolicy::default()
        };
        let batcher = SharedBatcher::start_with(encoder.clone(), encode, policy);
        let rt = runtime();
        let large: Vec<String> = (0..40)
            .map(|i| format!("artículo {i} del reglamento"))
            .collect();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (big, small) = rt.block_on(async {
            let big = tokio::spawn({
                let (b, texts, order) = (batcher.clone(), large.clone(), order.clone());
                async move {
                    let got = b.embed(texts, &Prompt::none()).await;
                    order.lock().unwrap().push("large");
                    got
                }
            });
            tokio::time::sleep(Duration::from_millis(50)).await; // a few pieces in
            let got = batcher.embed(vec!["plazo".into()], &Prompt::none()).await;
            order.lock().unwrap().push("small");
            (big.await.unwrap().unwrap(), got.unwrap())
        });
        assert_eq!(*order.lock().unwrap(), ["small", "large"]);
        let calls = calls.lock().unwrap();
        let with_small = calls
            .iter()
            .find(|c| c.contains(&"plazo".to_string()))
            .unwrap();
        assert_eq!(with_small, &["plazo"], "the query has a call of its own");
        assert!(calls.iter().all(|c| c.len() <= 4), "{calls:?}");
        let refs: Vec<&str> = large.iter().map(String::as_str).collect();
        let want = encoder.encode(&refs, &Prompt::none()).unwrap();
        assert_eq!(big.embeddings.values.len(), want.values.len());
        for (g, w) in big.embeddings.values.iter().zip(&want.values) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        assert_eq!(big.tokens.len(), 40);
        let alone = encoder.encode(&["plazo"], &Prompt::none()).unwrap();
        for (g, w) in small.embeddings.values.iter().zip(&alone.values) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    /// Requests waiting in the queue, of these many texts each (nobody listens for their answers).
    fn waiting_of(sizes: &[usize]) -> Vec<InProgress> {
        sizes
            .iter()
            .map(|&n| {
                let (reply, _) = oneshot::channel();
                InProgress::new(Request {
                    texts: vec![String::new(); n],
                    reply,
                })
            })
            .collect()
    }

    /// The plan: the requests that fit in a piece get calls of their own, whole; larger ones a piece
    /// each; the turns alternate while both wait; `max_rows` rows per call.
    #[test]
    fn plan_call_alternates_small_requests_and_pieces_of_large_ones() {
        let waiting = waiting_of(&[100, 1, 40, 3]);
        let policy = |max_rows, piece_rows| BatchPolicy {
            max_rows,
            piece_rows,
            ..BatchPolicy::default()
        };
        let p = policy(1024, 8);
        assert_eq!(
            plan_call(&waiting, p, Turn::Large),
            (vec![(1, 1), (3, 3)], Turn::Small)
        );
        assert_eq!(
            plan_call(&waiting, p, Turn::Small),
            (vec![(0, 8), (2, 8)], Turn::Large)
        );
        assert_eq!(
            plan_call(&waiting, policy(10, 8), Turn::Small),
            (vec![(0, 8), (2, 2)], Turn::Large)
        );
        assert_eq!(
            plan_call(&waiting[..1], policy(4, 8), Turn::Large),
            (vec![(0, 4)], Turn::Large)
        );
        assert_eq!(
            plan_call(&waiting[..1], p, Turn::Large),
            (vec![(0, 8)], Turn::Large)
        );
        let whole = policy(1024, 1024);
        assert_eq!(
            plan_call(&waiting, whole, Turn::Large),
            (vec![(0, 100), (1, 1), (2, 40), (3, 3)], Turn::Small)
        );
    }

    #[test]
    fn bulk_callers_get_their_requests_whole_in_one_call() {
        // SQL's embed(): DataFusion batches of 256 rows from two partitions. With the default pieces
        // (32 rows) each call took 32 of each; whole, one call takes both (BENCHMARKS.md "SQL").
        let waiting = waiting_of(&[256, 256]);
        let (call, _) = plan_call(&waiting, BatchPolicy::whole_requests(), Turn::Large);
        assert_eq!(call, vec![(0, 256), (1, 256)]);
        let (call, _) = plan_call(&waiting, BatchPolicy::default(), Turn::Large);
        assert_eq!(call, vec![(0, 32), (1, 32)], "serve's pieces, for contrast");
    }
}
