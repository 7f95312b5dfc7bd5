//! The `Encoder`: the one API callers use (CLI, SQL, Kafka, eval). Text in, Matryoshka vectors out.
//!
//! Wires the pieces in one direction: tokenize all inputs (in parallel) → plan token-budget batches by
//! length → pad and run each batch through ONNX Runtime → pool and normalise into input order →
//! slice per dim. Callers know nothing of ORT; this module knows nothing of where text comes from.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::{Array, FixedSizeListArray};
use tracing::debug;

use crate::batching::{BatchPlan, CPU_TOKEN_BUDGET, GPU_TOKEN_BUDGET, TokenBudget, plan_batches};
use crate::dims::{Dim, MatryoshkaDims, check_dim};
use crate::error::{EncoderError, Result};
use crate::matryoshka::matryoshka_arrays;
use crate::model_dir::ModelDir;
use crate::pooling::l2_normalize;
use crate::runtime::{GraphOutput, ModelSession, Provider, SessionOptions};
use crate::text_input::text_rows;
use crate::tokenize::{TextTokenizer, TokenIds};

/// How to run a model.
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    pub provider: Provider,
    pub intra_threads: Option<usize>,
    /// Most padded tokens per model call. `None`: 2,048 on CPU, 16,384 on GPUs, raised to the model's
    /// max length when that is longer. An explicit budget below the max length is an error.
    pub token_budget: Option<TokenBudget>,
    /// Upper bound on rows per model call, whatever the budget allows.
    pub max_batch_rows: usize,
    /// ONNX Runtime library; `None` searches `ORT_DYLIB_PATH` and lexembed's cache.
    pub library: Option<std::path::PathBuf>,
    /// Matryoshka dims beyond the model's own list (each ≤ the full width).
    pub extra_dims: Vec<u32>,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self {
            provider: Provider::Cpu,
            intra_threads: None,
            token_budget: None,
            max_batch_rows: 256,
            library: None,
            extra_dims: Vec::new(),
        }
    }
}

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

/// Counters of what the model was asked to do, for benchmarks and tests of batching.
#[derive(Debug, Default)]
pub struct EncodeStats {
    pub model_calls: AtomicU64,
    pub rows: AtomicU64,
    pub real_tokens: AtomicU64,
    pub padded_tokens: AtomicU64,
    /// Rows of the largest single model call.
    pub max_call_rows: AtomicU64,
}

/// A plain copy of `EncodeStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub model_calls: u64,
    pub rows: u64,
    pub real_tokens: u64,
    pub padded_tokens: u64,
    pub max_call_rows: u64,
}

impl EncodeStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            model_calls: self.model_calls.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            real_tokens: self.real_tokens.load(Ordering::Relaxed),
            padded_tokens: self.padded_tokens.load(Ordering::Relaxed),
            max_call_rows: self.max_call_rows.load(Ordering::Relaxed),
        }
    }

    fn record(&self, plan: &BatchPlan, real: usize) {
        let rows = plan.rows.len() as u64;
        self.model_calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.real_tokens.fetch_add(real as u64, Ordering::Relaxed);
        self.padded_tokens
            .fetch_add(rows * plan.padded_len as u64, Ordering::Relaxed);
        self.max_call_rows.fetch_max(rows, Ordering::Relaxed);
    }
}

/// A loaded model: tokenizer, ONNX Runtime session, pooling and Matryoshka dims.
pub struct Encoder {
    model: ModelDir,
    dims: MatryoshkaDims,
    tokenizer: TextTokenizer,
    session: Mutex<ModelSession>,
    budget: TokenBudget,
    max_batch_rows: usize,
    stats: EncodeStats,
}

impl Encoder {
    /// Opens a sentence-transformers model directory with an ONNX graph.
    pub fn open(dir: impl AsRef<Path>, opts: &EncoderOptions) -> Result<Self> {
        let model = ModelDir::open(dir)?;
        let mut listed: Vec<u32> = model.dims.as_slice().iter().map(|d| d.0).collect();
        listed.extend(&opts.extra_dims);
        let dims = MatryoshkaDims::with_listed(model.full_dim, &listed)?;
        let budget = effective_budget(opts, model.max_seq_length)?;
        let lowercase = read_do_lower_case(&model.dir);
        let tokenizer =
            TextTokenizer::from_file(&model.tokenizer_path, model.max_seq_length, lowercase)?;
        let session = ModelSession::open(
            &model.onnx_path,
            &SessionOptions {
                provider: opts.provider.clone(),
                intra_threads: opts.intra_threads,
                library: opts.library.clone(),
                token_budget: budget.0,
                max_batch_rows: opts.max_batch_rows,
                max_seq_len: model.max_seq_length,
            },
        )?;
        Ok(Self {
            model,
            dims,
            tokenizer,
            session: Mutex::new(session),
            budget,
            max_batch_rows: opts.max_batch_rows.max(1),
            stats: EncodeStats::default(),
        })
    }

    pub fn model(&self) -> &ModelDir {
        &self.model
    }

    /// The dims this encoder serves, full width first.
    pub fn dims(&self) -> &MatryoshkaDims {
        &self.dims
    }

    pub fn provider(&self) -> Provider {
        self.session
            .lock()
            .map(|s| s.provider().clone())
            .unwrap_or_default()
    }

    /// The token budget in force.
    pub fn token_budget(&self) -> TokenBudget {
        self.budget
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Token ids as the model sees them (truncated, with special tokens).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<TokenIds>> {
        self.tokenizer.encode_all(texts)
    }

    /// Full-width embeddings of `texts`, in input order, pooled and normalised as the model says.
    pub fn encode(&self, texts: &[&str]) -> Result<Embeddings> {
        let tokens = self.tokenizer.encode_all(texts)?;
        self.encode_tokens(&tokens)
    }

    /// The model calls `encode_tokens` would make for these inputs.
    pub fn plan(&self, tokens: &[TokenIds]) -> Result<Vec<BatchPlan>> {
        let lengths: Vec<usize> = tokens.iter().map(|t| t.0.len()).collect();
        plan_batches(&lengths, self.budget, self.max_batch_rows)
    }

    /// Full-width embeddings of already tokenized texts.
    pub fn encode_tokens(&self, tokens: &[TokenIds]) -> Result<Embeddings> {
        let full = self.model.full_dim as usize;
        let mut values = vec![0f32; tokens.len() * full];
        for plan in self.plan(tokens)? {
            self.run_batch(tokens, &plan, &mut values, full)?;
        }
        Ok(Embeddings { dim: full, values })
    }

    /// One `FixedSizeList<Float32, d>` array per requested dim for a string array; null in, null out.
    pub fn encode_array(&self, array: &dyn Array, dims: &[Dim]) -> Result<Vec<FixedSizeListArray>> {
        for d in dims {
            check_dim(d.0, self.model.full_dim)?;
        }
        let rows = text_rows(array)?;
        let present: Vec<&str> = rows.iter().flatten().copied().collect();
        let emb = self.encode(&present)?;
        let full = emb.dim;
        let values = if present.len() == rows.len() {
            emb.values
        } else {
            // Scatter the embedded rows back around the nulls.
            let mut all = vec![0f32; rows.len() * full];
            let slots = rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_some())
                .map(|(i, _)| i);
            for (src, dst) in slots.enumerate() {
                all[dst * full..(dst + 1) * full].copy_from_slice(emb.row(src));
            }
            all
        };
        matryoshka_arrays(&values, full, dims, array.logical_nulls().as_ref())
    }

    fn run_batch(
        &self,
        tokens: &[TokenIds],
        plan: &BatchPlan,
        out: &mut [f32],
        full: usize,
    ) -> Result<()> {
        let (rows, seq) = (plan.rows.len(), plan.padded_len);
        let pad = i64::from(self.tokenizer.pad_id());
        let mut ids = vec![pad; rows * seq];
        let mut mask = vec![0i64; rows * seq];
        let mut real = 0;
        for (r, &i) in plan.rows.iter().enumerate() {
            let t = &tokens[i].0;
            real += t.len();
            for (j, &id) in t.iter().enumerate() {
                ids[r * seq + j] = i64::from(id);
                mask[r * seq + j] = 1;
            }
        }
        let output = {
            let mut session = self
                .session
                .lock()
                .map_err(|_| EncoderError::Inference("a previous model call panicked".into()))?;
            session.run(&ids, &mask, rows, seq)?
        };
        if output.hidden != full {
            return Err(EncoderError::Inference(format!(
                "graph output has {} values per row, the pooling config says {full}",
                output.hidden
            )));
        }
        for (r, &i) in plan.rows.iter().enumerate() {
            let dst = &mut out[i * full..(i + 1) * full];
            match output.kind {
                GraphOutput::Pooled => {
                    dst.copy_from_slice(&output.values[r * full..(r + 1) * full])
                }
                GraphOutput::Tokens => self.model.pooling.pool_row(
                    &output.values[r * seq * full..(r + 1) * seq * full],
                    &mask[r * seq..(r + 1) * seq],
                    full,
                    dst,
                ),
            }
            if self.model.normalize {
                l2_normalize(dst);
            }
        }
        self.stats.record(plan, real);
        debug!(rows, seq, real, "model call");
        Ok(())
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

/// `do_lower_case` from `sentence_bert_config.json` (already checked to exist by `ModelDir`).
fn read_do_lower_case(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("do_lower_case").and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}
