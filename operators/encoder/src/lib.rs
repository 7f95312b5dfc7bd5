//! lexembed's encoder: sentence-transformers models exported to ONNX, run with ONNX Runtime on Arrow
//! string arrays, producing one `FixedSizeList<Float32, d>` array per Matryoshka dim.
//!
//! This crate is the bottom of the workspace: it must not depend on lance, datafusion or rdkafka, so
//! that its tests build in minutes. Pieces, in the order data flows through them:
//! `model_dir` (what the model directory says) → `prompt` (the text put before inputs) → `tokenize` → `batching` (token budget) →
//! `runtime` (ONNX Runtime: providers, sessions, IO binding, node placement) → `workers` (sessions on
//! their own threads) → `pooling` → `matryoshka` (per-dim Arrow arrays), wired by `encoder::Encoder`,
//! the only type callers need; `stage::EncodeStage` runs it over a stream of document batches,
//! tokenizing ahead of the model; `queue::SharedBatcher` gathers many small concurrent calls (SQL,
//! HTTP requests) into encoder batches through one bounded queue.

pub mod batching;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dims;
pub mod encoder;
pub mod error;
pub mod matryoshka;
pub mod model_dir;
pub mod pooling;
pub mod precision;
pub mod prompt;
pub mod queue;
pub mod runtime;
pub mod similarity;
pub mod stage;
pub mod stats;
pub mod text_input;
pub mod tokenize;
mod workers;

pub use batching::{BatchPlan, TokenBudget, padding_ratio, plan_batches};
pub use dims::{Dim, MatryoshkaDims, widest_first};
pub use encoder::{Embeddings, Encoder, EncoderOptions};
pub use error::{EncoderError, Result};
pub use matryoshka::{embedding_type, matryoshka_arrays};
pub use model_dir::{ModelDir, Prompts};
pub use pooling::Pooling;
pub use precision::{ChosenGraph, Precision};
pub use prompt::{Prompt, PromptChoice, Role, RolePrompts};
pub use queue::{
    BatchPolicy, DEFAULT_PIECE_ROWS, Embedded, EncodeFailure, Input, QueueError, SharedBatcher,
    embed_counted, piece_rows_for,
};
pub use runtime::{CudaOptions, Provider, TensorRtOptions};
pub use stage::{EncodeStage, Next, StageModel, Staged};
pub use stats::StatsSnapshot;
pub use workers::SessionInfo;
