//! Held-out QA pairs: loading them (JSONL, Parquet or a Lance table with the `schemas/qa_pairs.json`
//! columns) and a digest that identifies the set in the evaluation history.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use sha2::{Digest, Sha256};

use crate::error::{EvalError, Result};

/// One question and the ids of the corpus documents that answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaPair {
    pub query_id: String,
    pub query: String,
    pub relevant_ids: BTreeSet<String>,
}

/// Reads QA pairs by extension: `.jsonl`/`.json`, `.parquet`, or a Lance dataset (local or on object
/// storage).
pub async fn load(path: &Path) -> Result<Vec<QaPair>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let remote = path.to_str().is_some_and(|p| p.contains("://"));
    let pairs = match ext {
        "lance" => load_lance(path).await?,
        _ if remote => {
            return Err(EvalError::QaFile {
                path: path.to_path_buf(),
                message: "QA pairs on object storage must be a Lance dataset (.lance); \
                          JSONL and Parquet are read from local files"
                    .into(),
            });
        }
        "jsonl" | "json" | "ndjson" => load_jsonl(path)?,
        "parquet" => load_parquet(path)?,
        _ => {
            return Err(EvalError::QaFile {
                path: path.to_path_buf(),
                message: "unknown format: use .jsonl, .parquet or a .lance dataset".into(),
            });
        }
    };
    if pairs.is_empty() {
        return Err(EvalError::QaFile {
            path: path.to_path_buf(),
            message: "the QA set is empty".into(),
        });
    }
    Ok(pairs)
}

fn load_jsonl(path: &Path) -> Result<Vec<QaPair>> {
    let f = std::fs::File::open(path).map_err(|e| EvalError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let bad = |message: String| EvalError::Qa {
            path: path.to_path_buf(),
            line: n + 1,
            message,
        };
        let line = line.map_err(|e| bad(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let text = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("`{k}` missing or not a string")))
        };
        let (query_id, query) = (text("query_id")?, text("query")?);
        let relevant = match (v.get("relevant_ids"), v.get("relevant_id")) {
            (Some(serde_json::Value::Array(a)), _) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("`relevant_ids` must hold strings".into()))
                })
                .collect::<Result<BTreeSet<_>>>()?,
            (None, Some(serde_json::Value::String(s))) => BTreeSet::from([s.clone()]),
            _ => {
                return Err(bad(
                    "`relevant_ids` (a list of corpus ids) is missing".into()
                ));
            }
        };
        out.push(QaPair {
            query_id,
            query,
            relevant_ids: relevant,
        });
    }
    Ok(out)
}

fn from_batches(path: &Path, batches: &[RecordBatch]) -> Result<Vec<QaPair>> {
    let mut out = Vec::new();
    for b in batches {
        let col = |name: &str| {
            b.column_by_name(name).ok_or_else(|| EvalError::QaFile {
                path: path.to_path_buf(),
                message: format!("no column `{name}`"),
            })
        };
        let qid = arrow_cast::cast(col("query_id")?, &arrow_schema::DataType::Utf8)?;
        let query = arrow_cast::cast(col("query")?, &arrow_schema::DataType::Utf8)?;
        let rel = col("relevant_ids")?;
        let rel = rel.as_list_opt::<i32>().ok_or_else(|| EvalError::QaFile {
            path: path.to_path_buf(),
            message: "`relevant_ids` must be a list of strings".into(),
        })?;
        for i in 0..b.num_rows() {
            let ids = arrow_cast::cast(&rel.value(i), &arrow_schema::DataType::Utf8)?;
            out.push(QaPair {
                query_id: qid.as_string::<i32>().value(i).to_string(),
                query: query.as_string::<i32>().value(i).to_string(),
                relevant_ids: ids
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string)
                    .collect(),
            });
        }
    }
    Ok(out)
}

fn load_parquet(path: &Path) -> Result<Vec<QaPair>> {
    let f = std::fs::File::open(path).map_err(|e| EvalError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| EvalError::QaFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    from_batches(path, &batches)
}

async fn load_lance(path: &Path) -> Result<Vec<QaPair>> {
    use futures::TryStreamExt;
    let uri = path.display().to_string();
    let lance_err = |e| lexembed_lance::StoreError::Lance {
        uri: uri.clone(),
        source: e,
    };
    let ds = lexembed_lance::DatasetLocation::new(&uri).open().await?;
    let stream = ds.scan().try_into_stream().await.map_err(lance_err)?;
    let batches: Vec<_> = stream.try_collect().await.map_err(lance_err)?;
    from_batches(path, &batches)
}

/// sha256 over the pairs in query-id order: the same set gives the same digest whatever the file.
pub fn digest(pairs: &[QaPair]) -> String {
    let mut sorted: Vec<&QaPair> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.query_id.cmp(&b.query_id));
    let mut h = Sha256::new();
    for p in sorted {
        h.update(p.query_id.as_bytes());
        h.update([0]);
        h.update(p.query.as_bytes());
        h.update([0]);
        for r in &p.relevant_ids {
            h.update(r.as_bytes());
            h.update([1]);
        }
        h.update([2]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn qa_pairs_on_object_storage_must_be_lance() {
        for uri in ["s3://bucket/qa.parquet", "s3://bucket/qa.jsonl"] {
            let err = load(Path::new(uri)).await.unwrap_err().to_string();
            assert!(err.contains(uri), "{err}");
            assert!(err.contains("must be a Lance dataset"), "{err}");
        }
    }
}
