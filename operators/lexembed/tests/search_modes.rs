//! `lexembed search --mode fts|hybrid` end to end: 300 BOE articles embedded by a pipeline whose spec
//! builds the full-text index, searched by lexembed and checked against pylance on the same dataset
//! (`integration/python/search_check.py`: its full-text query on the index, and reciprocal-rank fusion
//! of its own dense and full-text lists), plus the errors a user meets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// 300 BOE articles with the tiny model, `indexes:` asking for the full-text index on `text`; with
/// `fts: false`, no index.
fn dataset(dir: &Path, fts: bool) -> String {
    boe_articles(dir, 300);
    let uri = dir.join("boe.lance").display().to_string();
    let indexes = if fts {
        "  indexes:\n    - {column: text, type: fts}\n"
    } else {
        ""
    };
    let spec = dir.join("p.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: fts-test\nsource:\n  kind: file\n  path: docs.jsonl\n  metadata_fields: [law]\nencoder:\n  model: {}\nsink:\n  uri: {uri}\n{indexes}",
            tiny().display()
        ),
    )
    .unwrap();
    run_ok(bin().arg("run").arg(&spec));
    uri
}

fn search(uri: &str, query: &str, args: &[&str]) -> Vec<Value> {
    let out = run_ok(
        bin()
            .args([
                "search", uri, "--query", query, "--json", "-k", "10", "--model",
            ])
            .arg(tiny())
            .args(args),
    );
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

/// 12 questions: QA titles, and the identifiers dense vectors blur.
fn queries() -> Vec<String> {
    let data = lexembed_encoder::runtime::lexembed_home().join("data");
    let mut q: Vec<String> = std::fs::read_to_string(data.join("boe_qa.jsonl"))
        .unwrap()
        .lines()
        .take(8)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["query"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    q.extend(
        [
            "artículo 66",
            "Ley 58/2003",
            "disposición adicional segunda",
            "resolucion del procedimiento",
        ]
        .map(String::from),
    );
    q
}

/// The query's vector at dim 64, as `lexembed search` embeds it (the model's query prompt).
fn query_vector(query: &str) -> Value {
    let out = run_ok(
        bin()
            .args(["embed", "--dim", "64", "--prompt", "query", "--model"])
            .arg(tiny())
            .arg(query),
    );
    serde_json::from_str::<Value>(&out).unwrap()["embeddings"]["64"].clone()
}

#[test]
fn fts_and_hybrid_match_pylance_on_the_same_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dataset(dir.path(), true);
    let mut cases = Vec::new();
    for q in queries() {
        let fts = search(&uri, &q, &["--mode", "fts"]);
        let hybrid = search(&uri, &q, &["--mode", "hybrid", "--column", "emb_64"]);
        assert!(
            !fts.is_empty() && hybrid.len() == 10,
            "{q}: {fts:?} {hybrid:?}"
        );
        assert!(
            fts.iter()
                .all(|h| h["distance"].is_null() && h["score"].as_f64().unwrap() > 0.0)
        );
        cases.push(json!({
            "query": q, "vector": query_vector(&q), "column": "emb_64",
            "fts": ids(&fts), "hybrid": ids(&hybrid),
        }));
    }
    // The Spanish analyzer: no accent and another form of the word still find "resolución".
    let folded = search(&uri, "resolucion", &["--mode", "fts"]);
    let text = run_ok(
        bin()
            .args(["sql", "--format", "json", "--table"])
            .arg(format!("d={uri}"))
            .arg(format!(
                "SELECT text FROM d WHERE id = '{}'",
                folded[0]["id"].as_str().unwrap()
            )),
    );
    assert!(text.to_lowercase().contains("resoluci"), "{text}");

    // SQL's hybrid_search ranks as the CLI does (the same library call).
    for case in cases.iter().take(3) {
        let q = case["query"].as_str().unwrap().replace('\'', "''");
        let sql = format!("SELECT id FROM hybrid_search('d', 'emb_64', '{q}', 10)");
        let out = run_ok(
            bin()
                .args(["sql", "--format", "csv", "--model"])
                .arg(tiny())
                .arg("--table")
                .arg(format!("d={uri}"))
                .arg(&sql),
        );
        let got: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(
            got,
            case["hybrid"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect::<Vec<_>>(),
            "{q}"
        );
    }

    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_string(&cases).unwrap()).unwrap();
    let said = run_ok(
        Command::new(python())
            .arg(repo().join("integration/python/search_check.py"))
            .arg(&uri)
            .arg(&file)
            .arg("10"),
    );
    eprint!("{said}");
}

#[test]
fn fts_without_the_index_and_unknown_modes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dataset(dir.path(), false);
    let out = bin()
        .args(["search", &uri, "--query", "plazo", "--mode", "fts"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("no full-text index on text")
            && err.contains("--type fts"),
        "{err}"
    );
    let out = bin()
        .args(["search", &uri, "--query", "plazo", "--mode", "sparse"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("expected exact, index, fts or hybrid"),
        "{err}"
    );
    let out = bin()
        .args([
            "search", &uri, "--query", "plazo", "--mode", "hybrid", "--model",
        ])
        .arg(tiny())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--column"), "{err}");
    // The index built afterwards by the CLI makes the same search work.
    run_ok(bin().args(["index", &uri, "--column", "text", "--type", "fts"]));
    assert!(!search(&uri, "plazo", &["--mode", "fts"]).is_empty());
}

#[test]
fn the_old_spellings_of_a_mode_still_search_and_warn() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dataset(dir.path(), false);
    let mode = |args: &[&str]| {
        let out = bin()
            .args([
                "search", &uri, "--query", "plazo", "--json", "--column", "emb_64",
            ])
            .args(["--model"])
            .arg(tiny())
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{args:?}: {err}");
        (String::from_utf8_lossy(&out.stdout).to_string(), err)
    };
    let (index, quiet) = mode(&["--mode", "index"]);
    assert!(!quiet.contains("deprecated"), "{quiet}");
    let (dense, warned) = mode(&["--mode", "dense"]);
    assert_eq!(dense, index, "dense is the index path");
    assert!(warned.contains("\"dense\" is deprecated"), "{warned}");
    let (exact, _) = mode(&["--mode", "exact"]);
    let (flag, warned) = mode(&["--exact"]);
    assert_eq!(flag, exact, "--exact is --mode exact");
    assert!(warned.contains("--exact is deprecated"), "{warned}");
    let out = bin()
        .args([
            "search", &uri, "--query", "plazo", "--column", "emb_64", "--exact",
        ])
        .args(["--mode", "hybrid", "--model"])
        .arg(tiny())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--mode exact"),
        "{err}"
    );
}
