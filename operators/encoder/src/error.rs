//! Errors of the encoder crate: one enum, each variant naming the file, field or input that was wrong.

use std::path::PathBuf;

/// Everything that can go wrong while loading a model or encoding text.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("model directory {dir}: missing file {file} ({why})")]
    MissingFile {
        dir: PathBuf,
        file: String,
        why: &'static str,
    },
    #[error("loading model {dir}: {source}")]
    Loading {
        dir: PathBuf,
        source: Box<EncoderError>,
    },
    #[error("model directory {0} does not exist")]
    NoModelDir(PathBuf),
    #[error("model file {path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error(
        "model file {path}: unknown pooling mode {mode:?} (lexembed supports cls, mean, max, lasttoken)"
    )]
    UnknownPooling { path: PathBuf, mode: String },
    #[error("dim {requested} is not available: the model's embeddings have {full} dims")]
    DimTooLarge { requested: u32, full: u32 },
    #[error("dim must be at least 1, got 0")]
    ZeroDim,
    #[error("dim {requested} is not one of the model's Matryoshka dims {allowed:?}")]
    UnsupportedDim { requested: u32, allowed: Vec<u32> },
    #[error("ONNX Runtime library {path}: {message}")]
    Runtime { path: PathBuf, message: String },
    #[error(
        "ONNX Runtime library not found: set ORT_DYLIB_PATH to libonnxruntime.so.<version> \
         (the PyPI onnxruntime wheel ships it in onnxruntime/capi/), or run integration/setup.sh"
    )]
    RuntimeNotFound,
    #[error("execution provider {provider} is not available: {reason}")]
    ProviderUnavailable { provider: String, reason: String },
    #[error("unknown precision {0:?} (expected auto, fp32 or fp16)")]
    UnknownPrecision(String),
    #[error("unknown execution provider {0:?} (expected cpu, cuda or tensorrt)")]
    UnknownProvider(String),
    #[error("ONNX graph {path}: {message}")]
    Graph { path: PathBuf, message: String },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("input column has type {0}, expected Utf8, LargeUtf8 or Utf8View")]
    NotText(String),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("model {model} has no prompt named {name:?} (its prompts: {known:?})")]
    UnknownPrompt {
        model: String,
        name: String,
        known: Vec<String>,
    },
    #[error(
        "model {model}: its pooling leaves prompt tokens out (include_prompt: false), which lexembed \
         does not implement; embed without a prompt (prompt: none)"
    )]
    PromptExcludedFromPooling { model: String },
    #[error("token budget {budget} is smaller than one row of {max_len} tokens")]
    BudgetTooSmall { budget: usize, max_len: usize },
}

/// Result alias of this crate.
pub type Result<T, E = EncoderError> = std::result::Result<T, E>;
