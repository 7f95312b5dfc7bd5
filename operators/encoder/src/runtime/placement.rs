//! Where the graph's nodes run: counted from ONNX Runtime's own profile of one warm-up call.
//!
//! ONNX Runtime places every node it cannot give to the requested provider on the CPU provider, without
//! an error. For shape arithmetic that is intended; for a MatMul or an Attention node it means the
//! "GPU" run is really a CPU run. `session.disable_cpu_ep_fallback` is too blunt (the CUDA provider
//! itself prefers the CPU for small shape nodes, so sessions would fail that are fine), so lexembed
//! profiles one small call at session start, counts nodes per provider and refuses a GPU session whose
//! compute-heavy nodes landed on the CPU. The same count tells a CPU session that it runs an operator
//! whose CPU kernel is slower than the nodes it fused (a graph exported before lexembed avoided it).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tracing::warn;

use crate::error::{EncoderError, Result};
use crate::runtime::Provider;

/// The provider names ONNX Runtime uses in profiles.
pub const CPU_PROVIDER: &str = "CPUExecutionProvider";

/// Operators whose place decides the speed of a transformer; one of them on the CPU in a GPU session is
/// an error.
pub const HEAVY_OPS: [&str; 8] = [
    "MatMul",
    "Gemm",
    "FusedMatMul",
    "Attention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "EmbedLayerNormalization",
    "BiasGelu",
];

/// Nodes per provider and, for the CPU provider, which heavy operators it ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Distinct nodes per provider name.
    pub nodes: BTreeMap<String, usize>,
    /// Heavy operator types (`HEAVY_OPS`) that ran on the CPU provider, with their node counts.
    pub heavy_on_cpu: BTreeMap<String, usize>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    cat: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    args: EventArgs,
}

#[derive(Deserialize, Default)]
struct EventArgs {
    #[serde(default)]
    op_name: Option<String>,
    #[serde(default)]
    provider: Option<String>,
}

impl Placement {
    /// Reads an ONNX Runtime profile (a JSON array of trace events). Each node is counted once, however
    /// many events it has.
    pub fn from_profile(json: &str) -> Result<Self> {
        let events: Vec<Event> = serde_json::from_str(json)
            .map_err(|e| EncoderError::Inference(format!("ONNX Runtime profile: {e}")))?;
        let mut seen = std::collections::HashSet::new();
        let mut placement = Self::default();
        for e in events.into_iter().filter(|e| e.cat == "Node") {
            let (Some(op), Some(provider)) = (e.args.op_name, e.args.provider) else {
                continue;
            };
            let node = e.name.trim_end_matches("_kernel_time").to_string();
            if !seen.insert(node) {
                continue;
            }
            *placement.nodes.entry(provider.clone()).or_default() += 1;
            if provider == CPU_PROVIDER && HEAVY_OPS.contains(&op.as_str()) {
                *placement.heavy_on_cpu.entry(op).or_default() += 1;
            }
        }
        Ok(placement)
    }

    /// `"CUDAExecutionProvider: 310 nodes, CPUExecutionProvider: 12 nodes"`.
    pub fn summary(&self) -> String {
        self.nodes
            .iter()
            .map(|(p, n)| format!("{p}: {n} nodes"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Errors when `provider` is a GPU provider and heavy nodes ran on the CPU, or nothing ran on the GPU.
pub fn check_placement(provider: &Provider, placement: &Placement) -> Result<()> {
    if !provider.is_gpu() {
        return Ok(());
    }
    let on_gpu: usize = placement
        .nodes
        .iter()
        .filter(|(p, _)| p.as_str() != CPU_PROVIDER)
        .map(|(_, n)| n)
        .sum();
    if placement.heavy_on_cpu.is_empty() && on_gpu > 0 {
        return Ok(());
    }
    let heavy = placement
        .heavy_on_cpu
        .iter()
        .map(|(op, n)| format!("{n} {op}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(EncoderError::ProviderUnavailable {
        provider: provider.name().to_string(),
        reason: format!(
            "compute-heavy nodes ran on the CPU provider ({}); placement: {}. The graph has \
             operators this ONNX Runtime build cannot run on {}: export it again with \
             integration/python/export_model.py for this ONNX Runtime version",
            if heavy.is_empty() {
                "none on the GPU"
            } else {
                &heavy
            },
            placement.summary(),
            provider.name()
        ),
    })
}

/// Operators whose ONNX Runtime CPU kernel is slower than the unfused nodes they replace, with what to
/// do: a graph exported before lexembed kept them apart.
const SLOW_ON_CPU: [(&str, &str); 1] = [(
    "SkipLayerNormalization",
    "its CPU kernel is 3-4x slower than Add + LayerNormalization (~10% of the model's time)",
)];

/// Logs a warning for each `SLOW_ON_CPU` operator a CPU session runs: the graph still works, slower.
pub fn warn_of_slow_cpu_ops(provider: &Provider, placement: &Placement, graph: &Path) {
    if provider.is_gpu() {
        return;
    }
    for (op, why) in SLOW_ON_CPU {
        if let Some(n) = placement.heavy_on_cpu.get(op) {
            warn!(
                graph = %graph.display(),
                "the graph has {n} {op} nodes fused at export: {why}; export it again with \
                 integration/python/export_model.py for the CPU"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::CudaOptions;

    const PROFILE: &str = r#"[
      {"cat":"Session","name":"model_run","args":{}},
      {"cat":"Node","name":"MatMul_1_kernel_time","args":{"op_name":"MatMul","provider":"CUDAExecutionProvider"}},
      {"cat":"Node","name":"MatMul_1_kernel_time","args":{"op_name":"MatMul","provider":"CUDAExecutionProvider"}},
      {"cat":"Node","name":"Shape_3_kernel_time","args":{"op_name":"Shape","provider":"CPUExecutionProvider"}},
      {"cat":"Node","name":"Attention_0_kernel_time","args":{"op_name":"Attention","provider":"CPUExecutionProvider"}}
    ]"#;

    #[test]
    fn counts_each_node_once_per_provider() {
        let p = Placement::from_profile(PROFILE).unwrap();
        assert_eq!(p.nodes["CUDAExecutionProvider"], 1);
        assert_eq!(p.nodes[CPU_PROVIDER], 2);
        assert_eq!(p.heavy_on_cpu["Attention"], 1);
        assert!(!p.heavy_on_cpu.contains_key("Shape"));
    }

    #[test]
    fn a_gpu_session_with_heavy_cpu_nodes_is_refused_and_cpu_is_not_checked() {
        let p = Placement::from_profile(PROFILE).unwrap();
        let cuda = Provider::Cuda(CudaOptions::default());
        let err = check_placement(&cuda, &p).unwrap_err().to_string();
        assert!(err.contains("1 Attention"), "{err}");
        check_placement(&Provider::Cpu, &p).unwrap();
        let mut fine = p.clone();
        fine.heavy_on_cpu.clear();
        check_placement(&cuda, &fine).unwrap();
    }
}
