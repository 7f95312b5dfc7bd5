//! The model workers: `streams` threads, each owning one ONNX Runtime session (on a GPU: its own CUDA
//! stream) and its reused buffers, all taking batches from one queue.
//!
//! A caller submits a job (token ids plus the batch plans cut from them) and gets a `Pending` back at
//! once; the job's batches spread over the free workers, which write their pooled, normalised rows
//! straight into the job's output. So a caller can tokenize the next job while this one runs, and with
//! two sessions one batch's host work (padding, copies) overlaps another's compute. A worker survives
//! a failed or panicking call: that batch's job gets the error, later jobs run. Knows nothing of text,
//! Arrow or where jobs come from.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::{debug, debug_span, warn};

use crate::batching::BatchPlan;
use crate::error::{EncoderError, Result};
use crate::pooling::l2_normalize;
use crate::runtime::{GraphOutput, ModelSession, Placement, Provider};
use crate::stats::EncodeStats;
use crate::tokenize::TokenIds;

/// What every worker's session turned out to be (they are opened alike).
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub provider: Provider,
    pub output: GraphOutput,
    pub io_binding: bool,
    pub placement: Placement,
}

/// How workers turn a batch's pooled rows into the job's output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowFormat {
    pub full: usize,
    pub normalize: bool,
    pub pad_id: i64,
}

/// One submitted job: its tokens, where its rows go, and where its batches report. Only the queued
/// work holds it (and so the reporting `Sender`): should the workers go away, the waiting caller sees
/// the channel close instead of waiting for ever.
struct Job {
    id: u64,
    tokens: Vec<TokenIds>,
    out: Arc<Mutex<Vec<f32>>>,
    done: Sender<Result<()>>,
}

struct Work {
    job: Arc<Job>,
    plan: BatchPlan,
    batch: usize,
}

/// A job in flight; `wait` returns its full-width rows in input order.
pub(crate) struct Pending {
    out: Arc<Mutex<Vec<f32>>>,
    done: Receiver<Result<()>>,
    batches: usize,
    rows: usize,
    full: usize,
}

impl Pending {
    /// Blocks until every batch of the job has run; the first error wins.
    pub(crate) fn wait(self) -> Result<Vec<f32>> {
        for _ in 0..self.batches {
            match self.done.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(EncoderError::Inference("the model workers stopped".into())),
            }
        }
        let mut out = self
            .out
            .lock()
            .map_err(|_| EncoderError::Inference("a job's output lock was poisoned".into()))?;
        let values = std::mem::take(&mut *out);
        debug_assert_eq!(values.len(), self.rows * self.full);
        Ok(values)
    }
}

/// The worker threads and the queue in front of them.
pub(crate) struct Workers {
    queue: Option<Sender<Work>>,
    threads: Vec<JoinHandle<()>>,
    info: SessionInfo,
    format: RowFormat,
    stats: Arc<EncodeStats>,
}

static NEXT_JOB: AtomicU64 = AtomicU64::new(0);

impl Workers {
    /// Opens `streams` sessions with `open` (in turn, so an error stops early) and starts one thread
    /// per session.
    pub(crate) fn start(
        streams: usize,
        format: RowFormat,
        stats: Arc<EncodeStats>,
        open: impl Fn() -> Result<ModelSession>,
    ) -> Result<Self> {
        let sessions = (0..streams.max(1))
            .map(|_| open())
            .collect::<Result<Vec<_>>>()?;
        let first = &sessions[0];
        let info = SessionInfo {
            provider: first.provider().clone(),
            output: first.output_kind(),
            io_binding: first.uses_io_binding(),
            placement: first.placement().clone(),
        };
        let (queue, rx) = mpsc::channel::<Work>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = sessions
            .into_iter()
            .enumerate()
            .map(|(n, session)| {
                let (rx, stats) = (rx.clone(), stats.clone());
                std::thread::Builder::new()
                    .name(format!("lexembed-model-{n}"))
                    .spawn(move || work_loop(session, &rx, format, &stats))
                    .map_err(|e| EncoderError::Inference(format!("starting a model worker: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            queue: Some(queue),
            threads,
            info,
            format,
            stats,
        })
    }

    pub(crate) fn info(&self) -> &SessionInfo {
        &self.info
    }

    pub(crate) fn streams(&self) -> usize {
        self.threads.len()
    }

    /// A fresh job id (ids tie a job's `tokenize` and `model_call` spans together).
    pub(crate) fn next_job_id(&self) -> u64 {
        NEXT_JOB.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues every batch of job `id` and returns at once.
    pub(crate) fn submit(
        &self,
        id: u64,
        tokens: Vec<TokenIds>,
        plans: Vec<BatchPlan>,
    ) -> Result<Pending> {
        let full = self.format.full;
        let rows = tokens.len();
        let (done, done_rx) = mpsc::channel();
        let out = Arc::new(Mutex::new(vec![0f32; rows * full]));
        let job = Arc::new(Job {
            id,
            tokens,
            out: out.clone(),
            done,
        });
        let batches = plans.len();
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| EncoderError::Inference("the model workers stopped".into()))?;
        for (batch, plan) in plans.into_iter().enumerate() {
            let work = Work {
                job: job.clone(),
                plan,
                batch,
            };
            queue
                .send(work)
                .map_err(|_| EncoderError::Inference("the model workers stopped".into()))?;
        }
        self.stats.jobs.fetch_add(1, Ordering::Relaxed);
        Ok(Pending {
            out,
            done: done_rx,
            batches,
            rows,
            full,
        })
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing the queue ends every worker once it has finished what it holds.
        self.queue.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn work_loop(
    mut session: ModelSession,
    rx: &Mutex<Receiver<Work>>,
    format: RowFormat,
    stats: &EncodeStats,
) {
    loop {
        let work = match rx.lock() {
            Ok(rx) => match rx.recv() {
                Ok(w) => w,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let (rows, seq) = (work.plan.rows.len(), work.plan.padded_len);
        let span = debug_span!(
            "model_call",
            job = work.job.id,
            batch = work.batch,
            rows,
            seq
        );
        let _entered = span.enter();
        let before = session.buffer_growths();
        let started = Instant::now();
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| run_batch(&mut session, &work, format)))
                .unwrap_or_else(|_| {
                    warn!(
                        job = work.job.id,
                        "a model call panicked; the worker goes on"
                    );
                    Err(EncoderError::Inference("the model call panicked".into()))
                });
        if result.is_ok() {
            let real = work.plan.rows.iter().map(|&i| work.job.tokens[i].0.len());
            stats.record(&work.plan, real.sum(), started.elapsed());
            stats.add_buffer_growths(session.buffer_growths() - before);
            debug!(rows, seq, "model call");
        }
        let _ = work.job.done.send(result);
    }
}

/// Runs one batch and writes its rows, normalised if the model says so, into the job's output.
fn run_batch(session: &mut ModelSession, work: &Work, format: RowFormat) -> Result<()> {
    let full = format.full;
    let pooled = session.run(&work.job.tokens, &work.plan, format.pad_id)?;
    let mut out = work
        .job
        .out
        .lock()
        .map_err(|_| EncoderError::Inference("a job's output lock was poisoned".into()))?;
    for (src, &i) in pooled.chunks_exact(full).zip(&work.plan.rows) {
        let dst = &mut out[i * full..(i + 1) * full];
        dst.copy_from_slice(src);
        if format.normalize {
            l2_normalize(dst);
        }
    }
    Ok(())
}
