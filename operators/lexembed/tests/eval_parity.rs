//! `lexembed eval` against sentence-transformers' InformationRetrievalEvaluator (the committed oracle
//! `integration/python/ir_oracle.py`) on the same model, corpus and QA pairs: every metric at every dim
//! within 1e-6. The tiny XLM-R fixture and all-MiniLM-L6-v2 on the BOE legal QA set, plus the edge
//! cases: several relevant docs, relevant ids missing from the corpus, queries without relevant docs,
//! a corpus smaller than k, exact score ties.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;
use common::*;

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn home() -> PathBuf {
    lexembed_encoder::runtime::lexembed_home()
}

fn jsonl(path: &Path, rows: &[Value]) {
    std::fs::write(
        path,
        rows.iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    )
    .unwrap();
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs pipeline + `lexembed eval` and the oracle on the same inputs; compares every metric.
/// The eval textfile (`--metrics-file`, read by the official Prometheus parser) holds every metric
/// of the run as `lexembed_eval_metric{dim, metric}` with the value the JSON output reports.
fn exported_metrics_equal(prom: &Path, metrics: &BTreeMap<String, f64>) {
    let samples = prometheus_samples(&std::fs::read_to_string(prom).unwrap());
    let exported: BTreeMap<String, f64> = samples
        .iter()
        .filter(|s| s["name"] == "lexembed_eval_metric")
        .map(|s| {
            let key = format!(
                "dim_{}_{}",
                s["labels"]["dim"].as_str().unwrap(),
                s["labels"]["metric"].as_str().unwrap()
            );
            (key, s["value"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(&exported, metrics);
    let success = samples
        .iter()
        .find(|s| s["name"] == "lexembed_job_success" && s["labels"]["job"] == "eval");
    assert_eq!(success.and_then(|s| s["value"].as_f64()), Some(1.0));
}

/// The model's prompt names the oracle gives the evaluator as `query_prompt`/`corpus_prompt` (lexembed
/// applies the model's own prompts by itself).
const E5_PROMPTS: [&str; 4] = [
    "--query-prompt-name",
    "query",
    "--corpus-prompt-name",
    "document",
];

fn parity(model: &Path, corpus: &[Value], qa: &[Value], dims: &[u32]) -> BTreeMap<String, f64> {
    parity_with(model, corpus, qa, dims, &[])
}

fn parity_with(
    model: &Path,
    corpus: &[Value],
    qa: &[Value],
    dims: &[u32],
    oracle_args: &[&str],
) -> BTreeMap<String, f64> {
    let dir = tempfile::tempdir().unwrap();
    let (cfile, qfile) = (dir.path().join("corpus.jsonl"), dir.path().join("qa.jsonl"));
    jsonl(&cfile, corpus);
    jsonl(&qfile, qa);
    let dims_yaml: Vec<String> = dims.iter().map(u32::to_string).collect();
    let spec = dir.path().join("p.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: eval-parity\nsource:\n  kind: file\n  path: corpus.jsonl\nencoder:\n  model: {}\n  dims: [{}]\nsink:\n  uri: corpus.lance\n",
            model.display(),
            dims_yaml.join(", ")
        ),
    )
    .unwrap();
    ok(bin().arg("run").arg(&spec));
    let our_rankings = dir.path().join("rankings.jsonl");
    let prom = dir.path().join("eval.prom");
    let ours: Value = serde_json::from_str(&ok(bin()
        .args(["eval", "--json", "--metrics-file"])
        .arg(&prom)
        .arg("--dataset")
        .arg(dir.path().join("corpus.lance"))
        .arg("--qa")
        .arg(&qfile)
        .arg("--model")
        .arg(model)
        .arg("--rankings")
        .arg(&our_rankings)))
    .unwrap();
    let oracle_rankings = dir.path().join("oracle-rankings.jsonl");
    let out = dir.path().join("oracle.json");
    let py = std::env::var("LEXEMBED_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(py)
        .arg(repo().join("integration/python/ir_oracle.py"))
        .arg(model)
        .args([&cfile, &qfile, &out])
        .arg("--dims")
        .args(&dims_yaml)
        .arg("--rankings")
        .arg(&oracle_rankings)
        .args(oracle_args)
        .env("HF_HUB_OFFLINE", "1")
        .status()
        .unwrap();
    assert!(status.success(), "oracle failed");
    let want: BTreeMap<String, f64> =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let got: BTreeMap<String, f64> = serde_json::from_value(ours["metrics"].clone()).unwrap();
    exported_metrics_equal(&prom, &got);
    let mut compared = 0;
    let queries = ours["queries"].as_u64().unwrap() as f64;
    for (k, w) in &want {
        let Some(g) = got.get(k) else {
            continue; // the oracle also reports non-metric keys; every metric key is checked below
        };
        if (g - w).abs() > 1e-6 {
            let dim: u32 = k
                .strip_prefix("dim_")
                .unwrap()
                .split('_')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let flipped = near_tie_flips(&our_rankings, &oracle_rankings, dim);
            // Ties aside: every ranking difference is a near-tie, and each flipped query moves a mean by
            // at most 1/queries.
            assert!(
                (g - w).abs() <= flipped as f64 / queries,
                "{k}: lexembed {g} vs sentence-transformers {w} ({flipped} queries with near-tie flips)"
            );
            println!("{k}: {g} vs {w}: {flipped} of {queries} queries differ only by near-ties");
        }
        compared += 1;
    }
    assert_eq!(
        compared,
        got.len(),
        "every lexembed metric has an oracle value: {:?}",
        got.keys().collect::<Vec<_>>()
    );
    assert_eq!(compared, dims.len() * 15, "15 metrics per dim");
    got
}

/// Queries whose top-100 differs between lexembed and the oracle at `dim`; panics unless every
/// difference swaps documents whose reference cosines are within 1e-5 (a float32 near-tie).
fn near_tie_flips(ours: &Path, oracle: &Path, dim: u32) -> usize {
    let load = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &Value| v["dim"] == dim)
            .collect()
    };
    let theirs: BTreeMap<String, Value> = load(oracle)
        .into_iter()
        .map(|v| (v["query_id"].as_str().unwrap().to_string(), v))
        .collect();
    let mut flipped = 0;
    for v in load(ours) {
        let q = v["query_id"].as_str().unwrap();
        let o = &theirs[q];
        let score: BTreeMap<&str, f64> = o["ids"]
            .as_array()
            .unwrap()
            .iter()
            .zip(o["scores"].as_array().unwrap())
            .map(|(i, s)| (i.as_str().unwrap(), s.as_f64().unwrap()))
            .collect();
        let (mine, refs) = (v["ids"].as_array().unwrap(), o["ids"].as_array().unwrap());
        let mut differs = false;
        for (a, b) in mine.iter().zip(refs).take(100) {
            let (a, b) = (a.as_str().unwrap(), b.as_str().unwrap());
            if a != b {
                differs = true;
                let (sa, sb) = (score.get(a), score[b]);
                assert!(
                    sa.is_some_and(|sa| (sa - sb).abs() <= 1e-5),
                    "query {q} dim {dim}: {a} ({sa:?}) vs {b} ({sb}) is not a near-tie"
                );
            }
        }
        flipped += usize::from(differs);
    }
    flipped
}

/// The first `n` BOE articles and the QA pairs whose relevant ids they all hold.
fn legal_subset(n: usize) -> (Vec<Value>, Vec<Value>) {
    let read = |f: &str| -> Vec<Value> {
        let p = home().join("data").join(f);
        let file = std::fs::File::open(&p)
            .unwrap_or_else(|e| panic!("{}: {e}: run integration/setup.sh", p.display()));
        std::io::BufReader::new(file)
            .lines()
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect()
    };
    let corpus: Vec<Value> = read("boe_articles.jsonl")
        .into_iter()
        .take(n)
        .map(|r| json!({"id": r["id"], "text": r["text"]}))
        .collect();
    let ids: HashSet<&str> = corpus.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let qa: Vec<Value> = read("boe_qa.jsonl")
        .into_iter()
        .filter(|q| {
            q["relevant_ids"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| ids.contains(i.as_str().unwrap()))
        })
        .collect();
    (corpus, qa)
}

#[test]
fn tiny_xlmr_on_legal_qa_matches_the_reference() {
    let (corpus, qa) = legal_subset(400);
    assert!(qa.len() > 100, "{} QA pairs", qa.len());
    parity(&tiny(), &corpus, &qa, &[64, 32, 16, 8]);
}

#[test]
fn edge_cases_match_the_reference() {
    let docs = [
        ("d4", "El plazo máximo para resolver es de seis meses."),
        ("d10", "El plazo máximo para resolver es de seis meses."), // exact tie with d4
        ("a1", "Los dividendos pagados por una sociedad residente."),
        ("a2", "Los intereses de préstamos a largo plazo."),
        ("b7", "Esta Ley entrará en vigor el día siguiente."),
        ("c3", "Son contribuyentes las personas físicas residentes."),
    ];
    let corpus: Vec<Value> = docs
        .iter()
        .map(|(i, t)| json!({"id": i, "text": t}))
        .collect();
    let qa = vec![
        json!({"query_id": "q1", "query": "¿Cuál es el plazo para resolver?", "relevant_ids": ["d4"]}),
        json!({"query_id": "q2", "query": "dividendos e intereses", "relevant_ids": ["a1", "a2", "c3"]}),
        json!({"query_id": "q3", "query": "entrada en vigor", "relevant_ids": ["b7", "not-in-corpus"]}),
        json!({"query_id": "q4", "query": "sin documentos relevantes", "relevant_ids": []}),
        json!({"query_id": "q5", "query": "residentes", "relevant_ids": ["missing-1", "missing-2"]}),
        json!({"query_id": "q6", "query": "El plazo máximo para resolver es de seis meses.", "relevant_ids": ["d4"]}),
    ];
    let m = parity(&tiny(), &corpus, &qa, &[64, 8]);
    // q6 ties d4 and d10 exactly; "d10" < "d4" as strings puts d4 second: its MRR is 0.5.
    assert!(m["dim_64_cosine_precision@10"] > 0.0);
}

#[test]
fn minilm_on_legal_qa_matches_the_reference() {
    let model = home().join("models/all-MiniLM-L6-v2");
    let (corpus, qa) = legal_subset(1000);
    assert!(qa.len() > 300, "{} QA pairs", qa.len());
    parity(&model, &corpus, &qa, &[384, 256, 128, 64]);
}

/// multilingual-e5-small with its prompts: the corpus embedded by a pipeline with "passage: ", queries
/// by eval with "query: ", against the evaluator given the same as `corpus_prompt`/`query_prompt`.
#[test]
fn multilingual_e5_with_prompts_on_legal_qa_matches_the_reference() {
    let model = home().join("models/multilingual-e5-small");
    let (corpus, qa) = legal_subset(300);
    assert!(qa.len() > 80, "{} QA pairs", qa.len());
    parity_with(&model, &corpus, &qa, &[384, 64], &E5_PROMPTS);
}

/// `--search index|fts|hybrid`: the metrics of the rankings users get, against pylance's rankings
/// through the same path on the same dataset scored by sentence-transformers' own metric code
/// (`integration/python/served_oracle.py`); through the index also its k-NN recall against exact.
#[test]
fn served_paths_match_pylance_rankings_scored_by_the_evaluator() {
    let (corpus, qa) = legal_subset(300);
    let qa: Vec<Value> = qa.into_iter().take(60).collect();
    let dir = tempfile::tempdir().unwrap();
    let (cfile, qfile) = (dir.path().join("corpus.jsonl"), dir.path().join("qa.jsonl"));
    jsonl(&cfile, &corpus);
    jsonl(&qfile, &qa);
    let spec = dir.path().join("p.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: served\nsource:\n  kind: file\n  path: corpus.jsonl\nencoder:\n  model: {}\n  dims: [64, 32]\nsink:\n  uri: corpus.lance\n  indexes:\n    - {{column: emb_64, type: ivf_pq, num_partitions: 4}}\n    - {{column: text, type: fts}}\n",
            tiny().display()
        ),
    )
    .unwrap();
    ok(bin().arg("run").arg(&spec));
    let uri = dir.path().join("corpus.lance");
    let questions: Vec<String> = qa
        .iter()
        .map(|q| q["query"].as_str().unwrap().to_string())
        .collect();
    let vectors = dir.path().join("vectors.jsonl");
    let lines = ok(bin()
        .args(["embed", "--prompt", "query", "--model"])
        .arg(tiny())
        .args(&questions));
    std::fs::write(&vectors, lines).unwrap();
    for path in ["index", "fts", "hybrid"] {
        let ours: Value = serde_json::from_str(&ok(bin()
            .args([
                "eval",
                "--json",
                "--search",
                path,
                "--dim",
                "64",
                "--dim",
                "32",
                "--dataset",
            ])
            .arg(&uri)
            .arg("--qa")
            .arg(&qfile)
            .arg("--model")
            .arg(tiny())))
        .unwrap();
        let got: BTreeMap<String, f64> = serde_json::from_value(ours["metrics"].clone()).unwrap();
        let out = dir.path().join(format!("{path}.json"));
        let status = Command::new(python())
            .arg(repo().join("integration/python/served_oracle.py"))
            .arg(&uri)
            .args([&qfile, &vectors, &out])
            .args(["--path", path, "--dims", "64", "32"])
            .env("HF_HUB_OFFLINE", "1")
            .status()
            .unwrap();
        assert!(status.success(), "served oracle failed");
        let want: BTreeMap<String, f64> =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{path}: metric names"
        );
        for (k, w) in &want {
            assert!(
                (got[k] - w).abs() <= 1e-6,
                "{k}: lexembed {} vs reference {w}",
                got[k]
            );
        }
        let per_dim = if path == "index" { 16 } else { 15 };
        assert_eq!(got.len(), 2 * per_dim, "{path}");
    }
}

#[test]
fn history_alerts_reports_and_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let (corpus, qa) = legal_subset(150);
    jsonl(&dir.path().join("corpus.jsonl"), &corpus);
    jsonl(&dir.path().join("qa.jsonl"), &qa);
    let spec = dir.path().join("p.yaml");
    std::fs::write(
        &spec,
        format!("name: h\nsource:\n  kind: file\n  path: corpus.jsonl\nencoder:\n  model: {}\nsink:\n  uri: c.lance\n", tiny().display()),
    )
    .unwrap();
    ok(bin().arg("run").arg(&spec));
    let eval = |extra: &[&str]| {
        let mut c = bin();
        c.args(["eval", "--model"])
            .arg(tiny())
            .arg("--dataset")
            .arg(dir.path().join("c.lance"));
        c.arg("--qa")
            .arg(dir.path().join("qa.jsonl"))
            .arg("--history")
            .arg(dir.path().join("h.lance"));
        c.args(extra);
        c.output().unwrap()
    };
    let first = eval(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let table = String::from_utf8(first.stdout).unwrap();
    assert!(
        table.contains("| dim | acc@1 | acc@3 | acc@5 | acc@10 | ndcg@10 | mrr@10 | map@100 |"),
        "{table}"
    );
    // Same data again: no drop, so --max-drop passes; an impossible floor fails naming metric and dim.
    assert!(eval(&["--max-drop", "0.0"]).status.success());
    let floor = eval(&["--min", "cosine_ndcg@10=1.5"]);
    let err = String::from_utf8_lossy(&floor.stderr);
    assert!(
        err.contains("ALERT: dim 64: cosine_ndcg@10") && err.contains("floor"),
        "{err}"
    );
    // An alert exits 3, an error 1: a scheduler tells a quality alert from a failure.
    assert_eq!(floor.status.code(), Some(3), "{err}");
    // Rules on metrics the evaluation does not compute used to pass silently: a misspelt name and a
    // cut-off the evaluator does not use are refused, and the refused runs add nothing to the history.
    for (rule, named) in [
        ("cosine_ndgc@10=0.5", "\"cosine_ndgc@10\""),
        ("ndcg@5=0.5", "cosine_ndcg@5 (not computed"),
    ] {
        let refused = eval(&["--min", rule]);
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            matches!(refused.status.code(), Some(1 | 2)) && err.contains(named),
            "{rule}: {err}"
        );
    }

    let out = dir.path().join("report");
    ok(bin()
        .args(["eval", "report", "--history"])
        .arg(dir.path().join("h.lance"))
        .arg("--out")
        .arg(&out));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("3 runs in the history") && md.contains("| 8 |"),
        "{md}"
    );
    for f in ["matryoshka.svg", "trend_ndcg_at_10.svg", "report.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // The old spelling of the index path still runs and says it is deprecated (clap parsed it before
    // logging was set up, and the warning was lost).
    let dense = eval(&["--search", "dense"]);
    let err = String::from_utf8_lossy(&dense.stderr);
    assert!(dense.status.success(), "{err}");
    assert!(err.contains("\"dense\" is deprecated"), "{err}");

    // Bad inputs: an empty QA set, a dataset without vector columns, a bad QA line.
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let mut c = bin();
    c.args(["eval", "--model"])
        .arg(tiny())
        .arg("--dataset")
        .arg(dir.path().join("c.lance"))
        .arg("--qa")
        .arg(dir.path().join("empty.jsonl"));
    let o = c.output().unwrap();
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("empty"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut c = bin();
    c.args(["eval", "--model"])
        .arg(tiny())
        .arg("--dataset")
        .arg(dir.path().join("h.lance"))
        .arg("--qa")
        .arg(dir.path().join("qa.jsonl"));
    let o = c.output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("no emb_<dim> vector columns"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("bad.jsonl"),
        "{\"query_id\": \"q\", \"query\": \"x\", \"relevant_ids\": [\"a\"]}\n{\"query_id\": 3}\n",
    )
    .unwrap();
    let mut c = bin();
    c.args(["eval", "--model"])
        .arg(tiny())
        .arg("--dataset")
        .arg(dir.path().join("c.lance"))
        .arg("--qa")
        .arg(dir.path().join("bad.jsonl"));
    let o = c.output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("bad.jsonl:2") && e.contains("query_id"),
        "{e}"
    );
}
