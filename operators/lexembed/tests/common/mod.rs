//! What every end-to-end test of the `lexembed` binary needs: the binary, the committed tiny model, the
//! repository root, the Python with the oracles.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::PathBuf;
use std::process::Command;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lexembed"))
}

/// The tiny random-weight XLM-R fixture (real tokenizer, pruned vocabulary).
pub fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../encoder/tests/fixtures/tiny-xlmr")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn python() -> String {
    std::env::var("LEXEMBED_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Every row of the Lance dataset at `uri` (none when there is no dataset yet).
pub fn scan_all(uri: &str) -> Vec<arrow_array::RecordBatch> {
    use futures::TryStreamExt;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let found = lexembed_lance::DatasetLocation::new(uri)
            .open_if_exists()
            .await
            .expect("open dataset");
        match found {
            None => vec![],
            Some(ds) => ds
                .scan()
                .try_into_stream()
                .await
                .expect("scan")
                .try_collect()
                .await
                .expect("read batches"),
        }
    })
}

/// The `id` of each JSON line a command printed.
pub fn json_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect()
}

/// Samples of a Prometheus text exposition, parsed by the official Python client's parser
/// (`integration/python/prom_parse.py`): `[{name, labels, value, type}]`.
pub fn prometheus_samples(text: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(repo().join("integration/python/prom_parse.py"))
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the Prometheus parser refused:\n{text}"
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// The first `n` BOE articles of the demo corpus, written to `dir/docs.jsonl`.
pub fn boe_articles(dir: &std::path::Path, n: usize) {
    let data = lexembed_encoder::runtime::lexembed_home().join("data");
    let articles: Vec<String> = std::fs::read_to_string(data.join("boe_articles.jsonl"))
        .expect("run integration/setup.sh")
        .lines()
        .take(n)
        .map(str::to_string)
        .collect();
    std::fs::write(dir.join("docs.jsonl"), articles.join("\n")).unwrap();
}

/// Every (id, text) of the dataset at `uri`, and how many rows it has (an id twice: more rows than ids).
pub fn id_texts(uri: &str) -> (std::collections::BTreeMap<String, String>, usize) {
    use arrow_array::cast::AsArray;
    let mut rows = std::collections::BTreeMap::new();
    let mut n = 0;
    for b in scan_all(uri) {
        let ids = b.column_by_name("id").expect("id").as_string::<i32>();
        let texts = b.column_by_name("text").expect("text").as_string::<i32>();
        for r in 0..b.num_rows() {
            rows.insert(ids.value(r).to_string(), texts.value(r).to_string());
            n += 1;
        }
    }
    (rows, n)
}

/// `vector` is the tiny model's 64-dim embedding of `text` (no prompt), within 1e-5.
pub fn assert_tiny_64(encoder: &lexembed_encoder::Encoder, vector: &[f32], text: &str, what: &str) {
    let want = encoder
        .encode(&[text], &lexembed_encoder::Prompt::none())
        .expect("encode");
    let mut want = want.row(0)[..64].to_vec();
    lexembed_encoder::pooling::l2_normalize(&mut want);
    let diff = vector
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff <= 1e-5, "{what}: not the vector of its text ({diff})");
}

/// pylance's own check of a dataset after upserts and deletions (`integration/python/upsert_check.py`
/// with `expected` written to `dir`).
pub fn pylance_upsert_check(uri: &str, dir: &std::path::Path, expected: &serde_json::Value) {
    let file = dir.join("expected.json");
    std::fs::write(&file, expected.to_string()).expect("write expected.json");
    let out = Command::new(python())
        .arg(repo().join("integration/python/upsert_check.py"))
        .args([uri, file.to_str().expect("utf-8 path")])
        .output()
        .expect("spawn python");
    assert!(
        out.status.success(),
        "pylance disagrees: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `GET path` from the server at `addr` (`host:port`): its status code and the whole response.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let code = body.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body)
}
