//! Benchmark texts: Spanish legal articles of mixed length from the demo corpus built by setup.

use std::io::BufRead;
use std::path::Path;
#[cfg(feature = "full")]
use std::path::PathBuf;

use anyhow::Context;
#[cfg(feature = "full")]
use lexembed_encoder::runtime::lexembed_home;

/// Which texts and model a benchmark over BOE articles uses.
#[cfg(feature = "full")]
#[derive(clap::Args, Debug)]
pub struct CorpusArgs {
    /// JSONL corpus (id, title, text, …). Default: the BOE demo corpus.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Rows (or texts) to use.
    #[arg(long, default_value_t = 2000)]
    pub limit: usize,
    /// Model directory (default: the all-MiniLM-L6-v2 export).
    #[arg(long, env = "LEXEMBED_MODEL")]
    pub model: Option<PathBuf>,
}

#[cfg(feature = "full")]
impl CorpusArgs {
    pub fn corpus(&self) -> PathBuf {
        self.corpus
            .clone()
            .unwrap_or_else(|| lexembed_home().join("data/boe_articles.jsonl"))
    }

    pub fn model(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(|| lexembed_home().join("models/all-MiniLM-L6-v2"))
    }
}

/// Up to `limit` texts from a JSONL file of `{"title", "text"}` rows (titles are short, bodies long:
/// together they give the mixed lengths real traffic has), or from a plain file of one text per line.
#[cfg(feature = "full")]
pub fn load(path: &Path, limit: usize) -> anyhow::Result<Vec<String>> {
    load_fields(path, limit, &["title".into(), "text".into()])
}

/// `load` with the JSONL fields to take, in order.
pub fn load_fields(path: &Path, limit: usize, fields: &[String]) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("{}: run integration/setup.sh", path.display()))?;
    let mut texts = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{} line {}", path.display(), n + 1))?;
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(v) if v.is_object() => {
                for key in fields {
                    if let Some(t) = v
                        .get(key.as_str())
                        .and_then(|t| t.as_str())
                        .filter(|t| !t.is_empty())
                    {
                        texts.push(t.to_string());
                    }
                }
            }
            _ => texts.push(line),
        }
        if texts.len() >= limit {
            break;
        }
    }
    texts.truncate(limit);
    anyhow::ensure!(!texts.is_empty(), "{} holds no texts", path.display());
    Ok(texts)
}
