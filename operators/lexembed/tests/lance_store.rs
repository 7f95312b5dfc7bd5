//! The Lance store end to end through the `lexembed` binary: pylance (the independent client) reads the
//! vectors back bit-identical, its `nearest` agrees with `lexembed search`, an index keeps recall, and
//! `kill -9` at random points never leaves partial rows (resume ends with every row exactly once), and
//! upserts replace and delete rows by id (pylance agrees; search and the indexes see the changes).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;
use common::*;
use lexembed_encoder::Prompt;

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use lexembed_lance::DatasetLocation;

/// The first `n` BOE articles from the demo corpus that setup builds (id, law, title, text).
fn corpus(n: usize, skip: usize) -> Vec<String> {
    let path = lexembed_encoder::runtime::lexembed_home().join("data/boe_articles.jsonl");
    let f = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: run integration/setup.sh", path.display()));
    std::io::BufReader::new(f)
        .lines()
        .skip(skip)
        .take(n)
        .map(|l| l.unwrap())
        .collect()
}

fn write_spec(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("p.yaml");
    std::fs::write(
        &p,
        format!(
            "name: store-test\nencoder:\n  model: {}\n{body}",
            tiny().display()
        ),
    )
    .unwrap();
    p
}

fn read_column(uri: &str, column: &str) -> (Vec<String>, Vec<f32>) {
    let batches = scan_all(uri);
    let mut rows: Vec<(String, Vec<f32>)> = Vec::new();
    for b in &batches {
        let ids = b.column_by_name("id").unwrap().as_string::<i32>();
        let v = b.column_by_name(column).unwrap().as_fixed_size_list();
        for i in 0..b.num_rows() {
            rows.push((
                ids.value(i).to_string(),
                v.value(i).as_primitive::<Float32Type>().values().to_vec(),
            ));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    (
        rows.iter().map(|r| r.0.clone()).collect(),
        rows.into_iter().flat_map(|r| r.1).collect(),
    )
}

fn search_ids(uri: &str, column: &str, query: &str, exact: bool) -> Vec<String> {
    let mut cmd = bin();
    cmd.args([
        "search", uri, "--column", column, "--query", query, "-k", "10", "--json", "--model",
    ])
    .arg(tiny());
    if exact {
        cmd.args(["--mode", "exact"]);
    }
    json_ids(&run_ok(&mut cmd))
}

/// Top-10 ids of SQL's `vector_search` (the dataset registered as table `docs`).
fn sql_search_ids(uri: &str, column: &str, query: &str) -> Vec<String> {
    let dim = &column[4..];
    let sql = format!(
        "SELECT id FROM vector_search('docs', '{column}', embed('{query}', {dim}), 10) ORDER BY _distance, id"
    );
    let mut cmd = bin();
    cmd.args([
        "sql",
        "--format",
        "json",
        "--table",
        &format!("docs={uri}"),
        "--model",
    ])
    .arg(tiny())
    .arg(&sql);
    json_ids(&run_ok(&mut cmd))
}

const QUERIES: [&str; 6] = [
    "Exenciones en las entregas de bienes",
    "¿Qué dividendos pueden someterse a imposición?",
    "Plazo de presentación de la declaración",
    "Intereses de préstamos a largo plazo",
    "Obligaciones de información de las entidades",
    "Base imponible del impuesto",
];

#[test]
fn pylance_reads_back_bit_identical_and_agrees_on_nearest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docs.jsonl"), corpus(600, 0).join("\n")).unwrap();
    let spec = write_spec(
        dir.path(),
        "source:\n  kind: file\n  path: docs.jsonl\n  metadata_fields: [law]\nsink:\n  uri: out.lance\n",
    );
    run_ok(bin().arg("run").arg(&spec));
    let uri = dir.path().join("out.lance").display().to_string();

    // Query vectors as lexembed embeds them, for pylance's own nearest search.
    let enc = lexembed_encoder::Encoder::open(tiny(), &lexembed_encoder::EncoderOptions::default())
        .unwrap();
    let queries: Vec<serde_json::Value> = QUERIES
        .iter()
        .flat_map(|q| {
            let e = enc.encode(&[q], &Prompt::none()).unwrap();
            ["emb_64", "emb_16"].map(|c| {
                let d: usize = c[4..].parse().unwrap();
                let mut v = e.row(0)[..d].to_vec();
                lexembed_encoder::pooling::l2_normalize(&mut v);
                serde_json::json!({"column": c, "vector": v, "text": q})
            })
        })
        .collect();
    let qfile = dir.path().join("queries.json");
    std::fs::write(&qfile, serde_json::to_string(&queries).unwrap()).unwrap();
    let out = dir.path().join("py");
    let status = Command::new(python())
        .arg(repo().join("integration/python/lance_interop.py"))
        .args([&uri, out.to_str().unwrap(), qfile.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success(), "pylance script failed");

    let py_ids: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(out.join("ids.json")).unwrap()).unwrap();
    for column in ["emb_64", "emb_32", "emb_16", "emb_8"] {
        let (ids, values) = read_column(&uri, column);
        assert_eq!(ids, py_ids);
        let ours: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let theirs = std::fs::read(out.join(format!("{column}.f32"))).unwrap();
        assert!(ours == theirs, "{column}: pylance read different bytes");
    }
    let py_hits: Vec<Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string(out.join("nearest.json")).unwrap()).unwrap();
    for (q, want) in queries.iter().zip(&py_hits) {
        let got = search_ids(
            &uri,
            q["column"].as_str().unwrap(),
            q["text"].as_str().unwrap(),
            true,
        );
        assert_eq!(&got, want, "{q}");
        // SQL's vector_search: the same top-10 as pylance and `lexembed search`.
        let sql = sql_search_ids(
            &uri,
            q["column"].as_str().unwrap(),
            q["text"].as_str().unwrap(),
        );
        assert_eq!(&sql, want, "SQL vector_search {q}");
    }

    // With an index, recall@10 against exact stays ≥ 0.95.
    run_ok(bin().args(["index", &uri, "--column", "emb_64", "--type", "ivf_pq"]));
    let (mut found, mut total) = (0, 0);
    for q in QUERIES {
        let exact: HashSet<String> = search_ids(&uri, "emb_64", q, true).into_iter().collect();
        let approx = search_ids(&uri, "emb_64", q, false);
        // Through the index, SQL and `lexembed search` return the same rows.
        let mut sql = sql_search_ids(&uri, "emb_64", q);
        let mut cli = approx.clone();
        sql.sort();
        cli.sort();
        assert_eq!(
            sql, cli,
            "indexed SQL vector_search vs lexembed search: {q}"
        );
        found += approx.iter().filter(|id| exact.contains(*id)).count();
        total += exact.len();
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.95, "recall@10 with ivf_pq: {recall}");
}

fn pseudo_random(seed: u64) -> u64 {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[test]
fn kill_minus_nine_leaves_no_partial_rows_and_resume_lands_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let spec = write_spec(
        dir.path(),
        "source:\n  kind: file\n  path: in/*.jsonl\n  batch_rows: 64\nsink:\n  uri: out.lance\n  mode: append\n  resume: true\n",
    );
    let uri = dir.path().join("out.lance").display().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut expected: HashSet<String> = HashSet::new();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for trial in 0..6 {
        // Each trial adds a file, so every run has work to lose.
        let rows = corpus(400, trial * 400);
        for r in &rows {
            expected.insert(
                serde_json::from_str::<serde_json::Value>(r).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        std::fs::write(input.join(format!("part-{trial}.jsonl")), rows.join("\n")).unwrap();
        seed = pseudo_random(seed);
        let wait = Duration::from_millis(100 + seed % 2500);
        let mut child = bin()
            .arg("run")
            .arg(&spec)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        let _ = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
        let _ = child.wait();
        // Whatever the moment, the dataset opens at a committed version and holds whole commits only.
        if let Some(ds) = rt
            .block_on(DatasetLocation::new(&uri).open_if_exists())
            .unwrap()
        {
            let rows = rt.block_on(ds.count_rows(None)).unwrap();
            let (ids, _) = read_column(&uri, "emb_8");
            let distinct: HashSet<&String> = ids.iter().collect();
            assert_eq!(
                distinct.len(),
                rows,
                "trial {trial} (killed after {wait:?}): duplicated rows"
            );
            assert_eq!(
                rows % 400,
                0,
                "trial {trial} (killed after {wait:?}): {rows} rows is not a set of whole files"
            );
        }
    }
    run_ok(bin().arg("run").arg(&spec));
    let (ids, vectors) = read_column(&uri, "emb_8");
    assert_eq!(ids.len(), expected.len(), "every row exactly once");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), expected);
    // Compaction rewrites fragments without changing a row.
    run_ok(bin().args(["compact", &uri]));
    assert_eq!(read_column(&uri, "emb_8"), (ids, vectors));
}

/// Runs `lexembed run SPEC --shard i/COUNT` for every i at once; each must succeed.
fn run_shards(spec: &Path, count: u32, extra: &[&str]) {
    let children: Vec<_> = (0..count)
        .map(|i| {
            bin()
                .arg("run")
                .arg(spec)
                .args(["--shard", &format!("{i}/{count}")])
                .args(extra)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "shard {i}/{count}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A backfill scaled out as a Kubernetes Indexed Job runs it: four `--shard i/4` runs of one file
/// pipeline and of one SQL pipeline, started at once on one new dataset, write every row once, and the
/// union equals an unsharded run's rows and vectors. A rerun of one shard with `--resume` has nothing
/// to do.
#[test]
fn four_shards_at_once_write_what_one_unsharded_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let rows = corpus(1200, 0);
    for (n, chunk) in rows.chunks(100).enumerate() {
        std::fs::write(input.join(format!("part-{n:02}.jsonl")), chunk.join("\n")).unwrap();
    }
    let sink = |uri: &str| format!("sink:\n  uri: {uri}\n  mode: append\n");
    let files = "source:\n  kind: file\n  path: in/*.jsonl\n  batch_rows: 64\n";
    let sql = "source:\n  kind: sql\n  sql:\n    query: SELECT id, text FROM docs WHERE id IS NOT NULL\n    tables: {docs: all.jsonl}\n  batch_rows: 64\n";
    std::fs::write(dir.path().join("all.jsonl"), rows.join("\n")).unwrap();
    let uri = |name: &str| dir.path().join(name).display().to_string();

    run_ok(bin().arg("run").arg(write_spec(
        dir.path(),
        &(files.to_string() + &sink("whole.lance")),
    )));
    let whole = read_column(&uri("whole.lance"), "emb_16");
    assert_eq!(whole.0.len(), 1200);
    for (name, source) in [("files", files), ("sql", sql)] {
        let out = format!("{name}-sharded.lance");
        let spec = write_spec(dir.path(), &(source.to_string() + &sink(&out)));
        run_shards(&spec, 4, &[]);
        let sharded = read_column(&uri(&out), "emb_16");
        assert_eq!(sharded.0, whole.0, "{name}: every row once, no other");
        let worst = sharded
            .1
            .iter()
            .zip(&whole.1)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-5,
            "{name}: vectors differ from the unsharded run by {worst}"
        );
        // Each shard wrote its own commit; a resumed shard finds its part committed.
        let again = run_ok(
            bin()
                .arg("run")
                .arg(&spec)
                .args(["--shard", "2/4", "--resume", "--json"]),
        );
        let summary: serde_json::Value = serde_json::from_str(&again).unwrap();
        assert_eq!(summary["rows_written"], 0, "{name}: resumed shard: {again}");
        assert_eq!(read_column(&uri(&out), "emb_16").0.len(), 1200, "{name}");
    }
    let e = bin()
        .arg("run")
        .arg(write_spec(
            dir.path(),
            &(files.to_string() + &sink("x.lance")),
        ))
        .args(["--shard", "4/4"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && stderr.contains("INDEX/COUNT"),
        "{stderr}"
    );
}

/// One change of an amendments file, in file order.
enum Amend {
    Text(usize, String),
    Delete(usize),
}

/// The amendments of the upsert test: 100 articles amended (article 0 twice, its draft superseded in
/// the same file; article 6 deleted first, then given its new text) and 50 deleted (article 1 amended
/// first, then deleted in the same file). New texts carry a token of their own, `zqx<i>`.
fn amendments(originals: &[serde_json::Value]) -> Vec<Amend> {
    let new_text = |i: usize| {
        let text = originals[i]["text"].as_str().unwrap();
        format!(
            "{} Redacción dada por la Ley 7/2026 (zqx{i}).",
            text.rsplit_once(" (orig").unwrap().0
        )
    };
    let mut changes = Vec::new();
    for i in 0..originals.len() {
        match (i % 6 == 0, i % 12 == 1) {
            (true, _) => {
                if i == 0 {
                    changes.push(Amend::Text(i, "Borrador sin aprobar.".into()));
                }
                if i == 6 {
                    changes.push(Amend::Delete(i));
                }
                changes.push(Amend::Text(i, new_text(i)));
            }
            (_, true) => {
                if i == 1 {
                    changes.push(Amend::Text(i, "Borrador sin aprobar.".into()));
                }
                changes.push(Amend::Delete(i));
            }
            _ => {}
        }
    }
    changes
}

/// Amend 100 BOE articles and delete 50 through a file run with `sink.mode: upsert`, after the
/// dataset was indexed (IVF-PQ and full-text): one row per live id with its latest text and the
/// encoder's vectors for it, deleted ids gone, the latest record of an id winning within the file;
/// pylance agrees on rows and on its own full-text search, and `lexembed search` (through the indexes,
/// not rebuilt) finds the new texts and none of the old.
#[test]
fn upserts_amend_100_articles_and_delete_50_by_id_and_pylance_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("out.lance").display().to_string();
    let mut originals: Vec<serde_json::Value> = corpus(600, 0)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, o) in originals.iter_mut().enumerate() {
        o["text"] = format!("{} (orig{i})", o["text"].as_str().unwrap()).into();
    }
    let lines = |rows: Vec<String>| rows.join("\n") + "\n";
    let first: Vec<String> = originals.iter().map(|o| o.to_string()).collect();
    std::fs::write(dir.path().join("batch-1.jsonl"), lines(first)).unwrap();
    let spec = write_spec(
        dir.path(),
        &format!(
            "source:\n  kind: file\n  path: batch-*.jsonl\n  metadata_fields: [law]\nsink:\n  uri: {uri}\n  mode: upsert\n  resume: true\n"
        ),
    );
    let run = || -> serde_json::Value {
        let out = run_ok(bin().args(["run", spec.to_str().unwrap(), "--json"]));
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    };
    assert_eq!(
        run()["rows_written"],
        600,
        "the first run creates the dataset"
    );
    for (column, kind) in [("emb_64", "ivf_pq"), ("text", "fts")] {
        run_ok(bin().args([
            "index",
            &uri,
            "--column",
            column,
            "--type",
            kind,
            "--partitions",
            "4",
        ]));
    }

    let id = |i: usize| originals[i]["id"].as_str().unwrap().to_string();
    let mut expected: std::collections::BTreeMap<String, String> = originals
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().into(),
                o["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut amendments_file = Vec::new();
    for change in amendments(&originals) {
        match change {
            Amend::Text(i, text) => {
                let mut row = originals[i].clone();
                row["text"] = text.clone().into();
                amendments_file.push(row.to_string());
                expected.insert(id(i), text);
            }
            Amend::Delete(i) => {
                amendments_file.push(serde_json::json!({"id": id(i), "text": null}).to_string());
                expected.remove(&id(i));
            }
        }
    }
    std::fs::write(dir.path().join("batch-2.jsonl"), lines(amendments_file)).unwrap();
    let summary = run();
    let counts = [
        "rows_written",
        "rows_replaced",
        "rows_deleted",
        "rows_superseded",
        "rows_in_dataset",
    ]
    .map(|k| summary[k].as_u64().unwrap());
    assert_eq!(counts, [100, 100, 50, 2, 550], "{summary}");
    assert_eq!(summary["files_already_committed"], 1, "{summary}");

    // Our reader: one row per live id, its latest text, the encoder's vectors for it.
    let (ids, vectors) = read_column(&uri, "emb_64");
    assert_eq!(ids, expected.keys().cloned().collect::<Vec<_>>());
    let (texts, rows) = id_texts(&uri);
    assert_eq!(rows, texts.len(), "an id twice");
    let encoder = lexembed_encoder::Encoder::open(tiny(), &Default::default()).unwrap();
    for i in [0, 6, 12, 594] {
        let row = ids.iter().position(|x| *x == id(i)).unwrap();
        let got = &vectors[row * 64..(row + 1) * 64];
        assert_tiny_64(&encoder, got, &expected[&id(i)], &format!("article {i}"));
    }

    // pylance: the same rows, and its own full-text search over the index built before the upsert.
    let fts = |query: String, ids: Vec<String>| serde_json::json!({"query": query, "ids": ids});
    let checks = serde_json::json!({
        "texts": expected,
        "deleted": (0..600).filter(|i| i % 12 == 1).map(id).collect::<Vec<_>>(),
        "fts": [
            fts("orig2".into(), vec![id(2)]),
            fts("orig12".into(), vec![]),
            fts("orig13".into(), vec![]),
            fts("zqx12".into(), vec![id(12)]),
            fts("zqx6".into(), vec![id(6)]),
        ],
    });
    pylance_upsert_check(&uri, dir.path(), &checks);

    // lexembed search, through the indexes built before the upsert.
    let fts_ids = |q: &str| {
        let mut cmd = bin();
        cmd.args([
            "search", &uri, "--mode", "fts", "--query", q, "--json", "-k", "5", "--model",
        ])
        .arg(tiny());
        json_ids(&run_ok(&mut cmd))
    };
    assert_eq!(fts_ids("zqx594"), vec![id(594)]);
    assert!(fts_ids("orig594").is_empty() && fts_ids("orig25").is_empty());
    assert_eq!(
        search_ids(&uri, "emb_64", &expected[&id(594)], false)[0],
        id(594)
    );
    let old = originals[25]["text"].as_str().unwrap();
    assert!(
        !search_ids(&uri, "emb_64", old, false).contains(&id(25)),
        "a deleted article was found"
    );
}

/// Upserts need ids: a dataset without an `id` column is refused, naming the column and the mode,
/// and left as it was.
#[test]
fn an_upsert_into_a_dataset_without_ids_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("noid.lance").display().to_string();
    let py = "import lance, pyarrow as pa, sys\nlance.write_dataset(pa.table({'text': ['a'], 'n': [1]}), sys.argv[1])\n";
    let status = Command::new(python())
        .args(["-c", py, &uri])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        dir.path().join("docs.jsonl"),
        "{\"id\":\"a\",\"text\":\"hola\"}\n",
    )
    .unwrap();
    let spec = write_spec(
        dir.path(),
        &format!(
            "source:\n  kind: file\n  path: docs.jsonl\nsink:\n  uri: {uri}\n  mode: upsert\n"
        ),
    );
    let out = bin()
        .args(["run", spec.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("has no id column") && err.contains("upsert"),
        "{err}"
    );
    assert_eq!(count_rows(&uri), 1);
}

fn count_rows(uri: &str) -> usize {
    scan_all(uri).iter().map(|b| b.num_rows()).sum()
}
