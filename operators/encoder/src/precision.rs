//! Which ONNX graph of a model directory runs: fp32 (`onnx/model.onnx`) or fp16
//! (`onnx/model_fp16.onnx`, fp32 inputs and outputs, pooling and normalisation kept in fp32).
//!
//! Owns the choice only; the files are found by `model_dir` and loaded by `runtime`.

use std::path::{Path, PathBuf};

use crate::error::{EncoderError, Result};
use crate::runtime::Provider;

/// Numeric precision of the graph to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// fp16 on CUDA/TensorRT when the directory has an fp16 graph, else fp32.
    #[default]
    Auto,
    Fp32,
    Fp16,
}

impl Precision {
    /// `auto`, `fp32` or `fp16`.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "fp32" | "float32" => Ok(Self::Fp32),
            "fp16" | "float16" => Ok(Self::Fp16),
            other => Err(EncoderError::UnknownPrecision(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
        }
    }
}

/// The graphs a model directory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnnxGraphs {
    pub fp32: Option<PathBuf>,
    pub fp16: Option<PathBuf>,
}

/// The graph chosen to run and its precision (never `Auto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenGraph {
    pub path: PathBuf,
    pub precision: Precision,
}

impl OnnxGraphs {
    /// The graph for `wanted` on `provider`; a precision the directory lacks is an error naming the
    /// file it looked for.
    pub fn choose(
        &self,
        dir: &Path,
        wanted: Precision,
        provider: &Provider,
    ) -> Result<ChosenGraph> {
        let pick = |path: &Option<PathBuf>, precision, file: &str| {
            path.clone()
                .map(|path| ChosenGraph { path, precision })
                .ok_or_else(|| EncoderError::MissingFile {
                    dir: dir.to_path_buf(),
                    file: file.into(),
                    why: "the graph of the requested precision; export it with \
                          integration/python/export_model.py --precision both",
                })
        };
        match wanted {
            Precision::Fp32 => pick(&self.fp32, Precision::Fp32, FP32_FILE),
            Precision::Fp16 => pick(&self.fp16, Precision::Fp16, FP16_FILE),
            Precision::Auto if provider.is_gpu() && self.fp16.is_some() => {
                pick(&self.fp16, Precision::Fp16, FP16_FILE)
            }
            Precision::Auto if self.fp32.is_some() => pick(&self.fp32, Precision::Fp32, FP32_FILE),
            Precision::Auto => pick(&self.fp16, Precision::Fp16, FP16_FILE),
        }
    }
}

/// Where the export script writes the fp32 graph.
pub const FP32_FILE: &str = "onnx/model.onnx";
/// Where the export script writes the fp16 graph.
pub const FP16_FILE: &str = "onnx/model_fp16.onnx";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::CudaOptions;

    #[test]
    fn auto_takes_fp16_on_gpus_only() {
        let both = OnnxGraphs {
            fp32: Some("a/onnx/model.onnx".into()),
            fp16: Some("a/onnx/model_fp16.onnx".into()),
        };
        let cuda = Provider::Cuda(CudaOptions::default());
        let dir = Path::new("a");
        let chosen = |g: &OnnxGraphs, w, p: &Provider| g.choose(dir, w, p).map(|c| c.precision);
        assert_eq!(
            chosen(&both, Precision::Auto, &cuda).unwrap(),
            Precision::Fp16
        );
        assert_eq!(
            chosen(&both, Precision::Auto, &Provider::Cpu).unwrap(),
            Precision::Fp32
        );
        assert_eq!(
            chosen(&both, Precision::Fp16, &Provider::Cpu).unwrap(),
            Precision::Fp16
        );
        let fp32_only = OnnxGraphs {
            fp16: None,
            ..both.clone()
        };
        assert_eq!(
            chosen(&fp32_only, Precision::Auto, &cuda).unwrap(),
            Precision::Fp32
        );
        let err = fp32_only
            .choose(dir, Precision::Fp16, &cuda)
            .unwrap_err()
            .to_string();
        assert!(err.contains("onnx/model_fp16.onnx"), "{err}");
        assert!(Precision::parse("int8").is_err());
    }
}
