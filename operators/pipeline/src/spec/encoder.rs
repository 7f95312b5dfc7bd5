//! The `encoder:` block: which model, where it runs (provider, precision), its prompts and its
//! batching; converted into the encoder's own types at the crate border.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How text is embedded.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    /// Model directory; default: $LEXEMBED_MODEL, else the all-MiniLM-L6-v2 export setup leaves.
    #[serde(default)]
    pub model: Option<String>,
    /// cpu (default), cuda or tensorrt.
    #[serde(default)]
    pub provider: Option<ProviderSpec>,
    #[serde(default)]
    pub device_id: Option<i32>,
    /// Matryoshka dims written (one column each); default: every dim the model serves.
    #[serde(default)]
    pub dims: Vec<u32>,
    /// Most padded tokens (rows × longest row) per model call; default 1,024 on CPU, 16,384 on GPUs.
    #[serde(default)]
    pub token_budget: Option<usize>,
    /// Most rows per model call; default 256 on CPU, the token budget / 16 on GPUs.
    #[serde(default)]
    pub max_batch_rows: Option<usize>,
    /// Threads inside one ONNX Runtime operator; default every core on CPU, 1 on GPUs.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Graph precision: auto (default: fp16 on cuda/tensorrt when the model has onnx/model_fp16.onnx,
    /// else fp32), fp32 or fp16.
    #[serde(default)]
    pub precision: Option<PrecisionSpec>,
    /// Model sessions running at once (own thread and CUDA stream each); default 1 on CPU, 2 on GPUs.
    #[serde(default)]
    pub streams: Option<usize>,
    /// Document batches read and tokenized ahead of the model (bounds memory); default 2.
    #[serde(default)]
    pub ahead: Option<usize>,
    /// TensorRT engine and timing cache directory (relative to the spec file); engines are rebuilt on
    /// every start without it.
    #[serde(default)]
    pub trt_cache: Option<String>,
    /// The prompt put before every document: one of the model's prompt names (`document`,
    /// `passage`, …), `none`, or `{text: "passage: "}`; default: the model's document prompt
    /// (`config_sentence_transformers.json`), none when it has none. Recorded in the dataset with the
    /// model's query prompt, which every query against it must use.
    #[serde(default)]
    pub prompt: Option<PromptSpec>,
}

/// How a spec chooses the document prompt (see `EncoderSpec::prompt`). Read by hand: serde's
/// untagged enums say only "data did not match any variant".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PromptSpec {
    /// `none`, or one of the model's prompt names.
    Name(String),
    /// A literal prompt.
    Text(PromptText),
}

/// `{text: "passage: "}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptText {
    pub text: String,
}

impl<'de> Deserialize<'de> for PromptSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(PromptVisitor)
    }
}

struct PromptVisitor;

impl<'de> serde::de::Visitor<'de> for PromptVisitor {
    type Value = PromptSpec;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("one of the model's prompt names, none, or {text: \"…\"}")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<PromptSpec, E> {
        Ok(PromptSpec::Name(v.to_string()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        map: A,
    ) -> std::result::Result<PromptSpec, A::Error> {
        let text = PromptText::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(PromptSpec::Text(text))
    }
}

impl From<PromptSpec> for lexembed_encoder::PromptChoice {
    fn from(p: PromptSpec) -> Self {
        match p {
            PromptSpec::Name(n) if n == "none" => Self::None,
            PromptSpec::Name(n) => Self::Named(n),
            PromptSpec::Text(PromptText { text }) => Self::Literal(text),
        }
    }
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderSpec {
    #[default]
    Cpu,
    Cuda,
    #[serde(alias = "trt")]
    Tensorrt,
}

impl From<ProviderSpec> for lexembed_encoder::Provider {
    /// With the encoder's default options for that provider (device, engine cache are set apart).
    fn from(p: ProviderSpec) -> Self {
        match p {
            ProviderSpec::Cpu => Self::Cpu,
            ProviderSpec::Cuda => Self::Cuda(lexembed_encoder::CudaOptions::default()),
            ProviderSpec::Tensorrt => Self::tensorrt(),
        }
    }
}

/// Which graph of the model directory runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionSpec {
    #[default]
    Auto,
    #[serde(alias = "float32")]
    Fp32,
    #[serde(alias = "float16")]
    Fp16,
}

impl From<PrecisionSpec> for lexembed_encoder::Precision {
    fn from(p: PrecisionSpec) -> Self {
        match p {
            PrecisionSpec::Auto => Self::Auto,
            PrecisionSpec::Fp32 => Self::Fp32,
            PrecisionSpec::Fp16 => Self::Fp16,
        }
    }
}
