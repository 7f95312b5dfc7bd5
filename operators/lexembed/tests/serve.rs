//! `lexembed serve` end to end: a dataset written by `lexembed run` and indexed, the server started
//! on it, and `integration/python/serve_check.py` checking it as clients see it — the official
//! `openai` client against `lexembed embed`, `/search` against `lexembed search`, bad requests,
//! the bounded queue (429), and a graceful shutdown on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;
use common::*;
use lexembed_testkit::prompted_tiny;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running server and the URL it printed.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(args: &[&std::ffi::OsStr]) -> Self {
        Self::start_with(&tiny(), args)
    }

    fn start_with(model: &Path, args: &[&std::ffi::OsStr]) -> Self {
        let mut child = bin()
            .arg("serve")
            .arg("--model")
            .arg(model)
            .args(["--http-addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn lexembed serve");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("lexembed serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        Self { child, url }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check(mode: &str, url: &str, extra: &[&std::ffi::OsStr]) {
    let said = run_ok(
        Command::new(python())
            .arg(repo().join("integration/python/serve_check.py"))
            .args([mode, "--url", url])
            .args(extra),
    );
    eprint!("{said}");
}

/// 300 BOE articles embedded by the tiny model, with an IVF-PQ index on emb_64; the first 12 QA
/// questions as queries.
fn indexed_dataset(dir: &Path) -> (String, std::path::PathBuf) {
    indexed_dataset_of(dir, &tiny())
}

fn indexed_dataset_of(dir: &Path, model: &Path) -> (String, std::path::PathBuf) {
    boe_articles(dir, 300);
    let data = lexembed_encoder::runtime::lexembed_home().join("data");
    let uri = dir.join("boe.lance").display().to_string();
    let spec = dir.join("p.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: serve-test\nsource:\n  kind: file\n  path: docs.jsonl\n  metadata_fields: [law]\nencoder:\n  model: {}\nsink:\n  uri: {uri}\n",
            model.display()
        ),
    )
    .unwrap();
    run_ok(bin().arg("run").arg(&spec));
    run_ok(bin().args([
        "index",
        &uri,
        "--column",
        "emb_64",
        "--type",
        "ivf_pq",
        "--partitions",
        "4",
    ]));
    let queries: Vec<String> = std::fs::read_to_string(data.join("boe_qa.jsonl"))
        .unwrap()
        .lines()
        .take(12)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["query"].as_str().unwrap().to_string()
        })
        .collect();
    let q = dir.join("queries.json");
    std::fs::write(&q, serde_json::to_string(&queries).unwrap()).unwrap();
    (uri, q)
}

#[test]
fn serve_answers_openai_tei_and_search_clients_like_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (uri, queries) = indexed_dataset(dir.path());
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "s3cret-key\n").unwrap();
    let server = Server::start(&[
        "--dataset".as_ref(),
        format!("boe={uri}").as_ref(),
        "--api-key-file".as_ref(),
        key_file.as_os_str(),
        "--max-inputs".as_ref(),
        "64".as_ref(),
    ]);
    check(
        "api",
        &server.url,
        &[
            "--key".as_ref(),
            "s3cret-key".as_ref(),
            "--bin".as_ref(),
            env!("CARGO_BIN_EXE_lexembed").as_ref(),
            "--model".as_ref(),
            tiny().as_os_str(),
            "--dataset".as_ref(),
            uri.as_ref(),
            "--queries".as_ref(),
            queries.as_os_str(),
        ],
    );
}

/// `serve_check.py MODE` against `server`, comparing with `lexembed embed` of the tiny model.
fn check_against_cli(mode: &str, server: &Server) {
    check(
        mode,
        &server.url,
        &[
            "--bin".as_ref(),
            env!("CARGO_BIN_EXE_lexembed").as_ref(),
            "--model".as_ref(),
            tiny().as_os_str(),
        ],
    );
}

/// OpenAI's request limits (issue 36): 2,048 inputs by default, a token bound per request. Before,
/// an OpenAI-style client's default batch of 1,000 inputs got a 400 (the limit was 256).
#[test]
fn openai_clients_default_batches_fit_and_the_token_bound_is_named() {
    let server = Server::start(&["--max-request-tokens".as_ref(), "40000".as_ref()]);
    check_against_cli("limits", &server);
}

/// `--token-ids` (issue 36): ids made with the model's own tokenizer embed as their texts do, through
/// the `openai` client and TEI's /embed; bad ids, long inputs, a prompt beside ids and mixed arrays
/// get a 400 naming the field. Without the flag they are refused (`api`'s bad requests).
#[test]
fn the_models_own_token_ids_embed_as_their_texts_when_asked() {
    let server = Server::start(&["--token-ids".as_ref()]);
    check_against_cli("token_ids", &server);
}

/// `integration/python/frameworks_check.py CLIENT` against `server`: the framework configured as its
/// docs say, its vectors equal to `lexembed embed`'s.
fn framework(client: &str, server: &Server) {
    let said = run_ok(
        Command::new(python())
            .arg(repo().join("integration/python/frameworks_check.py"))
            .args([client, "--url", &server.url])
            .arg("--bin")
            .arg(env!("CARGO_BIN_EXE_lexembed"))
            .arg("--model")
            .arg(tiny()),
    );
    eprint!("{said}");
}

/// The clients people point at an OpenAI-compatible or TEI server (issue 36), each as its docs say:
/// LangChain (default chunk of 1,000 texts, query, `dimensions`, async), LlamaIndex (default batch),
/// huggingface_hub's InferenceClient (TEI; its options travel in `parameters`, which were ignored
/// before), the `openai` Node client, and LanceDB's embedding registry (which knows OpenAI's model names only, hence
/// `--model-name`).
#[test]
fn framework_clients_get_the_clis_vectors() {
    let server = Server::start(&[]);
    for client in ["langchain", "llamaindex", "huggingface_hub", "node"] {
        framework(client, &server);
    }
    let named = Server::start(&["--model-name".as_ref(), "text-embedding-3-small".as_ref()]);
    framework("lancedb", &named);
}

#[test]
fn a_full_queue_answers_429_and_sigterm_lets_requests_finish() {
    let tight = Server::start(&["--max-queued".as_ref(), "1".as_ref()]);
    check("overload", &tight.url, &[]);
    let mut server = Server::start(&[]);
    let pid = server.pid();
    check("shutdown", &server.url, &["--pid".as_ref(), pid.as_ref()]);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "after SIGTERM: {status}");
}

#[test]
fn a_dataset_of_another_model_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (uri, _) = indexed_dataset(dir.path());
    // The default model (all-MiniLM-L6-v2) over a dataset the tiny model wrote.
    let out = bin()
        .args(["serve", "--http-addr", "127.0.0.1:0"])
        .env_remove("LEXEMBED_MODEL")
        .arg("--dataset")
        .arg(format!("boe={uri}"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--dataset boe=") && err.contains("model"),
        "{err}"
    );
}

/// A model with prompts (the tiny model with E5's): `prompt_name` on both embedding APIs, `/search`
/// with the query prompt the dataset records; the same dataset served by the model without prompts
/// is refused at start, naming the query prompt.
#[test]
fn prompts_apply_per_request_and_to_searches() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = prompted_tiny();
    let model = model_dir.path().to_path_buf();
    let (uri, queries) = indexed_dataset_of(dir.path(), &model);
    let server = Server::start_with(
        &model,
        &["--dataset".as_ref(), format!("boe={uri}").as_ref()],
    );
    check(
        "prompts",
        &server.url,
        &[
            "--bin".as_ref(),
            env!("CARGO_BIN_EXE_lexembed").as_ref(),
            "--model".as_ref(),
            model.as_os_str(),
            "--dataset".as_ref(),
            uri.as_ref(),
            "--queries".as_ref(),
            queries.as_os_str(),
        ],
    );
    let out = bin()
        .args(["serve", "--http-addr", "127.0.0.1:0", "--model"])
        .arg(tiny())
        .arg("--dataset")
        .arg(format!("boe={uri}"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("its queries take \"query: \""),
        "{err}"
    );
}

/// `/health/ready` asks each served dataset's store: 200 while it answers, 503 naming the dataset and
/// why while it does not (here its directory moved away), 200 again once it is back, with no restart.
#[test]
fn readiness_follows_the_datasets_store_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    boe_articles(dir.path(), 20);
    let uri = dir.path().join("boe.lance");
    let spec = dir.path().join("p.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: ready\nsource: {{kind: file, path: docs.jsonl}}\nencoder: {{model: {}}}\nsink: {{uri: {}}}\n",
            tiny().display(),
            uri.display()
        ),
    )
    .unwrap();
    run_ok(bin().arg("run").arg(&spec));
    let server = Server::start(&[
        "--dataset".as_ref(),
        format!("boe={}", uri.display()).as_ref(),
    ]);
    let addr = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let (code, body) = http_get(addr, "/health/ready");
    assert!(code == 200 && body.contains(r#""boe":"ok""#), "{body}");
    let moved = dir.path().join("boe.moved");
    std::fs::rename(&uri, &moved).unwrap();
    let (code, body) = http_get(addr, "/health/ready");
    assert!(
        code == 503 && body.contains(r#""status":"unavailable""#) && body.contains("boe"),
        "{body}"
    );
    let (code, _) = http_get(addr, "/health");
    assert_eq!(
        code, 200,
        "the model still answers: liveness is not readiness"
    );
    std::fs::rename(&moved, &uri).unwrap();
    let (code, body) = http_get(addr, "/health/ready");
    assert!(
        code == 200 && body.contains(r#""status":"ready""#),
        "{body}"
    );
}
