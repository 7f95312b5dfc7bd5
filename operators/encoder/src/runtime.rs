//! ONNX Runtime: loading the shared library, execution providers, the session and one model call.
//!
//! Owns everything that touches `ort`. Takes padded `i64` id/mask matrices, returns the graph's token
//! embeddings (or its pooled embedding when the graph pools itself). Knows nothing of text or Arrow.
//! A requested provider that cannot register is an error: lexembed never falls back to CPU silently.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

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
            "tensorrt" | "trt" => Ok(Self::TensorRt(TensorRtOptions {
                fp16: true,
                ..TensorRtOptions::default()
            })),
            other => Err(EncoderError::UnknownProvider(other.to_string())),
        }
    }

    /// The same provider on GPU `device_id` (no effect on CPU).
    pub fn on_device(self, device_id: i32) -> Self {
        match self {
            Self::Cpu => Self::Cpu,
            Self::Cuda(c) => Self::Cuda(CudaOptions { device_id, ..c }),
            Self::TensorRt(t) => Self::TensorRt(TensorRtOptions { device_id, ..t }),
        }
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

/// The default model: `$LEXEMBED_MODEL`, else the all-MiniLM-L6-v2 export `integration/setup.sh` leaves.
pub fn default_model_dir() -> PathBuf {
    std::env::var_os("LEXEMBED_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| lexembed_home().join("models/all-MiniLM-L6-v2"))
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

/// Session settings beyond the provider.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    pub provider: Provider,
    /// Threads inside one operator; `None` lets ONNX Runtime use every core.
    pub intra_threads: Option<usize>,
    pub library: Option<PathBuf>,
    /// Token budget, used to size TensorRT's shape profiles.
    pub token_budget: usize,
    pub max_batch_rows: usize,
    pub max_seq_len: usize,
}

/// What the graph hands back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphOutput {
    /// `[rows, seq, hidden]` token embeddings; lexembed pools.
    Tokens,
    /// `[rows, hidden]`, already pooled inside the graph.
    Pooled,
}

/// The graph's inputs lexembed knows how to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputKind {
    Ids,
    Mask,
    TypeIds,
}

/// One ONNX Runtime session of a sentence-embedding graph.
pub struct ModelSession {
    session: Session,
    inputs: Vec<(String, InputKind)>,
    output: (String, GraphOutput),
    provider: Provider,
}

/// A model call's result: row-major values and their logical shape.
pub struct ModelOutput {
    pub values: Vec<f32>,
    pub kind: GraphOutput,
    pub hidden: usize,
}

impl ModelSession {
    pub fn open(onnx: &Path, opts: &SessionOptions) -> Result<Self> {
        let env = environment(opts.library.as_deref())?;
        let graph_err = |message: String| EncoderError::Graph {
            path: onnx.to_path_buf(),
            message,
        };
        let mut builder = Session::builder(env).map_err(|e| graph_err(e.to_string()))?;
        if let Some(n) = opts.intra_threads {
            builder = builder
                .with_intra_threads(n)
                .map_err(|e| graph_err(e.to_string()))?;
        }
        builder = register_provider(builder, opts, onnx)?;
        let session = builder
            .commit_from_file(onnx)
            .map_err(|e| graph_err(e.to_string()))?;
        let inputs = session
            .inputs()
            .iter()
            .map(|i| classify_input(i.name()).map(|k| (i.name().to_string(), k)))
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(graph_err)?;
        if !inputs.iter().any(|(_, k)| *k == InputKind::Ids) {
            return Err(graph_err("the graph has no input_ids input".into()));
        }
        let output = pick_output(&session).map_err(graph_err)?;
        Ok(Self {
            session,
            inputs,
            output,
            provider: opts.provider.clone(),
        })
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    pub fn output_kind(&self) -> GraphOutput {
        self.output.1
    }

    /// Runs one padded batch. `ids` and `mask` are `rows × seq` row-major.
    pub fn run(
        &mut self,
        ids: &[i64],
        mask: &[i64],
        rows: usize,
        seq: usize,
    ) -> Result<ModelOutput> {
        let infer = |e: ort::Error| EncoderError::Inference(e.to_string());
        let zeros = vec![0i64; ids.len()];
        let shape = [rows, seq];
        let mut values = Vec::with_capacity(self.inputs.len());
        for (name, kind) in &self.inputs {
            let data: &[i64] = match kind {
                InputKind::Ids => ids,
                InputKind::Mask => mask,
                InputKind::TypeIds => &zeros,
            };
            let tensor = TensorRef::from_array_view((shape, data)).map_err(infer)?;
            values.push((name.as_str(), tensor));
        }
        let inputs: Vec<(
            std::borrow::Cow<'_, str>,
            ort::session::SessionInputValue<'_>,
        )> = values
            .into_iter()
            .map(|(n, t)| (n.into(), t.into()))
            .collect();
        let (out_name, kind) = (self.output.0.clone(), self.output.1);
        let outputs = self.session.run(inputs).map_err(infer)?;
        let value = outputs
            .get(&out_name)
            .ok_or_else(|| EncoderError::Inference(format!("graph returned no {out_name}")))?;
        let (shape, data) = extract_f32(value)?;
        let hidden = shape.last().copied().unwrap_or(0);
        let expected = match kind {
            GraphOutput::Tokens => rows * seq * hidden,
            GraphOutput::Pooled => rows * hidden,
        };
        if data.len() != expected {
            return Err(EncoderError::Inference(format!(
                "output {out_name} has shape {shape:?}, expected {rows} rows of {seq} tokens"
            )));
        }
        Ok(ModelOutput {
            values: data,
            kind,
            hidden,
        })
    }
}

/// Reads a float output, widening fp16 graphs' outputs to f32.
fn extract_f32(value: &ort::value::DynValue) -> Result<(Vec<usize>, Vec<f32>)> {
    let infer = |e: ort::Error| EncoderError::Inference(e.to_string());
    match value.dtype().tensor_type() {
        Some(TensorElementType::Float16) => {
            let (shape, data) = value.try_extract_tensor::<half::f16>().map_err(infer)?;
            let dims = shape.iter().map(|&d| d as usize).collect();
            Ok((dims, data.iter().map(|x| x.to_f32()).collect()))
        }
        _ => {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(infer)?;
            Ok((shape.iter().map(|&d| d as usize).collect(), data.to_vec()))
        }
    }
}

fn classify_input(name: &str) -> std::result::Result<InputKind, String> {
    match name {
        "input_ids" => Ok(InputKind::Ids),
        "attention_mask" => Ok(InputKind::Mask),
        "token_type_ids" => Ok(InputKind::TypeIds),
        other => Err(format!(
            "unexpected graph input {other:?}: lexembed feeds input_ids, attention_mask and token_type_ids"
        )),
    }
}

/// Prefers a pooled `sentence_embedding` output of rank 2, else the token embeddings (rank 3).
fn pick_output(session: &Session) -> std::result::Result<(String, GraphOutput), String> {
    let rank = |t: &ValueType| t.tensor_shape().map(|s| s.len());
    let outs = session.outputs();
    if let Some(o) = outs
        .iter()
        .find(|o| o.name() == "sentence_embedding" && rank(o.dtype()) == Some(2))
    {
        return Ok((o.name().to_string(), GraphOutput::Pooled));
    }
    outs.iter()
        .find(|o| o.name() == "last_hidden_state")
        .or_else(|| outs.iter().find(|o| rank(o.dtype()) == Some(3)))
        .map(|o| (o.name().to_string(), GraphOutput::Tokens))
        .ok_or_else(|| {
            "no rank-3 token embedding output (last_hidden_state) and no rank-2 sentence_embedding"
                .into()
        })
}

fn register_provider(
    builder: ort::session::builder::SessionBuilder,
    opts: &SessionOptions,
    onnx: &Path,
) -> Result<ort::session::builder::SessionBuilder> {
    let unavailable = |provider: &str, reason: String| EncoderError::ProviderUnavailable {
        provider: provider.to_string(),
        reason,
    };
    let dispatch = match &opts.provider {
        Provider::Cpu => return Ok(builder),
        Provider::Cuda(c) => {
            require_compiled::<ep::CUDA>(
                "cuda",
                "install the onnxruntime-gpu build and point ORT_DYLIB_PATH at it",
            )?;
            let mut cuda = ep::CUDA::default()
                .with_device_id(c.device_id)
                .with_cuda_graph(c.cuda_graph);
            if let Some(limit) = c.memory_limit {
                cuda = cuda.with_memory_limit(limit);
            }
            cuda.build().error_on_failure()
        }
        Provider::TensorRt(t) => {
            require_compiled::<ep::TensorRT>(
                "tensorrt",
                "this ONNX Runtime build has no TensorRT provider (needs onnxruntime-gpu and TensorRT 10 libraries, libnvinfer)",
            )?;
            tensorrt_dispatch(t, opts).build().error_on_failure()
        }
    };
    let name = opts.provider.name();
    builder.with_execution_providers([dispatch]).map_err(|e| {
        unavailable(
            name,
            format!("registering it for {} failed: {e}", onnx.display()),
        )
    })
}

fn tensorrt_dispatch(t: &TensorRtOptions, opts: &SessionOptions) -> ep::TensorRT {
    let names = ["input_ids", "attention_mask"];
    let (min, opt, max) = tensorrt_profiles(
        &names,
        opts.token_budget.max(1),
        opts.max_batch_rows.max(1),
        opts.max_seq_len.max(1),
    );
    let mut trt = ep::TensorRT::default()
        .with_device_id(t.device_id)
        .with_fp16(t.fp16)
        .with_profile_min_shapes(min)
        .with_profile_opt_shapes(opt)
        .with_profile_max_shapes(max);
    if let Some(dir) = &t.engine_cache_dir {
        trt = trt
            .with_engine_cache(true)
            .with_engine_cache_path(dir.display())
            .with_timing_cache(true)
            .with_timing_cache_path(dir.display());
    }
    trt
}

/// Errors unless the loaded ONNX Runtime was built with provider `E`.
fn require_compiled<E: ort::ep::ExecutionProvider>(name: &str, hint: &str) -> Result<()> {
    match E::is_available() {
        Ok(true) => Ok(()),
        Ok(false) => Err(EncoderError::ProviderUnavailable {
            provider: name.to_string(),
            reason: format!("the loaded ONNX Runtime library does not include it; {hint}"),
        }),
        Err(e) => Err(EncoderError::ProviderUnavailable {
            provider: name.to_string(),
            reason: e.to_string(),
        }),
    }
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
