//! Test fixtures shared across lexembed's crates (a dev-dependency only): the committed tiny XLM-R
//! model and copies of it with a file changed, such as E5's prompts. Panics on I/O errors, as tests
//! may.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The tiny random-weight XLM-R model committed with the encoder's tests (real tokenizer, pruned
/// vocabulary, CLS pooling, dims 64/32/16/8).
pub fn tiny_xlmr() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../encoder/tests/fixtures/tiny-xlmr")
}

/// E5's prompts, as `config_sentence_transformers.json` stores them.
pub const E5_PROMPTS: &str = r#"{"prompts": {"query": "query: ", "document": "passage: "}}"#;

/// A copy of the tiny model with E5's prompts (same model id): queries take "query: ", documents
/// "passage: ".
pub fn prompted_tiny() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&tiny_xlmr(), dir.path());
    std::fs::write(
        dir.path().join("config_sentence_transformers.json"),
        E5_PROMPTS,
    )
    .unwrap();
    dir
}

/// Copies a directory tree (a model directory, to change one of its files in a test).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}
