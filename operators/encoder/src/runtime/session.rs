//! One ONNX Runtime session of a sentence-embedding graph, with the host buffers it reuses.
//!
//! Takes token ids and a batch plan, pads them into buffers the session owns (grown only when a call is
//! larger than any before: a counter says how often), runs the graph and returns one pooled row per
//! input. Graphs that pool inside (`sentence_embedding [rows, dim]`, what the export script writes) run
//! through IO binding straight into a reused output buffer; older graphs that return token embeddings
//! (`last_hidden_state`) run the plain way and are pooled here. Knows nothing of text or Arrow.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use tracing::info;

use super::binding::{Binding, c_name};
use super::placement::{Placement, check_placement, warn_of_slow_cpu_ops};
use super::providers::register_provider;
use super::{Provider, environment};
use crate::batching::BatchPlan;
use crate::error::{EncoderError, Result};
use crate::pooling::Pooling;
use crate::tokenize::TokenIds;

/// Session settings beyond the provider.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub provider: Provider,
    /// Threads inside one operator; `None`: every core on CPU, 1 on GPUs (the host's cores tokenize).
    pub intra_threads: Option<usize>,
    pub library: Option<PathBuf>,
    /// Token budget, used to size TensorRT's shape profiles.
    pub token_budget: usize,
    pub max_batch_rows: usize,
    pub max_seq_len: usize,
    /// How token embeddings become one vector, for graphs that do not pool themselves.
    pub pooling: Pooling,
    /// Width of the pooled vector.
    pub hidden: usize,
    /// Run pooled graphs through IO binding (off: the plain `run`, for comparison).
    pub io_binding: bool,
}

/// What the graph hands back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphOutput {
    /// `[rows, seq, hidden]` token embeddings; lexembed pools.
    Tokens,
    /// `[rows, hidden]`, already pooled inside the graph.
    Pooled,
}

impl GraphOutput {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tokens => "token embeddings (pooled by lexembed)",
            Self::Pooled => "sentence_embedding (pooled in the graph)",
        }
    }
}

/// The graph's inputs lexembed knows how to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputKind {
    Ids,
    Mask,
    TypeIds,
}

struct GraphInput {
    name: String,
    c_name: CString,
    kind: InputKind,
}

struct OutputSpec {
    name: String,
    c_name: CString,
    kind: GraphOutput,
    /// The output is float32 (an fp16 graph exported with fp32 inputs and outputs is too).
    float32: bool,
}

/// Padded ids and mask, zeros for token types, and the pooled output: reused by every call.
#[derive(Default)]
struct HostBuffers {
    ids: Vec<i64>,
    mask: Vec<i64>,
    type_ids: Vec<i64>,
    pooled: Vec<f32>,
    /// Times a buffer had to grow (each growth is one allocation); constant once warmed up.
    growths: u64,
}

impl HostBuffers {
    /// Makes the buffers hold a `rows × seq` call, allocating only past the largest call so far.
    fn prepare(&mut self, rows: usize, seq: usize, hidden: usize) {
        let n = rows * seq;
        for buf in [&mut self.ids, &mut self.mask, &mut self.type_ids] {
            self.growths += u64::from(n > buf.capacity());
            buf.resize(n, 0);
        }
        let out = rows * hidden;
        self.growths += u64::from(out > self.pooled.capacity());
        self.pooled.resize(out, 0.0);
    }

    /// Right-padded ids and mask of the plan's rows, in plan order.
    fn fill(&mut self, tokens: &[TokenIds], plan: &BatchPlan, pad: i64) {
        let seq = plan.padded_len;
        self.ids.fill(pad);
        self.mask.fill(0);
        self.type_ids.fill(0);
        for (r, &i) in plan.rows.iter().enumerate() {
            let t = &tokens[i].0;
            let row = r * seq..r * seq + t.len();
            self.ids[row.clone()]
                .iter_mut()
                .zip(t)
                .for_each(|(d, &s)| *d = i64::from(s));
            self.mask[row].fill(1);
        }
    }
}

/// One ONNX Runtime session of a sentence-embedding graph.
pub struct ModelSession {
    session: Session,
    inputs: Vec<GraphInput>,
    output: OutputSpec,
    provider: Provider,
    pooling: Pooling,
    hidden: usize,
    binding: Option<Binding>,
    buffers: HostBuffers,
    placement: Placement,
}

impl ModelSession {
    /// Loads the graph, registers the provider, and checks with one profiled warm-up call where the
    /// graph's nodes run (a GPU session with heavy nodes on the CPU is an error).
    pub fn open(onnx: &Path, opts: &SessionOptions) -> Result<Self> {
        let graph_err = |message: String| EncoderError::Graph {
            path: onnx.to_path_buf(),
            message,
        };
        let profile = profile_prefix();
        let session = build_session(onnx, opts, &profile)?;
        let inputs = session
            .inputs()
            .iter()
            .map(|i| {
                Ok(GraphInput {
                    name: i.name().to_string(),
                    c_name: c_name(i.name())?,
                    kind: classify_input(i.name()).map_err(graph_err)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if !inputs.iter().any(|i| i.kind == InputKind::Ids) {
            return Err(graph_err("the graph has no input_ids input".into()));
        }
        let output = pick_output(&session).map_err(graph_err)?;
        let binding = if opts.io_binding && output.kind == GraphOutput::Pooled && output.float32 {
            Some(Binding::new(&session)?)
        } else {
            None
        };
        let mut me = Self {
            session,
            inputs,
            output,
            provider: opts.provider.clone(),
            pooling: opts.pooling,
            hidden: opts.hidden,
            binding,
            buffers: HostBuffers::default(),
            placement: Placement::default(),
        };
        me.placement = me.warm_up_and_profile()?;
        check_placement(&me.provider, &me.placement)?;
        warn_of_slow_cpu_ops(&me.provider, &me.placement, onnx);
        info!(
            graph = %onnx.display(),
            provider = me.provider.name(),
            output = me.output.kind.name(),
            io_binding = me.binding.is_some(),
            placement = %me.placement.summary(),
            "model session ready"
        );
        Ok(me)
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    pub fn output_kind(&self) -> GraphOutput {
        self.output.kind
    }

    pub fn uses_io_binding(&self) -> bool {
        self.binding.is_some()
    }

    /// Nodes per provider, from the warm-up call's profile.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Allocations of the reused host buffers so far.
    pub fn buffer_growths(&self) -> u64 {
        self.buffers.growths
    }

    /// Runs one batch: the plan's rows of `tokens`, right-padded with `pad`. Returns `rows × hidden`
    /// pooled values in plan order (normalised only if the graph normalises).
    pub fn run(&mut self, tokens: &[TokenIds], plan: &BatchPlan, pad: i64) -> Result<&[f32]> {
        let (rows, seq) = (plan.rows.len(), plan.padded_len);
        self.buffers.prepare(rows, seq, self.hidden);
        self.buffers.fill(tokens, plan, pad);
        if self.binding.is_some() {
            self.run_bound(rows, seq)?;
        } else {
            self.run_plain(rows, seq)?;
        }
        Ok(&self.buffers.pooled)
    }

    fn run_bound(&mut self, rows: usize, seq: usize) -> Result<()> {
        let Some(binding) = self.binding.as_mut() else {
            return Err(EncoderError::Inference("no IO binding".into()));
        };
        let shape = [rows as i64, seq as i64];
        let b = &mut self.buffers;
        for input in &self.inputs {
            let data = match input.kind {
                InputKind::Ids => &mut b.ids,
                InputKind::Mask => &mut b.mask,
                InputKind::TypeIds => &mut b.type_ids,
            };
            binding.bind_input(&input.c_name, data, &shape)?;
        }
        let out_shape = [rows as i64, self.hidden as i64];
        binding.bind_output(&self.output.c_name, &mut b.pooled, &out_shape)?;
        binding.run(&self.session)
    }

    fn run_plain(&mut self, rows: usize, seq: usize) -> Result<()> {
        let infer = |e: ort::Error| EncoderError::Inference(e.to_string());
        let shape = [rows, seq];
        let b = &mut self.buffers;
        let mut values = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let data: &[i64] = match input.kind {
                InputKind::Ids => &b.ids,
                InputKind::Mask => &b.mask,
                InputKind::TypeIds => &b.type_ids,
            };
            let tensor = TensorRef::from_array_view((shape, data)).map_err(infer)?;
            values.push((
                std::borrow::Cow::from(input.name.as_str()),
                ort::session::SessionInputValue::from(tensor),
            ));
        }
        let outputs = self.session.run(values).map_err(infer)?;
        let name = &self.output.name;
        let value = outputs
            .get(name)
            .ok_or_else(|| EncoderError::Inference(format!("graph returned no {name}")))?;
        let (shape, data) = extract_f32(value)?;
        let hidden = self.hidden;
        let expected = match self.output.kind {
            GraphOutput::Tokens => rows * seq * hidden,
            GraphOutput::Pooled => rows * hidden,
        };
        if data.len() != expected || shape.last() != Some(&hidden) {
            return Err(EncoderError::Inference(format!(
                "output {name} has shape {shape:?}, expected {rows} rows of {hidden} values{}",
                if self.output.kind == GraphOutput::Tokens {
                    format!(" for {seq} tokens")
                } else {
                    String::new()
                }
            )));
        }
        match self.output.kind {
            GraphOutput::Pooled => b.pooled.copy_from_slice(&data),
            GraphOutput::Tokens => {
                let per_row = seq * hidden;
                for (r, out) in b.pooled.chunks_exact_mut(hidden).enumerate() {
                    self.pooling.pool_row(
                        &data[r * per_row..(r + 1) * per_row],
                        &b.mask[r * seq..(r + 1) * seq],
                        hidden,
                        out,
                    );
                }
            }
        }
        Ok(())
    }

    /// One two-token call with profiling on, then profiling off: where did the nodes run?
    fn warm_up_and_profile(&mut self) -> Result<Placement> {
        let plan = BatchPlan {
            rows: vec![0],
            padded_len: 2,
        };
        let run = self.run(&[TokenIds(vec![0, 0])], &plan, 0).map(|_| ());
        let file = self
            .session
            .end_profiling()
            .map_err(|e| EncoderError::Inference(format!("ending the warm-up profile: {e}")))?;
        let text = std::fs::read_to_string(&file);
        let _ = std::fs::remove_file(&file);
        run?;
        let text = text.map_err(|e| {
            EncoderError::Inference(format!("reading ONNX Runtime's profile {file}: {e}"))
        })?;
        Placement::from_profile(&text)
    }
}

/// ONNX Runtime graph optimizers a CPU session runs without (its `optimization.disable_specified_optimizers`).
const CPU_DISABLED_OPTIMIZERS: &str = "SkipLayerNormFusion";

fn build_session(onnx: &Path, opts: &SessionOptions, profile: &Path) -> Result<Session> {
    let env = environment(opts.library.as_deref())?;
    let graph_err = |message: String| EncoderError::Graph {
        path: onnx.to_path_buf(),
        message,
    };
    let mut builder = Session::builder(env).map_err(|e| graph_err(e.to_string()))?;
    let gpu = opts.provider.is_gpu();
    let threads = opts.intra_threads.or(gpu.then_some(1));
    if let Some(n) = threads {
        builder = builder
            .with_intra_threads(n)
            .map_err(|e| graph_err(e.to_string()))?;
    }
    if gpu {
        // The host's cores belong to tokenization; a spinning ORT thread would take one.
        builder = builder
            .with_intra_op_spinning(false)
            .map_err(|e| graph_err(e.to_string()))?;
    } else {
        // ONNX Runtime's CPU SkipLayerNormalization kernel is 3-4x slower than the Add +
        // LayerNormalization it replaces (~10% of an e5-small call, BENCHMARKS.md): the CPU graph keeps
        // them apart (export_model.py) and the session must not fuse them back.
        builder = builder
            .with_disabled_optimizers(CPU_DISABLED_OPTIMIZERS)
            .map_err(|e| graph_err(e.to_string()))?;
    }
    builder = builder
        .with_profiling(profile)
        .map_err(|e| graph_err(e.to_string()))?;
    builder = register_provider(builder, opts, onnx)?;
    builder
        .commit_from_file(onnx)
        .map_err(|e| graph_err(e.to_string()))
}

/// A fresh profile file prefix in the temp directory (ONNX Runtime appends a timestamp).
fn profile_prefix() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "lexembed-placement-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Reads a float output, widening fp16 outputs to f32.
fn extract_f32(value: &ort::value::DynValue) -> Result<(Vec<usize>, std::borrow::Cow<'_, [f32]>)> {
    let infer = |e: ort::Error| EncoderError::Inference(e.to_string());
    match value.dtype().tensor_type() {
        Some(TensorElementType::Float16) => {
            let (shape, data) = value.try_extract_tensor::<half::f16>().map_err(infer)?;
            let dims = shape.iter().map(|&d| d as usize).collect();
            Ok((dims, data.iter().map(|x| x.to_f32()).collect()))
        }
        _ => {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(infer)?;
            let dims = shape.iter().map(|&d| d as usize).collect();
            Ok((dims, std::borrow::Cow::Borrowed(data)))
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
fn pick_output(session: &Session) -> std::result::Result<OutputSpec, String> {
    let rank = |t: &ValueType| t.tensor_shape().map(|s| s.len());
    let outs = session.outputs();
    let pooled = outs
        .iter()
        .find(|o| o.name() == "sentence_embedding" && rank(o.dtype()) == Some(2));
    let (out, kind) = match pooled {
        Some(o) => (o, GraphOutput::Pooled),
        None => outs
            .iter()
            .find(|o| o.name() == "last_hidden_state")
            .or_else(|| outs.iter().find(|o| rank(o.dtype()) == Some(3)))
            .map(|o| (o, GraphOutput::Tokens))
            .ok_or_else(|| {
                "no rank-3 token embedding output (last_hidden_state) and no rank-2 \
                 sentence_embedding"
                    .to_string()
            })?,
    };
    Ok(OutputSpec {
        name: out.name().to_string(),
        c_name: CString::new(out.name()).map_err(|e| e.to_string())?,
        kind,
        float32: out.dtype().tensor_type() == Some(TensorElementType::Float32),
    })
}
