//! The model directory as sentence-transformers saves it, plus the ONNX graph: reading and checking it.
//!
//! Owns: which files must exist, what they say (module list, pooling, normalisation, max length,
//! Matryoshka dims, prompts) and the errors that name the missing or bad file. Knows nothing of ONNX
//! Runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::dims::MatryoshkaDims;
use crate::error::{EncoderError, Result};
use crate::pooling::Pooling;
use crate::precision::{FP16_FILE, FP32_FILE, OnnxGraphs};

/// Optional file written by lexembed's export script next to the sentence-transformers files.
pub const LEXEMBED_CONFIG: &str = "lexembed.json";

/// What a sentence-transformers model directory says about how to embed text.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub dir: PathBuf,
    /// A stable name for the model, recorded next to the vectors it produces.
    pub model_id: String,
    /// The ONNX graphs present (fp32, fp16); `precision::OnnxGraphs::choose` picks one.
    pub graphs: OnnxGraphs,
    pub tokenizer_path: PathBuf,
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: usize,
    /// Width of the pooled vector, from the pooling config.
    pub full_dim: u32,
    pub dims: MatryoshkaDims,
    /// The prompts `config_sentence_transformers.json` names (E5: `query` → `"query: "`, `document` →
    /// `"passage: "`); empty when the model has none.
    pub prompts: Prompts,
    /// Whether pooling covers the prompt's tokens (sentence-transformers' `include_prompt`, true
    /// unless the Pooling config says otherwise).
    pub include_prompt: bool,
}

/// A model's prompts, as sentence-transformers stores them: name → text put before the input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Prompts {
    #[serde(default)]
    pub prompts: BTreeMap<String, String>,
    /// The prompt sentence-transformers applies when the caller names none.
    #[serde(default)]
    pub default_prompt_name: Option<String>,
}

impl Prompts {
    /// The text of prompt `name`, when the model has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.prompts.get(name).map(String::as_str)
    }
}

/// sentence-transformers' own config, where the prompts live.
pub const ST_CONFIG: &str = "config_sentence_transformers.json";

#[derive(Debug, Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize, Default)]
struct LexembedConfig {
    model_id: Option<String>,
    #[serde(default)]
    matryoshka_dims: Vec<u32>,
}

impl ModelDir {
    /// Reads and checks every file the encoder needs; the first problem found is returned, naming its file.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(EncoderError::NoModelDir(dir));
        }
        let modules: Vec<ModuleEntry> = read_json(&require(
            &dir,
            "modules.json",
            "lists the sentence-transformers modules",
        )?)?;
        let pooling_module =
            find_module(&modules, "Pooling").ok_or_else(|| EncoderError::BadFile {
                path: dir.join("modules.json"),
                message: "no sentence_transformers Pooling module listed".into(),
            })?;
        let normalize = find_module(&modules, "Normalize").is_some();
        let pooling_file = require(
            &dir,
            &join_rel(&pooling_module.path, "config.json"),
            "the Pooling module's config",
        )?;
        let (pooling, full_dim) = read_pooling(&pooling_file)?;
        let include_prompt = read_include_prompt(&pooling_file)?;
        let max_seq_length = read_max_seq_length(&dir)?;
        let tokenizer_path = require(&dir, "tokenizer.json", "the HF tokenizers file")?;
        let graphs = find_onnx(&dir)?;
        let extra = read_lexembed_config(&dir)?;
        let dims = if extra.matryoshka_dims.is_empty() {
            MatryoshkaDims::default_for(full_dim)
        } else {
            MatryoshkaDims::with_listed(full_dim, &extra.matryoshka_dims).map_err(|e| {
                EncoderError::BadFile {
                    path: dir.join(LEXEMBED_CONFIG),
                    message: e.to_string(),
                }
            })?
        };
        let model_id = extra.model_id.unwrap_or_else(|| default_model_id(&dir));
        let prompts = read_prompts(&dir)?;
        Ok(Self {
            dir,
            model_id,
            graphs,
            tokenizer_path,
            pooling,
            normalize,
            max_seq_length,
            full_dim,
            dims,
            prompts,
            include_prompt,
        })
    }
}

fn find_module<'a>(modules: &'a [ModuleEntry], suffix: &str) -> Option<&'a ModuleEntry> {
    modules
        .iter()
        .find(|m| m.kind.rsplit('.').next() == Some(suffix))
}

fn join_rel(dir: &str, file: &str) -> String {
    if dir.is_empty() {
        file.to_string()
    } else {
        format!("{dir}/{file}")
    }
}

fn require(dir: &Path, file: &str, why: &'static str) -> Result<PathBuf> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(EncoderError::MissingFile {
            dir: dir.to_path_buf(),
            file: file.to_string(),
            why,
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, e))?;
    serde_json::from_str(&text).map_err(|e| bad(path, e))
}

fn bad(path: &Path, e: impl std::fmt::Display) -> EncoderError {
    EncoderError::BadFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Pooling mode and width. Accepts both the flag form (`pooling_mode_cls_token: true`) and a
/// `pooling_mode` string; anything lexembed does not implement is an error, never a silent default.
fn read_pooling(path: &Path) -> Result<(Pooling, u32)> {
    let v: Value = read_json(path)?;
    let width = v
        .get("word_embedding_dimension")
        .or_else(|| v.get("embedding_dimension"))
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(path, "missing word_embedding_dimension"))?;
    let width = u32::try_from(width).map_err(|e| bad(path, e))?;
    if let Some(mode) = v.get("pooling_mode").and_then(Value::as_str) {
        return Ok((Pooling::parse(mode, path)?, width));
    }
    let flags: Vec<&str> = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, val)| k.starts_with("pooling_mode_") && val.as_bool() == Some(true))
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default();
    match flags.as_slice() {
        [one] => Ok((
            Pooling::parse(one.trim_start_matches("pooling_mode_"), path)?,
            width,
        )),
        [] => Err(bad(path, "no pooling mode is enabled")),
        many => Err(EncoderError::UnknownPooling {
            path: path.to_path_buf(),
            mode: many.join("+"),
        }),
    }
}

/// The Pooling config's `include_prompt` (absent: true).
fn read_include_prompt(path: &Path) -> Result<bool> {
    let v: Value = read_json(path)?;
    match v.get("include_prompt") {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(bad(
            path,
            format!("include_prompt must be true or false, got {other}"),
        )),
    }
}

/// sentence-transformers ≤ 5 writes `max_seq_length` into `sentence_bert_config.json`; 6.x leaves it out
/// and keeps it as the tokenizer's `model_max_length`. Either way it is capped, as sentence-transformers
/// caps it, at the transformer's `max_position_embeddings`.
fn read_max_seq_length(dir: &Path) -> Result<usize> {
    let path = require(
        dir,
        "sentence_bert_config.json",
        "the sentence-transformers Transformer config",
    )?;
    let v: Value = read_json(&path)?;
    let from_st = v.get("max_seq_length").and_then(Value::as_u64);
    let tok_path = dir.join("tokenizer_config.json");
    let from_tokenizer = || -> Result<Option<u64>> {
        if !tok_path.is_file() {
            return Ok(None);
        }
        let t: Value = read_json(&tok_path)?;
        // HF writes a huge sentinel (1e30) for "no limit".
        Ok(t.get("model_max_length")
            .and_then(Value::as_u64)
            .filter(|&n| n < 1 << 40))
    };
    let n = match from_st {
        Some(n) => n,
        None => from_tokenizer()?.ok_or_else(|| {
            bad(
                &path,
                "no max_seq_length here and no model_max_length in tokenizer_config.json",
            )
        })?,
    };
    let cap = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|c| c.get("max_position_embeddings").and_then(Value::as_u64));
    let n = cap.map_or(n, |c| n.min(c));
    if n < 2 {
        return Err(bad(
            &path,
            format!("max_seq_length {n} leaves no room for text"),
        ));
    }
    usize::try_from(n).map_err(|e| bad(&path, e))
}

/// The fp32 graph (`onnx/model.onnx`, or `model.onnx` at the top) and the fp16 graph
/// (`onnx/model_fp16.onnx`); at least one must exist.
fn find_onnx(dir: &Path) -> Result<OnnxGraphs> {
    let fp32 = [FP32_FILE, "model.onnx"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file());
    let fp16 = Some(dir.join(FP16_FILE)).filter(|p| p.is_file());
    if fp32.is_none() && fp16.is_none() {
        return Err(EncoderError::MissingFile {
            dir: dir.to_path_buf(),
            file: FP32_FILE.into(),
            why: "the ONNX graph (also looked for model.onnx and onnx/model_fp16.onnx); export it \
                  with integration/python/export_model.py",
        });
    }
    Ok(OnnxGraphs { fp32, fp16 })
}

/// The prompts of `config_sentence_transformers.json` (none without the file); a default prompt
/// name that names no prompt is refused.
fn read_prompts(dir: &Path) -> Result<Prompts> {
    let path = dir.join(ST_CONFIG);
    if !path.is_file() {
        return Ok(Prompts::default());
    }
    let prompts: Prompts = read_json(&path)?;
    if let Some(name) = &prompts.default_prompt_name
        && !prompts.prompts.contains_key(name)
    {
        return Err(EncoderError::BadFile {
            path,
            message: format!("default_prompt_name {name:?} is not one of its prompts"),
        });
    }
    Ok(prompts)
}

fn read_lexembed_config(dir: &Path) -> Result<LexembedConfig> {
    let path = dir.join(LEXEMBED_CONFIG);
    if path.is_file() {
        read_json(&path)
    } else {
        Ok(LexembedConfig::default())
    }
}

fn default_model_id(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}

/// The model a command opens when none is named: `$LEXEMBED_MODEL`, else the all-MiniLM-L6-v2 export
/// `integration/setup.sh` leaves in lexembed's cache.
pub fn default_model_dir() -> std::path::PathBuf {
    std::env::var_os("LEXEMBED_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::runtime::lexembed_home().join("models/all-MiniLM-L6-v2"))
}
