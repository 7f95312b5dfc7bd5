//! One shared request queue per model, for callers that each bring a few texts at once: SQL's
//! `embed()` (DataFusion calls it per partition and per small record batch, concurrently) and
//! `lexembed serve`'s HTTP requests.
//!
//! A request's rows are texts, or token ids a client made with the model's own tokenizer (`Input`).
//! Each call sends its rows over a channel and awaits a oneshot reply. One background thread gathers
//! them: the first waiting request, then more until `max_rows` or `linger` passes; it plans encoder
//! calls (which cut token-budget batches themselves) and hands each to a lane, a thread that runs one
//! call at a time; rows land in place in their request, which is answered with its own rows and
//! token counts once all are in. A request larger than `piece_rows` goes in pieces, and the requests
//! that fit in a piece get calls of their own between them: a one-text query that arrives while a
//! client's 2,048 texts are embedded waits for one piece, not for the 2,048 (the head-of-line
//! blocking `bench serve --bulk` measures). With a lane per model session (`lanes`, a server's
//! `--streams`), the query's call does not even wait for the piece: it runs on the other session.
//! The policy is `plan_call`, one function.
//!
//! The queue is bounded: at most `max_queued` requests wait or run at once. `embed` waits
//! (asynchronously) for room, so a query over a huge table cannot pile its texts up in memory;
//! `try_embed` refuses at once (a server answers 429). An encoder call that panics fails the requests
//! with rows in that call only; the lanes go on serving.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use tokio::sync::{Semaphore, TryAcquireError, oneshot};
use tracing::{debug, error};

use crate::encoder::{Embeddings, Encoder};
use crate::error::EncoderError;
use crate::prompt::Prompt;
use crate::tokenize::TokenIds;

/// One row of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A text (its prompt already before it), tokenized by the queue.
    Text(String),
    /// The model's own token ids, special tokens included, at most the model's max length: given to
    /// the model as they are (a server's `--token-ids`).
    Ids(TokenIds),
}

/// Rows from one call and where to send their vectors.
struct Request {
    inputs: Vec<Input>,
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
    /// Encoder calls in flight at once. With one per model stream (`Encoder::streams`), a query's
    /// call runs beside a bulk request's piece on another session instead of after it.
    pub lanes: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_rows: 1024,
            piece_rows: DEFAULT_PIECE_ROWS,
            linger: Duration::from_millis(5),
            max_queued: 64,
            lanes: 1,
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
type EncodeFn = Box<dyn Fn(&[&Input]) -> crate::Result<Embedded> + Send + Sync>;

/// Tokenizes the texts among `inputs` (together), takes the token ids as they are, and embeds them
/// in input order.
fn embed_inputs(encoder: &Encoder, inputs: &[&Input]) -> crate::Result<Embedded> {
    let texts: Vec<&str> = inputs
        .iter()
        .filter_map(|i| match i {
            Input::Text(t) => Some(t.as_str()),
            Input::Ids(_) => None,
        })
        .collect();
    let mut counted = encoder
        .tokenizer()
        .encode_counted(&texts, &Prompt::none())?
        .into_iter();
    let mut ids = Vec::with_capacity(inputs.len());
    let mut truncated = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (row, cut) = match input {
            Input::Text(_) => counted
                .next()
                .ok_or_else(|| EncoderError::Tokenizer("fewer encodings than texts".into()))?,
            Input::Ids(given) => (given.clone(), false),
        };
        ids.push(row);
        truncated.push(cut);
    }
    let tokens = ids.iter().map(|t| t.0.len()).collect();
    Ok(Embedded {
        embeddings: encoder.encode_tokens(ids)?,
        tokens,
        truncated,
    })
}

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
        // Callers' prompts are already in the texts (`prompted`).
        let encode = Box::new(move |inputs: &[&Input]| embed_inputs(&worker, inputs));
        Self::start_with(encoder, encode, policy)
    }

    /// `start`, with the thread calling `encode` instead of the encoder (tests put a fault in it).
    fn start_with(encoder: Arc<Encoder>, encode: EncodeFn, policy: BatchPolicy) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<Request>();
        let encode = Arc::new(encode);
        let dim = encoder.model().full_dim as usize;
        std::thread::Builder::new()
            .name("lexembed-batcher".into())
            .spawn(move || run(encode, &rx, policy, dim))
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
        self.try_embed_inputs(prompted(texts, prompt)).await
    }

    /// `try_embed` of rows that may be token ids (`Input`); texts carry their prompt already.
    pub async fn try_embed_inputs(&self, inputs: Vec<Input>) -> Result<Embedded, QueueError> {
        let _place = self.room.try_acquire().map_err(|e| match e {
            TryAcquireError::NoPermits => QueueError::Full(self.max_queued),
            TryAcquireError::Closed => QueueError::Closed,
        })?;
        self.send(inputs).await
    }

    /// Requests that may wait or run at once.
    pub fn capacity(&self) -> usize {
        self.max_queued
    }

    /// Requests waiting or running now.
    pub fn queued(&self) -> usize {
        self.max_queued - self.room.available_permits()
    }

    async fn send(&self, inputs: Vec<Input>) -> Result<Embedded, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { inputs, reply })
            .map_err(|_| QueueError::Closed)?;
        rx.await.map_err(|_| QueueError::Closed)?
    }
}

/// The texts with the prompt before each; as they are without one.
fn prompted(texts: Vec<String>, prompt: &Prompt) -> Vec<Input> {
    match prompt.text() {
        None => texts.into_iter().map(Input::Text).collect(),
        Some(_) => texts.iter().map(|t| Input::Text(prompt.apply(t))).collect(),
    }
}

/// A request being answered: its rows, how many went to calls, and what came back, in place.
struct InProgress {
    id: u64,
    inputs: Arc<[Input]>,
    reply: oneshot::Sender<Result<Embedded, QueueError>>,
    /// Rows handed to encoder calls so far (the next call starts here).
    sent: usize,
    /// Rows answered so far (calls may end out of order with several lanes).
    done: usize,
    values: Vec<f32>,
    tokens: Vec<usize>,
    truncated: Vec<bool>,
}

impl InProgress {
    fn new(id: u64, request: Request) -> Self {
        let n = request.inputs.len();
        Self {
            id,
            inputs: request.inputs.into(),
            reply: request.reply,
            sent: 0,
            done: 0,
            values: Vec::new(),
            tokens: vec![0; n],
            truncated: vec![false; n],
        }
    }

    /// Rows not yet handed to a call.
    fn left(&self) -> usize {
        self.inputs.len() - self.sent
    }

    /// Places a call's rows for this request (`at..at + rows` of `all`, its rows `first..`); true
    /// once every row is in.
    fn take(&mut self, all: &Embedded, at: usize, part: &Part) -> bool {
        let dim = all.embeddings.dim;
        if self.values.is_empty() {
            self.values = vec![0.0; self.inputs.len() * dim];
        }
        let (from, to) = (part.first, part.first + part.rows);
        self.values[from * dim..to * dim]
            .copy_from_slice(&all.embeddings.values[at * dim..(at + part.rows) * dim]);
        self.tokens[from..to].copy_from_slice(&all.tokens[at..at + part.rows]);
        self.truncated[from..to].copy_from_slice(&all.truncated[at..at + part.rows]);
        self.done += part.rows;
        self.done == self.inputs.len()
    }

    fn answer(self) {
        let dim = self.values.len() / self.inputs.len().max(1);
        let _ = self.reply.send(Ok(Embedded {
            embeddings: Embeddings {
                dim,
                values: self.values,
            },
            tokens: self.tokens,
            truncated: self.truncated,
        }));
    }
}

/// A request's rows in one encoder call.
#[derive(Debug, Clone)]
struct Part {
    request: u64,
    inputs: Arc<[Input]>,
    first: usize,
    rows: usize,
}

/// One encoder call: parts of requests, their rows sent in this order.
struct Call {
    parts: Vec<Part>,
}

impl Call {
    fn rows(&self) -> usize {
        self.parts.iter().map(|p| p.rows).sum()
    }
}

/// What a lane sends back: the call and the encoder's answer.
struct Done {
    call: Call,
    result: Result<Embedded, EncodeFailure>,
}

/// Which requests the next call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// The requests that fit in a piece, whole.
    Small,
    /// A piece of each larger request.
    Large,
}

/// The next encoder call, given the rows each waiting request has left to send (arrival order):
/// (index, rows) pairs, in the order their rows are sent (indices ascending), and whose turn it was.
/// The requests that fit in a piece get calls of their own, whole, in arrival order; larger ones a
/// piece each. The turns alternate while both wait, so a query waits for at most one piece and a bulk
/// request is not starved by a stream of queries. `max_rows` rows per call.
fn plan_call(left: &[usize], policy: BatchPolicy, last: Turn) -> (Vec<(usize, usize)>, Turn) {
    let piece = policy.piece_rows.max(1);
    let has_small = left.iter().any(|&n| n <= piece);
    let has_large = left.iter().any(|&n| n > piece);
    let turn = match (has_small, has_large) {
        (true, true) if last == Turn::Small => Turn::Large,
        (true, _) => Turn::Small,
        _ => Turn::Large,
    };
    let mut room = policy.max_rows.max(1);
    let mut call = Vec::new();
    for (i, &n) in left.iter().enumerate() {
        if (n <= piece) != (turn == Turn::Small) {
            continue;
        }
        let rows = n.min(piece).min(room);
        call.push((i, rows));
        room -= rows;
        if room == 0 {
            break;
        }
    }
    (call, turn)
}

/// The encoder's answer for `inputs`; a panic inside it becomes an error for this call only.
fn encode_guarded(encode: &EncodeFn, inputs: &[&Input]) -> Result<Embedded, EncodeFailure> {
    let called = catch_unwind(AssertUnwindSafe(|| encode(inputs)));
    called
        .map_err(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            error!(rows = inputs.len(), "the encoder panicked: {what}");
            EncodeFailure::Panicked(what)
        })?
        .map_err(|e| EncodeFailure::Model(Arc::new(e)))
}

/// A lane: runs the calls it is given, one at a time, and sends each answer back.
fn lane(encode: &EncodeFn, calls: &Receiver<Call>, done: &Sender<Done>) {
    for call in calls {
        let inputs: Vec<&Input> = call
            .parts
            .iter()
            .flat_map(|p| &p.inputs[p.first..p.first + p.rows])
            .collect();
        let result = encode_guarded(encode, &inputs);
        if done.send(Done { call, result }).is_err() {
            return;
        }
    }
}

/// The batching thread's state: the requests being answered and the calls in flight.
struct Batcher {
    policy: BatchPolicy,
    /// The model's full width (an empty request's answer has it too).
    dim: usize,
    waiting: Vec<InProgress>,
    next_id: u64,
    in_flight: usize,
    last: Turn,
    to_lanes: Sender<Call>,
}

impl Batcher {
    fn admit(&mut self, request: Request) {
        if request.inputs.is_empty() {
            // No rows, no call: answered at once (a call would never take it).
            let _ = request.reply.send(Ok(Embedded {
                embeddings: Embeddings {
                    dim: self.dim,
                    values: Vec::new(),
                },
                tokens: Vec::new(),
                truncated: Vec::new(),
            }));
            return;
        }
        self.waiting.push(InProgress::new(self.next_id, request));
        self.next_id += 1;
    }

    fn unsent(&self) -> bool {
        self.waiting.iter().any(|w| w.left() > 0)
    }

    fn idle(&self) -> bool {
        self.waiting.is_empty() && self.in_flight == 0
    }

    /// Hands calls to the free lanes while there are rows no call has taken.
    fn dispatch(&mut self) {
        while self.in_flight < self.policy.lanes.max(1) && self.unsent() {
            let open: Vec<usize> = (0..self.waiting.len())
                .filter(|&i| self.waiting[i].left() > 0)
                .collect();
            let left: Vec<usize> = open.iter().map(|&i| self.waiting[i].left()).collect();
            let (planned, turn) = plan_call(&left, self.policy, self.last);
            self.last = turn;
            let parts = planned
                .into_iter()
                .map(|(c, rows)| {
                    let w = &mut self.waiting[open[c]];
                    let part = Part {
                        request: w.id,
                        inputs: w.inputs.clone(),
                        first: w.sent,
                        rows,
                    };
                    w.sent += rows;
                    part
                })
                .collect();
            let call = Call { parts };
            debug!(
                requests = call.parts.len(),
                rows = call.rows(),
                waiting = self.waiting.len(),
                in_flight = self.in_flight,
                "embedding a gathered batch"
            );
            if self.to_lanes.send(call).is_err() {
                self.lanes_gone();
                return;
            }
            self.in_flight += 1;
        }
    }

    /// Places a finished call's rows; answers the requests now complete, fails every request with
    /// rows in a failed call.
    fn finish(&mut self, done: Done) {
        self.in_flight -= 1;
        match done.result {
            Ok(all) => {
                let mut at = 0;
                for part in &done.call.parts {
                    if let Some(i) = self.position(part.request)
                        && self.waiting[i].take(&all, at, part)
                    {
                        self.waiting.remove(i).answer();
                    }
                    at += part.rows;
                }
            }
            Err(e) => {
                for part in &done.call.parts {
                    if let Some(i) = self.position(part.request) {
                        let w = self.waiting.remove(i);
                        let _ = w.reply.send(Err(QueueError::Encoder(e.clone())));
                    }
                }
            }
        }
    }

    fn position(&self, request: u64) -> Option<usize> {
        self.waiting.iter().position(|w| w.id == request)
    }

    /// Every lane has stopped (none could start, or all died): nothing in flight will end.
    fn lanes_gone(&mut self) {
        self.in_flight = 0;
        self.fail_all(EncodeFailure::Panicked("the encoder lanes stopped".into()));
    }

    fn fail_all(&mut self, e: EncodeFailure) {
        for w in self.waiting.drain(..) {
            let _ = w.reply.send(Err(QueueError::Encoder(e.clone())));
        }
    }
}

/// The batching thread: gathers requests (the first one, then what arrives within `linger`, up to
/// `max_rows` rows), hands calls to the lanes as they free up, and answers requests as their calls
/// end. Ends once every handle is dropped and nothing is left.
fn run(encode: Arc<EncodeFn>, requests: &Receiver<Request>, policy: BatchPolicy, dim: usize) {
    let lanes = policy.lanes.max(1);
    let (to_lanes, calls) = crossbeam_channel::unbounded::<Call>();
    let (done_tx, done) = crossbeam_channel::unbounded::<Done>();
    let workers: Vec<_> = (0..lanes)
        .filter_map(|n| {
            let (encode, calls, done_tx) = (encode.clone(), calls.clone(), done_tx.clone());
            std::thread::Builder::new()
                .name(format!("lexembed-lane-{n}"))
                .spawn(move || lane(&encode, &calls, &done_tx))
                .map_err(|e| error!("cannot start an encoder lane: {e}"))
                .ok()
        })
        .collect();
    // Only the lanes hold these now: with no lane left, sending a call fails and nothing waits on one.
    drop((done_tx, calls));
    let mut b = Batcher {
        policy,
        dim,
        waiting: Vec::new(),
        next_id: 0,
        in_flight: 0,
        last: Turn::Large,
        to_lanes,
    };
    let mut open = true;
    while open || !b.idle() {
        if b.idle() {
            // Nothing in hand: wait for a first request, then for what comes within `linger`.
            let Ok(first) = requests.recv() else { break };
            let mut rows = first.inputs.len();
            b.admit(first);
            let deadline = Instant::now() + policy.linger;
            while rows < policy.max_rows {
                match requests.recv_deadline(deadline) {
                    Ok(r) => {
                        rows += r.inputs.len();
                        b.admit(r);
                    }
                    Err(_) => break,
                }
            }
        } else if b.in_flight >= lanes || !b.unsent() {
            // Every lane busy, or nothing left to send: wait for a call to end, or a request while
            // handles remain (a closed channel is always ready: not selected once closed).
            let ended = match open {
                true => crossbeam_channel::select! {
                    recv(done) -> d => Some(d),
                    recv(requests) -> r => {
                        match r {
                            Ok(r) => b.admit(r),
                            Err(_) => open = false,
                        }
                        None
                    },
                },
                false => Some(done.recv()),
            };
            match ended {
                Some(Ok(d)) => b.finish(d),
                Some(Err(_)) => b.lanes_gone(),
                None => {}
            }
        }
        // What has already arrived joins the next calls.
        for d in done.try_iter() {
            b.finish(d);
        }
        for r in requests.try_iter() {
            b.admit(r);
        }
        b.dispatch();
    }
    drop(b);
    for w in workers {
        let _ = w.join();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;

    /// The texts of a call's rows (the tests send texts only).
    fn texts_of<'a>(inputs: &[&'a Input]) -> Vec<&'a str> {
        inputs
            .iter()
            .map(|i| match i {
                Input::Text(t) => t.as_str(),
                Input::Ids(_) => "<ids>",
            })
            .collect()
    }

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
        let encode: EncodeFn = Box::new(move |inputs: &[&Input]| {
            let texts = texts_of(inputs);
            assert!(!texts.contains(&"panic"), "a fault in the model runtime");
            embed_inputs(&real, inputs)
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
        let encode: EncodeFn = Box::new(move |inputs: &[&Input]| {
            let texts = texts_of(inputs);
            seen.lock().unwrap().push(texts.len());
            // A slow model: the other callers arrive while it runs.
            std::thread::sleep(Duration::from_millis(30));
            embed_inputs(&real, inputs)
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
        let encode: EncodeFn = Box::new(move |inputs: &[&Input]| {
            let texts = texts_of(inputs);
            if texts.contains(&"hold") {
                let gate = gate.lock().unwrap();
                gate.0.send(()).unwrap();
                gate.1.recv().unwrap();
            }
            embed_inputs(&real, inputs)
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
        let encode: EncodeFn = Box::new(move |inputs: &[&Input]| {
            let texts = texts_of(inputs);
            seen.lock()
                .unwrap()
                .push(texts.iter().map(|t| t.to_string()).collect());
            std::thread::sleep(Duration::from_millis(20)); // a slow model
            embed_inputs(&real, inputs)
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

    /// The plan: the requests that fit in a piece get calls of their own, whole; larger ones a piece
    /// each; the turns alternate while both wait; `max_rows` rows per call.
    #[test]
    fn plan_call_alternates_small_requests_and_pieces_of_large_ones() {
        let waiting = [100, 1, 40, 3];
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
        let waiting = [256, 256];
        let (call, _) = plan_call(&waiting, BatchPolicy::whole_requests(), Turn::Large);
        assert_eq!(call, vec![(0, 256), (1, 256)]);
        let (call, _) = plan_call(&waiting, BatchPolicy::default(), Turn::Large);
        assert_eq!(call, vec![(0, 32), (1, 32)], "serve's pieces, for contrast");
    }

    /// Token ids made with the model's own tokenizer (special tokens included) embed as their text
    /// does, in the same call as texts, and count as many tokens.
    #[test]
    fn token_ids_embed_as_their_text_beside_texts() {
        let encoder = tiny();
        let batcher = SharedBatcher::start(encoder.clone(), BatchPolicy::default());
        let text = "¿Cuál es el plazo para resolver el procedimiento?";
        let ids = encoder
            .tokenize(&[text], &Prompt::none())
            .unwrap()
            .remove(0);
        let out = runtime()
            .block_on(batcher.try_embed_inputs(vec![
                Input::Text("otro texto".into()),
                Input::Ids(ids.clone()),
                Input::Text(text.into()),
            ]))
            .unwrap();
        let (from_ids, from_text) = (out.embeddings.row(1), out.embeddings.row(2));
        let diff = from_ids
            .iter()
            .zip(from_text)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-6, "ids and text differ by {diff}");
        assert_eq!(out.tokens[1], ids.0.len());
        assert_eq!(out.tokens[1], out.tokens[2]);
        assert_ne!(out.embeddings.row(0), from_text);
    }

    /// Two lanes: a query that arrives while a slow piece runs gets its own call beside it, answered
    /// long before the piece ends (one lane: after it); a large request whose pieces end out of order
    /// still gets every row in place.
    #[test]
    fn with_two_lanes_a_query_runs_beside_a_slow_piece_and_rows_land_in_place() {
        let encoder = tiny();
        let real = encoder.clone();
        let encode: EncodeFn = Box::new(move |inputs: &[&Input]| {
            let texts = texts_of(inputs);
            // The first piece is slow, so the second (and the query) end before it.
            if texts.iter().any(|t| t.starts_with("lento")) {
                std::thread::sleep(Duration::from_millis(400));
            }
            embed_inputs(&real, inputs)
        });
        let policy = BatchPolicy {
            piece_rows: 4,
            linger: Duration::from_millis(1),
            lanes: 2,
            ..BatchPolicy::default()
        };
        let batcher = SharedBatcher::start_with(encoder.clone(), encode, policy);
        let rt = runtime();
        let large: Vec<String> = (0..8)
            .map(|i| match i < 4 {
                true => format!("lento {i}"),
                false => format!("artículo {i}"),
            })
            .collect();
        let (big, small, small_took) = rt.block_on(async {
            let big = tokio::spawn({
                let (b, texts) = (batcher.clone(), large.clone());
                async move { b.embed(texts, &Prompt::none()).await }
            });
            tokio::time::sleep(Duration::from_millis(100)).await; // both pieces in flight
            let asked = Instant::now();
            let got = batcher.embed(vec!["plazo".into()], &Prompt::none()).await;
            let took = asked.elapsed();
            (big.await.unwrap().unwrap(), got.unwrap(), took)
        });
        assert!(
            small_took < Duration::from_millis(250),
            "the query waited {small_took:?} for the slow piece"
        );
        let refs: Vec<&str> = large.iter().map(String::as_str).collect();
        let want = encoder.encode(&refs, &Prompt::none()).unwrap();
        for (g, w) in big.embeddings.values.iter().zip(&want.values) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        let want_tokens: Vec<usize> = encoder
            .tokenize(&refs, &Prompt::none())
            .unwrap()
            .iter()
            .map(|t| t.0.len())
            .collect();
        assert_eq!(big.tokens, want_tokens);
        let alone = encoder.encode(&["plazo"], &Prompt::none()).unwrap();
        for (g, w) in small.embeddings.values.iter().zip(&alone.values) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    /// A request with no rows is answered at once, empty, at the model's width (with calls planned
    /// from rows left to send, it would never be taken), and the queue goes on serving.
    #[test]
    fn an_empty_request_is_answered_at_once() {
        let encoder = tiny();
        let batcher = SharedBatcher::start(encoder.clone(), BatchPolicy::default());
        let rt = runtime();
        let empty = rt
            .block_on(batcher.embed(Vec::new(), &Prompt::none()))
            .unwrap();
        assert!(empty.embeddings.values.is_empty() && empty.tokens.is_empty());
        assert_eq!(empty.embeddings.dim, encoder.model().full_dim as usize);
        let one = rt
            .block_on(batcher.embed(vec!["plazo".into()], &Prompt::none()))
            .unwrap();
        assert_eq!(one.tokens.len(), 1);
    }
}
