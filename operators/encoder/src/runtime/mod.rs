//! ONNX Runtime: loading the shared library, execution providers, and (in submodules) the session,
//! IO binding and the check of where the graph's nodes run.
//!
//! Owns everything that touches `ort`. Knows nothing of text or Arrow. A requested provider that cannot
//! register is an error, and so is a GPU session whose heavy nodes landed on the CPU: lexembed never
//! falls back to CPU silently.

mod binding;
pub mod placement;
mod providers;
mod session;

pub use placement::{Placement, check_placement};
pub use session::{GraphOutput, ModelSession, SessionOptions};

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::error::{EncoderError, Result};

/// Where a model runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Provider {
    #[default]
    Cpu,
    Cuda(CudaOptions),
    TensorRt(TensorRtOptions),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CudaOptions {
    pub device_id: i32,
    /// Upper bound on the CUDA memory arena, bytes.
    pub memory_limit: Option<usize>,
    /// CUDA graphs replay kernels without launch overhead; only valid when input shapes repeat.
    pub cuda_graph: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TensorRtOptions {
    pub device_id: i32,
    pub fp16: bool,
    pub engine_cache_dir: Option<PathBuf>,
}

impl Provider {
    /// `cpu`, `cuda` or `tensorrt` with default options.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(CudaOptions::default())),
            "tensorrt" | "trt" => Ok(Self::tensorrt()),
            other => Err(EncoderError::UnknownProvider(other.to_string())),
        }
    }

    /// TensorRT with fp16 kernels allowed, on device 0, without an engine cache.
    pub fn tensorrt() -> Self {
        Self::TensorRt(TensorRtOptions {
            fp16: true,
            ..TensorRtOptions::default()
        })
    }

    /// The same provider on GPU `device_id` (no effect on CPU).
    pub fn on_device(self, device_id: i32) -> Self {
        match self {
            Self::Cpu => Self::Cpu,
            Self::Cuda(c) => Self::Cuda(CudaOptions { device_id, ..c }),
            Self::TensorRt(t) => Self::TensorRt(TensorRtOptions { device_id, ..t }),
        }
    }

    /// The same provider with TensorRT's engine and timing cache in `dir` (no effect on others).
    pub fn with_engine_cache(self, dir: Option<PathBuf>) -> Self {
        match self {
            Self::TensorRt(t) => Self::TensorRt(TensorRtOptions {
                engine_cache_dir: dir,
                ..t
            }),
            p => p,
        }
    }

    /// CUDA or TensorRT.
    pub fn is_gpu(&self) -> bool {
        !matches!(self, Self::Cpu)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda(_) => "cuda",
            Self::TensorRt(_) => "tensorrt",
        }
    }
}

/// TensorRT optimisation profiles (`min`, `opt`, `max` shape strings) covering every batch the batcher
/// can cut: rows from 1 to `max_rows`, lengths from 1 to `max_seq_len` (profiles bound each dimension
/// on its own), optimised for a full budget of 128-token rows.
pub fn tensorrt_profiles(
    input_names: &[&str],
    budget: usize,
    max_rows: usize,
    max_seq_len: usize,
) -> (String, String, String) {
    let opt_len = max_seq_len.min(128);
    let opt_rows = (budget / opt_len.max(1)).max(1);
    let shapes = |rows: usize, len: usize| {
        input_names
            .iter()
            .map(|n| format!("{n}:{rows}x{len}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    (
        shapes(1, 1),
        shapes(opt_rows.min(max_rows.max(1)), opt_len),
        shapes(max_rows.max(1), max_seq_len),
    )
}

static RUNTIME: OnceLock<(PathBuf, Environment)> = OnceLock::new();

/// Finds the ONNX Runtime library: an explicit path, else `ORT_DYLIB_PATH`, else the copy that
/// `integration/setup.sh` leaves under `$LEXEMBED_HOME/lib` (default `~/.cache/lexembed/lib`).
pub fn locate_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(PathBuf::from(p));
    }
    let lib_dir = lexembed_home().join("lib");
    std::fs::read_dir(&lib_dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so."))
        })
        .ok_or(EncoderError::RuntimeNotFound)
}

/// lexembed's cache of tools and models: `$LEXEMBED_HOME`, default `~/.cache/lexembed`.
pub fn lexembed_home() -> PathBuf {
    if let Some(h) = std::env::var_os("LEXEMBED_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("lexembed")
}

/// The process-wide ONNX Runtime environment, loading the library on first use.
pub fn environment(library: Option<&Path>) -> Result<&'static Environment> {
    if let Some((_, env)) = RUNTIME.get() {
        return Ok(env);
    }
    let path = locate_library(library)?;
    let runtime_err = |message: String| EncoderError::Runtime {
        path: path.clone(),
        message,
    };
    let env = ort::init_from(&path)
        .map_err(|e| runtime_err(e.to_string()))?
        .with_name("lexembed")
        .with_telemetry(false)
        .build()
        .map_err(|e| runtime_err(e.to_string()))?;
    let (_, env) = RUNTIME.get_or_init(|| (path, env));
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse() {
        assert_eq!(Provider::parse("CPU").unwrap(), Provider::Cpu);
        assert_eq!(Provider::parse("cuda").unwrap().name(), "cuda");
        match Provider::parse("tensorrt").unwrap() {
            Provider::TensorRt(t) => assert!(t.fp16),
            p => panic!("{p:?}"),
        }
        assert!(
            Provider::parse("rocm")
                .unwrap_err()
                .to_string()
                .contains("rocm")
        );
    }

    #[test]
    fn tensorrt_profiles_cover_the_token_budget() {
        let (min, opt, max) = tensorrt_profiles(&["input_ids", "attention_mask"], 16384, 256, 512);
        assert_eq!(min, "input_ids:1x1,attention_mask:1x1");
        assert_eq!(opt, "input_ids:128x128,attention_mask:128x128");
        assert_eq!(max, "input_ids:256x512,attention_mask:256x512");
        let (_, opt, _) = tensorrt_profiles(&["input_ids"], 16384, 64, 512);
        assert_eq!(opt, "input_ids:64x128");
    }
}
