//! The `Encoder`: the one API callers use (CLI, SQL, Kafka, eval). Text in, Matryoshka vectors out.
//!
//! Wires the pieces in one direction: tokenize (in parallel) → plan token-budget batches by length →
//! the model workers run them (`workers`: padded into reused buffers, pooled, normalised into input
//! order) → slice per dim. `encode` tokenizes the next chunk while the workers run this one; the
//! runner's `stage::EncodeStage` does the same across document batches. Callers know nothing of ORT;
//! this module knows nothing of where text comes from.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, FixedSizeListArray};
use tracing::{debug, debug_span};

use crate::batching::{BatchPlan, CPU_TOKEN_BUDGET, GPU_TOKEN_BUDGET, TokenBudget, plan_batches};
use crate::dims::{Dim, MatryoshkaDims, check_dim};
use crate::error::{EncoderError, Result};
use crate::matryoshka::matryoshka_arrays;
use crate::model_dir::ModelDir;
use crate::precision::{ChosenGraph, Precision};
use crate::prompt::{Prompt, PromptChoice, Role};
use crate::runtime::{ModelSession, Provider, SessionOptions};
use crate::stats::{EncodeStats, StatsSnapshot};
use crate::text_input::text_rows;
use crate::tokenize::{TextTokenizer, TokenIds};
use crate::workers::{Pending, RowFormat, SessionInfo, Workers};

/// How to run a model.
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    pub provider: Provider,
    /// Which graph: `Auto` takes the fp16 graph on GPUs when the directory has one.
    pub precision: Precision,
    /// Threads inside one operator; `None`: every core on CPU, 1 on GPUs.
    pub intra_threads: Option<usize>,
    /// Most padded tokens per model call. `None`: 1,024 on CPU, 16,384 on GPUs, raised to the model's
    /// max length when that is longer. An explicit budget below the max length is an error.
    pub token_budget: Option<TokenBudget>,
    /// Upper bound on rows per model call, whatever the budget allows. `None`: 256 on CPU; on GPUs
    /// enough rows of 16 tokens to fill the budget (1,024 at 16,384), so short texts fill a call too.
    pub max_batch_rows: Option<usize>,
    /// Sessions running at once, each on its own thread (and CUDA stream). `None`: 1 on CPU, 2 on GPUs.
    pub streams: Option<usize>,
    /// Run graphs that pool inside through IO binding into reused buffers (off: ONNX Runtime's plain
    /// `run`, which allocates its outputs; kept for comparison).
    pub io_binding: bool,
    /// ONNX Runtime library; `None` searches `ORT_DYLIB_PATH` and lexembed's cache.
    pub library: Option<std::path::PathBuf>,
    /// Matryoshka dims beyond the model's own list (each ≤ the full width).
    pub extra_dims: Vec<u32>,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self {
            provider: Provider::Cpu,
            precision: Precision::Auto,
            intra_threads: None,
            token_budget: None,
            max_batch_rows: None,
            streams: None,
            io_binding: true,
            library: None,
            extra_dims: Vec::new(),
        }
    }
}

/// Rows per call on CPU when not set: beyond this the budget, not the row count, limits a call.
pub const CPU_MAX_BATCH_ROWS: usize = 256;
/// Texts tokenized together by `encode` before their batches go to the model; the next chunk is
/// tokenized while this one runs.
pub const ENCODE_CHUNK_TEXTS: usize = 1024;

/// Full-width embeddings of a list of texts, row-major, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub dim: usize,
    pub values: Vec<f32>,
}

impl Embeddings {
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Row `i` at Matryoshka dim `d`: its first `d` values, L2-renormalised.
    pub fn prefix(&self, i: usize, d: Dim) -> Vec<f32> {
        let mut out = vec![0f32; d.get().min(self.dim)];
        crate::matryoshka::truncate_into(self.row(i), &mut out);
        out
    }
}

/// A loaded model: tokenizer, ONNX Runtime sessions on their workers, pooling and Matryoshka dims.
pub struct Encoder {
    model: ModelDir,
    graph: ChosenGraph,
    dims: MatryoshkaDims,
    tokenizer: TextTokenizer,
    workers: Workers,
    budget: TokenBudget,
    max_batch_rows: usize,
    stats: Arc<EncodeStats>,
}

impl Encoder {
    /// Opens a sentence-transformers model directory with an ONNX graph.
    pub fn open(dir: impl AsRef<Path>, opts: &EncoderOptions) -> Result<Self> {
        let model = ModelDir::open(dir)?;
        let mut listed: Vec<u32> = model.dims.as_slice().iter().map(|d| d.0).collect();
        listed.extend(&opts.extra_dims);
        let dims = MatryoshkaDims::with_listed(model.full_dim, &listed)?;
        let budget = effective_budget(opts, model.max_seq_length)?;
        let max_batch_rows = effective_max_rows(opts, budget);
        let lowercase = read_do_lower_case(&model.dir);
        let tokenizer =
            TextTokenizer::from_file(&model.tokenizer_path, model.max_seq_length, lowercase)?;
        let graph = model
            .graphs
            .choose(&model.dir, opts.precision, &opts.provider)?;
        let session_opts = SessionOptions {
            provider: opts.provider.clone(),
            intra_threads: opts.intra_threads,
            library: opts.library.clone(),
            token_budget: budget.0,
            max_batch_rows,
            max_seq_len: model.max_seq_length,
            pooling: model.pooling,
            hidden: model.full_dim as usize,
            io_binding: opts.io_binding,
        };
        let format = RowFormat {
            full: model.full_dim as usize,
            normalize: model.normalize,
            pad_id: i64::from(tokenizer.pad_id()),
        };
        let stats = Arc::new(EncodeStats::default());
        let streams = opts
            .streams
            .unwrap_or(if opts.provider.is_gpu() { 2 } else { 1 });
        let workers = Workers::start(streams, format, stats.clone(), || {
            ModelSession::open(&graph.path, &session_opts)
        })?;
        Ok(Self {
            model,
            graph,
            dims,
            tokenizer,
            workers,
            budget,
            max_batch_rows,
            stats,
        })
    }

    pub fn model(&self) -> &ModelDir {
        &self.model
    }

    /// The ONNX graph in use and its precision.
    pub fn graph(&self) -> &ChosenGraph {
        &self.graph
    }

    /// Provider, output kind, IO binding and node placement of the sessions.
    pub fn session_info(&self) -> &SessionInfo {
        self.workers.info()
    }

    /// The dims this encoder serves, full width first.
    pub fn dims(&self) -> &MatryoshkaDims {
        &self.dims
    }

    pub fn provider(&self) -> Provider {
        self.workers.info().provider.clone()
    }

    /// Sessions running at once.
    pub fn streams(&self) -> usize {
        self.workers.streams()
    }

    /// The token budget in force.
    pub fn token_budget(&self) -> TokenBudget {
        self.budget
    }

    /// The row cap in force.
    pub fn max_batch_rows(&self) -> usize {
        self.max_batch_rows
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Token ids as the model sees them (prompt first, truncated, with special tokens).
    pub fn tokenize(&self, texts: &[&str], prompt: &Prompt) -> Result<Vec<TokenIds>> {
        self.tokenizer.encode_all(texts, prompt)
    }

    /// The prompt for `role` chosen by `choice` (see `ModelDir::prompt_for`).
    pub fn prompt(&self, role: Role, choice: &PromptChoice) -> Result<Prompt> {
        self.model.prompt_for(role, choice)
    }

    /// Full-width embeddings of `texts` with `prompt` before each, in input order, pooled and
    /// normalised as the model says. Long inputs go in chunks: the next chunk is tokenized while the
    /// model runs this one.
    pub fn encode(&self, texts: &[&str], prompt: &Prompt) -> Result<Embeddings> {
        let full = self.model.full_dim as usize;
        let mut values = Vec::with_capacity(texts.len() * full);
        let mut running: Option<Pending> = None;
        for chunk in texts.chunks(ENCODE_CHUNK_TEXTS) {
            let next = self.start_job(chunk, prompt)?;
            if let Some(p) = running.replace(next) {
                values.extend(p.wait()?);
            }
        }
        if let Some(p) = running {
            values.extend(p.wait()?);
        }
        Ok(Embeddings { dim: full, values })
    }

    /// The model calls `encode` makes for these inputs: each chunk of `ENCODE_CHUNK_TEXTS` planned on
    /// its own, row positions counted from the first input.
    pub fn plan_encode(&self, tokens: &[TokenIds]) -> Result<Vec<BatchPlan>> {
        let mut all = Vec::new();
        for (c, chunk) in tokens.chunks(ENCODE_CHUNK_TEXTS).enumerate() {
            let offset = c * ENCODE_CHUNK_TEXTS;
            all.extend(self.plan(chunk)?.into_iter().map(|mut p| {
                p.rows.iter_mut().for_each(|r| *r += offset);
                p
            }));
        }
        Ok(all)
    }

    /// The model calls `encode_tokens` would make for these inputs.
    pub fn plan(&self, tokens: &[TokenIds]) -> Result<Vec<BatchPlan>> {
        let lengths: Vec<usize> = tokens.iter().map(|t| t.0.len()).collect();
        plan_batches(&lengths, self.budget, self.max_batch_rows)
    }

    /// Full-width embeddings of already tokenized texts.
    pub fn encode_tokens(&self, tokens: Vec<TokenIds>) -> Result<Embeddings> {
        let values = self.submit(self.workers.next_job_id(), tokens)?.wait()?;
        Ok(Embeddings {
            dim: self.model.full_dim as usize,
            values,
        })
    }

    /// One `FixedSizeList<Float32, d>` array per requested dim for a string array; null in, null out.
    pub fn encode_array(
        &self,
        array: &dyn Array,
        dims: &[Dim],
        prompt: &Prompt,
    ) -> Result<Vec<FixedSizeListArray>> {
        self.check_dims(dims)?;
        let rows = text_rows(array)?;
        let present: Vec<&str> = rows.iter().flatten().copied().collect();
        let emb = self.encode(&present, prompt)?;
        self.arrays_around_nulls(array, emb.values, dims)
    }

    pub(crate) fn check_dims(&self, dims: &[Dim]) -> Result<()> {
        dims.iter()
            .try_for_each(|d| check_dim(d.0, self.model.full_dim).map(|_| ()))
    }

    /// Tokenizes a job's texts (inside a `tokenize` span carrying the job id: the stage's overlap
    /// with `model_call` spans is read from these) and hands its batches to the model workers.
    pub(crate) fn start_job(&self, texts: &[&str], prompt: &Prompt) -> Result<Pending> {
        let job = self.workers.next_job_id();
        let tokens = {
            let _span = debug_span!("tokenize", job, texts = texts.len()).entered();
            self.tokenizer.encode_all(texts, prompt)?
        };
        self.submit(job, tokens)
    }

    fn submit(&self, job: u64, tokens: Vec<TokenIds>) -> Result<Pending> {
        let plans = self.plan(&tokens)?;
        debug!(job, batches = plans.len(), "submitted");
        self.workers.submit(job, tokens, plans)
    }

    /// Per-dim arrays for `array`'s rows, its non-null rows' vectors being `present` (row-major).
    pub(crate) fn arrays_around_nulls(
        &self,
        array: &dyn Array,
        present: Vec<f32>,
        dims: &[Dim],
    ) -> Result<Vec<FixedSizeListArray>> {
        let full = self.model.full_dim as usize;
        let nulls = array.logical_nulls();
        let values = match &nulls {
            Some(n) if n.null_count() > 0 => {
                // Scatter the embedded rows back around the nulls.
                let mut all = vec![0f32; array.len() * full];
                let slots = (0..array.len()).filter(|&i| n.is_valid(i));
                for (src, dst) in present.chunks_exact(full).zip(slots) {
                    all[dst * full..(dst + 1) * full].copy_from_slice(src);
                }
                all
            }
            _ => present,
        };
        matryoshka_arrays(&values, full, dims, nulls.as_ref())
    }
}

fn effective_budget(opts: &EncoderOptions, max_seq_length: usize) -> Result<TokenBudget> {
    match opts.token_budget {
        Some(b) if b.0 < max_seq_length => Err(EncoderError::BudgetTooSmall {
            budget: b.0,
            max_len: max_seq_length,
        }),
        Some(b) => Ok(b),
        None => {
            let default = match opts.provider {
                Provider::Cpu => CPU_TOKEN_BUDGET,
                _ => GPU_TOKEN_BUDGET,
            };
            Ok(TokenBudget(default.0.max(max_seq_length)))
        }
    }
}

fn effective_max_rows(opts: &EncoderOptions, budget: TokenBudget) -> usize {
    let rows = opts.max_batch_rows.unwrap_or(match opts.provider {
        Provider::Cpu => CPU_MAX_BATCH_ROWS,
        _ => budget.0 / 16,
    });
    rows.max(1)
}

/// `do_lower_case` from `sentence_bert_config.json` (already checked to exist by `ModelDir`).
fn read_do_lower_case(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("do_lower_case").and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}
