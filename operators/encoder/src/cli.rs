//! Command-line options shared by every program that loads a model (the `lexembed` command and the
//! benchmark binary), behind the `cli` feature so library users do not compile clap.
//!
//! Owns the flags, their defaults and help text; turns them into `EncoderOptions`. Opening the model
//! is the encoder's job.

use std::path::PathBuf;

use clap::Args;

use crate::error::{EncoderError, Result};
use crate::model_dir::default_model_dir;
use crate::{Encoder, EncoderOptions, Precision, Provider, TokenBudget};

#[derive(Args, Debug, Clone)]
pub struct EncoderArgs {
    /// Model directory (sentence-transformers files + onnx/model.onnx). Default: $LEXEMBED_MODEL, else
    /// the all-MiniLM-L6-v2 export that integration/setup.sh leaves in $LEXEMBED_HOME/models.
    #[arg(long, env = "LEXEMBED_MODEL")]
    pub model: Option<PathBuf>,
    /// Execution provider: cpu, cuda or tensorrt. A provider that cannot load is an error.
    #[arg(long, env = "LEXEMBED_PROVIDER", default_value = "cpu")]
    pub provider: String,
    /// GPU to use with cuda/tensorrt.
    #[arg(long, default_value_t = 0)]
    pub device_id: i32,
    /// TensorRT engine cache directory (builds are slow; cache them).
    #[arg(long)]
    pub trt_cache: Option<PathBuf>,
    /// Graph precision: auto (the fp16 graph, onnx/model_fp16.onnx, on cuda/tensorrt when the model
    /// has one; fp32 on CPU), fp32 (onnx/model.onnx) or fp16.
    #[arg(long, env = "LEXEMBED_PRECISION", default_value = "auto")]
    pub precision: String,
    /// Threads inside one ONNX Runtime operator (default: all cores on CPU, 1 on GPUs, where the
    /// host's cores tokenize instead).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Model sessions running at once, each on its own thread and CUDA stream (default: 1 on CPU, 2 on
    /// GPUs).
    #[arg(long)]
    pub streams: Option<usize>,
    /// Most padded tokens (rows × longest row) per model call. Default: 1024 on CPU, 16384 on GPUs, at
    /// least the model's max length.
    #[arg(long)]
    pub token_budget: Option<usize>,
    /// Most rows per model call (default: 256 on CPU; on GPUs the budget / 16, so short texts still
    /// fill a call).
    #[arg(long)]
    pub max_batch_rows: Option<usize>,
}

impl EncoderArgs {
    pub fn model_dir(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(default_model_dir)
    }

    pub fn options(&self, extra_dims: &[u32]) -> Result<EncoderOptions> {
        let provider = Provider::parse(&self.provider)?
            .on_device(self.device_id)
            .with_engine_cache(self.trt_cache.clone());
        Ok(EncoderOptions {
            provider,
            precision: Precision::parse(&self.precision)?,
            intra_threads: self.threads,
            token_budget: self.token_budget.map(TokenBudget),
            max_batch_rows: self.max_batch_rows,
            streams: self.streams,
            extra_dims: extra_dims.to_vec(),
            ..EncoderOptions::default()
        })
    }

    /// Opens the model with these options; an error names the model directory.
    pub fn open(&self, extra_dims: &[u32]) -> Result<Encoder> {
        let dir = self.model_dir();
        Encoder::open(&dir, &self.options(extra_dims)?).map_err(|e| EncoderError::Loading {
            dir,
            source: Box::new(e),
        })
    }
}
