//! Benchmark texts: Spanish legal articles of mixed length from the demo corpus built by setup.

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;

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
