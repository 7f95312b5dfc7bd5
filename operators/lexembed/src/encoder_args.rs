//! Command-line options shared by every subcommand that loads a model.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lexembed_encoder::runtime::default_model_dir;
use lexembed_encoder::{Encoder, EncoderOptions, Provider, TensorRtOptions, TokenBudget};

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
    /// Threads inside one ONNX Runtime operator (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Most padded tokens (rows × longest row) per model call. Default: 2048 on CPU, 16384 on GPUs, at
    /// least the model's max length.
    #[arg(long)]
    pub token_budget: Option<usize>,
    /// Most rows per model call.
    #[arg(long, default_value_t = 256)]
    pub max_batch_rows: usize,
}

impl EncoderArgs {
    pub fn model_dir(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(default_model_dir)
    }

    pub fn options(&self, extra_dims: &[u32]) -> anyhow::Result<EncoderOptions> {
        let provider = match Provider::parse(&self.provider)?.on_device(self.device_id) {
            Provider::TensorRt(t) => Provider::TensorRt(TensorRtOptions {
                engine_cache_dir: self.trt_cache.clone(),
                ..t
            }),
            p => p,
        };
        Ok(EncoderOptions {
            provider,
            intra_threads: self.threads,
            token_budget: self.token_budget.map(TokenBudget),
            max_batch_rows: self.max_batch_rows,
            library: None,
            extra_dims: extra_dims.to_vec(),
        })
    }

    pub fn open(&self, extra_dims: &[u32]) -> anyhow::Result<Encoder> {
        let dir = self.model_dir();
        Encoder::open(&dir, &self.options(extra_dims)?)
            .with_context(|| format!("loading model {}", dir.display()))
    }
}
