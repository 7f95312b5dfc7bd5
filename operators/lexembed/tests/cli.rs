//! The `lexembed` binary end to end: embed from arguments and stdin, model info, clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;
use common::*;
use lexembed_encoder::Prompt;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn golden() -> serde_json::Value {
    let p = tiny().with_file_name("tiny-xlmr.golden.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn assert_close(got: &serde_json::Value, want: &serde_json::Value) {
    let (g, w) = (got.as_array().unwrap(), want.as_array().unwrap());
    assert_eq!(g.len(), w.len());
    for (a, b) in g.iter().zip(w) {
        assert!(
            (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= 1e-5,
            "{a} vs {b}"
        );
    }
}

#[test]
fn embed_prints_one_json_line_per_text_with_requested_dims() {
    let g = golden();
    let texts: Vec<&str> = g["sentences"].as_array().unwrap()[1..4]
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let out = bin()
        .arg("embed")
        .arg("--model")
        .arg(tiny())
        .args(["--dim", "16", "--dim", "64"])
        .args(&texts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i);
        let keys: Vec<&String> = line["embeddings"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 2);
        assert_close(&line["embeddings"]["16"], &g["embeddings"]["16"][i + 1]);
        assert_close(&line["embeddings"]["64"], &g["embeddings"]["64"][i + 1]);
    }
}

/// `LEXEMBED_LOG=info` shows lexembed's events without ONNX Runtime's ~60 lines of graph
/// optimisation per session (they flooded every fault trial's log); naming `ort` brings them back.
#[test]
fn info_logs_leave_out_onnx_runtime_chatter_unless_asked() {
    let stderr = |log: &str| {
        let out = bin()
            .env("LEXEMBED_LOG", log)
            .args(["embed", "--model"])
            .arg(tiny())
            .arg("plazo")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let info = stderr("info");
    assert!(info.contains("model session ready"), "{info}");
    assert!(!info.contains("GraphTransformer"), "{info}");
    assert!(stderr("info,ort=info").contains("GraphTransformer"));
}

#[test]
fn embed_reads_stdin_lines_when_no_text_is_given() {
    let mut child = bin()
        .arg("embed")
        .arg("--model")
        .arg(tiny())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("Artículo 1. Objeto de la Ley.\nSí.\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let first = text.lines().next().unwrap();
    let at: Vec<usize> = ["\"64\":", "\"32\":", "\"16\":", "\"8\":"]
        .iter()
        .map(|k| first.find(k).unwrap_or_else(|| panic!("{k} missing")))
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "default: every dim the model serves, largest first"
    );
    let g = golden();
    assert_close(&lines[0]["embeddings"]["32"], &g["embeddings"]["32"][1]);
}

#[test]
fn model_info_reports_pooling_dims_and_provider() {
    let out = bin()
        .args(["model", "info", "--json"])
        .arg(tiny())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pooling"], "cls");
    assert_eq!(v["dims"], serde_json::json!([64, 32, 16, 8]));
    assert_eq!(v["max_seq_length"], 32);
    assert_eq!(v["provider"], "cpu");
}

#[test]
fn errors_exit_non_zero_with_a_clear_message() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["embed", "--model", "/nonexistent/model", "x"],
            "/nonexistent/model does not exist",
        ),
        (&["embed", "--dim", "65", "x"], "65"),
        (
            &["embed", "--provider", "tensorrt", "x"],
            "tensorrt is not available",
        ),
    ];
    for (args, expect) in cases {
        let mut cmd = bin();
        cmd.args(args);
        if !args.contains(&"--model") {
            cmd.arg("--model").arg(tiny());
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn committed_pipeline_schema_is_current() {
    let out = bin().arg("schema").output().unwrap();
    assert!(out.status.success());
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("pipelines/pipeline.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        generated, committed,
        "run `lexembed schema > pipelines/pipeline.schema.json`"
    );
    assert!(generated["properties"]["source"].is_object());
}

#[test]
fn validate_accepts_the_committed_specs_and_names_the_place_of_errors() {
    let specs: Vec<PathBuf> = std::fs::read_dir(repo().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    assert!(specs.len() >= 2);
    let out = bin()
        .arg("validate")
        .args(&specs)
        .env("LEXEMBED_HOME", "/data/lexembed")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: x\nsource:\n  kind: file\n  path: a.jsonl\n  textfield: body\nsink:\n  uri: o.lance\n").unwrap();
    let out = bin().arg("validate").arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.yaml:5:") && err.contains("textfield"),
        "{err}"
    );
}

#[test]
fn sql_embeds_and_reports_errors() {
    let out = bin()
        .args(["sql", "--format", "json", "--model"])
        .arg(tiny())
        .arg("SELECT cosine_similarity(embed('Artículo 1.', 8), embed('Artículo 1.', 8)) AS s, arrow_typeof(embed('x', 16)) AS t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!((v["s"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert!(v["t"].as_str().unwrap().contains("16"), "{v}");
    // Interactive/stdin mode: an error is printed and the next statement still runs.
    let mut child = bin()
        .args(["sql", "--format", "csv", "--model"])
        .arg(tiny())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT embed('x', 7);\nSELECT 1 + 1 AS two;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dim 7") && err.contains("[64, 32, 16, 8]"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("two\n2"));
}

/// Three short articles as `docs.csv` (`id,text`, ids `a0`..`a2`) in `dir`; returns the texts.
fn three_articles_csv(dir: &std::path::Path) -> [&'static str; 3] {
    let texts = [
        "Artículo 1. El plazo para resolver es de tres meses.",
        "Artículo 2. La solicitud se presentará por escrito.",
        "Artículo 3. Contra la resolución cabe recurso de alzada.",
    ];
    let mut body = String::from("id,text\n");
    for (i, t) in texts.iter().enumerate() {
        body.push_str(&format!("a{i},\"{t}\"\n"));
    }
    std::fs::write(dir.join("docs.csv"), body).unwrap();
    texts
}

/// Every row's `emb_64` (a fixed-size or plain list, as Lance or Parquet give it back) is the tiny
/// model's vector for `texts[i]`, where the row's id is `a<i>`, within 1e-5; one row per text.
fn assert_emb_64_is_the_encoders(batches: &[arrow_array::RecordBatch], texts: &[&str]) {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float32Type;
    let encoder = lexembed_encoder::Encoder::open(tiny(), &Default::default()).unwrap();
    let want = encoder
        .encode_array(
            &arrow_array::StringArray::from(texts.to_vec()),
            &[lexembed_encoder::Dim(64)],
            &Prompt::none(),
        )
        .unwrap();
    let mut seen = 0;
    for b in batches {
        let ids = b.column_by_name("id").unwrap().as_string::<i32>().clone();
        let emb = b.column_by_name("emb_64").unwrap();
        for r in 0..b.num_rows() {
            let i: usize = ids.value(r)[1..].parse().unwrap();
            let got = match emb.data_type() {
                arrow_schema::DataType::FixedSizeList(..) => emb.as_fixed_size_list().value(r),
                _ => emb.as_list::<i32>().value(r),
            };
            let got = got.as_primitive::<Float32Type>();
            let exp = want[0].value(i);
            let exp = exp.as_primitive::<Float32Type>();
            assert_eq!(got.len(), 64);
            let diff = (0..64)
                .map(|k| (got.value(k) - exp.value(k)).abs())
                .fold(0f32, f32::max);
            assert!(diff <= 1e-5, "row {i}: {diff}");
            seen += 1;
        }
    }
    assert_eq!(seen, texts.len());
}

/// A SQL backfill in one script: read a CSV, embed, write a new Lance dataset; its vectors are the
/// encoder's, it carries the model in its metadata (so `search` accepts it), and a second COPY to the
/// same path is refused without touching the first.
#[test]
fn sql_copy_to_lance_writes_a_searchable_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("docs.csv");
    let texts = three_articles_csv(dir.path());
    let out_path = dir.path().join("docs.lance");
    let script = format!(
        "CREATE EXTERNAL TABLE d STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true');\nCOPY (SELECT id, text, embed(text, 64) AS emb_64, embed(text, 16) AS emb_16 FROM d) TO '{}';",
        csv.display(),
        out_path.display()
    );
    let run = |s: &str| {
        bin()
            .args(["sql", "--model"])
            .arg(tiny())
            .arg(s)
            .output()
            .unwrap()
    };
    let out = run(&script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 rows"));
    // The vectors are the encoder's.
    assert_emb_64_is_the_encoders(&scan_all(&out_path.display().to_string()), &texts);
    // `lexembed search` accepts it (model metadata) and finds the article about the deadline.
    let out = bin()
        .args([
            "search",
            out_path.to_str().unwrap(),
            "--column",
            "emb_64",
            "--mode",
            "exact",
            "--json",
        ])
        .args([
            "--query",
            "Artículo 1. El plazo para resolver es de tres meses.",
            "--model",
        ])
        .arg(tiny())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("a0"));
    // A second COPY to the same path is refused; the first dataset stays whole.
    let out = run(&script);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parquet in SQL: COPY writes it, `--table` and a SQL source read it, and the vectors a COPY writes
/// to Parquet are the encoder's when read back by the `parquet` crate (not DataFusion).
#[test]
fn sql_reads_and_writes_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let texts = three_articles_csv(dir.path());
    let sql = |args: &[&str]| {
        run_ok(
            bin()
                .current_dir(dir.path())
                .args(["sql", "--model"])
                .arg(tiny())
                .args(args),
        )
    };
    sql(&[
        "CREATE EXTERNAL TABLE d STORED AS CSV LOCATION 'docs.csv' OPTIONS ('format.has_header' 'true');\
         COPY (SELECT id, text FROM d) TO 'docs.parquet';\
         COPY (SELECT id, embed(text, 64) AS emb_64 FROM d) TO 'emb.parquet'",
    ]);
    // `--table` takes the Parquet file.
    let counted = sql(&[
        "--table",
        "p=docs.parquet",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM p",
    ]);
    assert_eq!(counted.lines().last(), Some("3"), "{counted}");
    // The embeddings COPY wrote, read back independently, are the encoder's.
    let file = std::fs::File::open(dir.path().join("emb.parquet")).unwrap();
    let batches: Vec<arrow_array::RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    assert_emb_64_is_the_encoders(&batches, &texts);
    // A SQL source over the Parquet file feeds a pipeline.
    let spec = dir.path().join("parquet.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: parquet-src\nsource:\n  kind: sql\n  sql:\n    query: \"SELECT id, text FROM p\"\n    tables: {{p: docs.parquet}}\nencoder:\n  model: {}\nsink:\n  uri: out.lance\n",
            tiny().display()
        ),
    )
    .unwrap();
    let s: serde_json::Value =
        serde_json::from_str(&run_ok(bin().args(["run", "--json"]).arg(&spec))).unwrap();
    assert_eq!(s["rows_written"], 3, "{s}");
}

/// `source: {kind: sql}`: the query's rows are the documents (filtered, joined, renamed in SQL); a row
/// with no text is a bad record named by its row; the run is one commit like a file run.
#[test]
fn a_sql_source_feeds_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docs.csv"),
        "doc,body,law\n1,Artículo 1. El plazo para resolver es de tres meses.,ley-39\n2,,ley-39\n3,Artículo 3. Cabe recurso de alzada.,ley-40\n4,Artículo 4. Disposición derogada.,ley-99\n",
    )
    .unwrap();
    let spec = dir.path().join("sql.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: sql-src\nsource:\n  kind: sql\n  sql:\n    query: \"SELECT CAST(doc AS VARCHAR) AS id, body AS text, law FROM d WHERE law <> 'ley-99'\"\n    tables: {{d: docs.csv}}\n  metadata_fields: [law]\n  on_bad_record: skip\nencoder:\n  model: {}\nsink:\n  uri: out.lance\n",
            tiny().display()
        ),
    )
    .unwrap();
    let out = bin().args(["run", "--json"]).arg(&spec).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["rows_written"], 2, "{s}");
    assert_eq!(s["rows_read"], 3, "{s}");
    assert_eq!(s["skipped"]["missing_text"], 1, "{s}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("source.sql row") && err.contains("line=2"),
        "{err}"
    );
    // A query naming a column the result lacks is a clear error.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("body AS text", "body")
            .replace("out.lance", "out2.lance"),
    )
    .unwrap();
    let out = bin().arg("run").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no column `text`") && err.contains("body"),
        "{err}"
    );
}

/// Runs `lexembed ARGS` to the end; returns (success, stdout, stderr, peak resident memory in
/// bytes). The peak is the kernel's (`ru_maxrss` from `wait4`) for that one process, taken by a
/// small Python parent that `fork`s it: a child spawned straight from this test process would
/// inherit this process's own high-water mark at `exec`, and tests running beside it would count.
fn run_measuring_peak_rss(args: &[&std::ffi::OsStr], dir: &Path) -> (bool, String, String, u64) {
    const PARENT: &str = "import os, sys\n\
pid = os.fork()\n\
if pid == 0:\n    os.execv(sys.argv[1], sys.argv[1:])\n\
_, status, usage = os.wait4(pid, 0)\n\
print(usage.ru_maxrss, file=open(os.environ['PEAK_FILE'], 'w'))\n\
sys.exit(os.waitstatus_to_exitcode(status))\n";
    let (out, err, peak) = (dir.join("stdout"), dir.join("stderr"), dir.join("peak"));
    let status = Command::new(python())
        .args(["-c", PARENT, env!("CARGO_BIN_EXE_lexembed")])
        .args(args)
        .env("PEAK_FILE", &peak)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    // ru_maxrss is in KiB on Linux.
    let kib: u64 = read(&peak).trim().parse().unwrap();
    (status.success(), read(&out), read(&err), kib * 1024)
}

/// A 256 MiB JSONL line (no text may exceed 1 KiB) is refused with its line and size while the
/// process's peak memory stays within 64 MiB of a run over the same file without that line. The
/// old reader held the whole line (and parsed it) before checking the size.
#[test]
fn a_256_mib_line_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let line = |id: &str, text: &str| serde_json::json!({"id": id, "text": text}).to_string();
    let ok_rows = [
        line("a", "Artículo 1. El plazo para resolver es de tres meses."),
        line("b", "Artículo 2. Cabe recurso de alzada."),
    ];
    std::fs::write(dir.path().join("small.jsonl"), ok_rows.join("\n") + "\n").unwrap();
    // Written in chunks: the parent's memory does not matter (see run_measuring_peak_rss), but
    // there is no need for 256 MiB of it.
    let mut huge = std::fs::File::create(dir.path().join("huge.jsonl")).unwrap();
    writeln!(huge, "{}", ok_rows[0]).unwrap();
    write!(huge, "{{\"id\": \"huge\", \"text\": \"").unwrap();
    let chunk = "a".repeat(1 << 20);
    for _ in 0..256 {
        huge.write_all(chunk.as_bytes()).unwrap();
    }
    writeln!(huge, "\"}}").unwrap();
    writeln!(huge, "{}", ok_rows[1]).unwrap();
    drop(huge);
    let huge_line_bytes = (256 << 20) + r#"{"id": "huge", "text": ""}"#.len() + 1;
    let spec = |file: &str, on_bad: &str| {
        let p = dir.path().join(format!("{file}-{on_bad}.yaml"));
        std::fs::write(
            &p,
            format!(
                "name: bounded\nsource:\n  kind: file\n  path: {file}\n  max_text_bytes: 1024\n  on_bad_record: {on_bad}\nencoder:\n  model: {}\nsink:\n  uri: {file}-{on_bad}.lance\n",
                tiny().display()
            ),
        )
        .unwrap();
        p
    };
    let (ok, _, err, baseline) = run_measuring_peak_rss(
        &[
            "run".as_ref(),
            "--json".as_ref(),
            spec("small.jsonl", "fail").as_os_str(),
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    let (ok, _, err, peak) = run_measuring_peak_rss(
        &[
            "run".as_ref(),
            "--json".as_ref(),
            spec("huge.jsonl", "fail").as_os_str(),
        ],
        dir.path(),
    );
    assert!(!ok);
    assert!(
        err.contains("huge.jsonl:2") && err.contains(&format!("line of {huge_line_bytes} bytes")),
        "{err}"
    );
    let (mib, base_mib) = (peak >> 20, baseline >> 20);
    eprintln!("peak {mib} MiB, {base_mib} MiB without the long line");
    assert!(
        peak < baseline + (64 << 20),
        "peak {mib} MiB against {base_mib} MiB without the long line"
    );
    let (ok, stdout, err, _) = run_measuring_peak_rss(
        &[
            "run".as_ref(),
            "--json".as_ref(),
            spec("huge.jsonl", "skip").as_os_str(),
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["rows_written"], 2, "{s}");
    assert_eq!(s["skipped"]["too_large"], 1, "{s}");
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(samples: &[serde_json::Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no {name} {labels:?} in {samples:#?}"))
}

/// A file run with `--metrics-file` leaves its counts, bad records by kind and its outcome in a
/// Prometheus textfile (node_exporter's textfile collector reads it), success or failure; the
/// official parser reads it and the numbers equal the run's summary.
#[test]
fn a_file_run_writes_its_metrics_for_the_textfile_collector() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        r#"{"id": "a", "text": "Artículo 1. El plazo es de tres meses.", "law": "ley-39"}"#,
        r#"{not json"#,
        r#"{"id": "b", "text": "Artículo 2. Cabe recurso de alzada.", "law": "ley-40"}"#,
        r#"{"id": "c"}"#,
        r#"{"id": "d"}"#,
    ];
    std::fs::write(dir.path().join("docs.jsonl"), rows.join("\n") + "\n").unwrap();
    let spec = |on_bad: &str| {
        let p = dir.path().join(format!("{on_bad}.yaml"));
        std::fs::write(
            &p,
            format!(
                "name: metrics-{on_bad}\nsource:\n  kind: file\n  path: docs.jsonl\n  metadata_fields: [law]\n  on_bad_record: {on_bad}\nencoder:\n  model: {}\nsink:\n  uri: {on_bad}.lance\n",
                tiny().display()
            ),
        )
        .unwrap();
        p
    };
    let prom = dir.path().join("lexembed.prom");
    let out = run_ok(
        bin()
            .args(["run", "--json", "--metrics-file"])
            .arg(&prom)
            .arg(spec("skip")),
    );
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let samples = prometheus_samples(&std::fs::read_to_string(&prom).unwrap());
    let p = [("pipeline", "metrics-skip")];
    assert_eq!(sample(&samples, "lexembed_rows_written_total", &p), 2.0);
    // Every series names the source kind (a Kafka replica's say kafka): one dashboard for all runs.
    let file = [("pipeline", "metrics-skip"), ("source", "file")];
    assert_eq!(sample(&samples, "lexembed_rows_written_total", &file), 2.0);
    assert_eq!(summary["rows_written"], 2);
    assert_eq!(sample(&samples, "lexembed_rows_read_total", &p), 5.0);
    assert_eq!(sample(&samples, "lexembed_lance_commits_total", &p), 1.0);
    let kind = |k| [("pipeline", "metrics-skip"), ("kind", k)];
    assert_eq!(
        sample(&samples, "lexembed_bad_records_total", &kind("not_json")),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "lexembed_bad_records_total",
            &kind("missing_text")
        ),
        2.0
    );
    assert_eq!(sample(&samples, "lexembed_encoder_seconds_count", &p), 1.0);
    let job = [("job", "run"), ("pipeline", "metrics-skip")];
    assert_eq!(sample(&samples, "lexembed_job_success", &job), 1.0);
    assert!(sample(&samples, "lexembed_job_last_run_timestamp_seconds", &job) > 1.7e9);

    let failed = bin()
        .args(["run", "--metrics-file"])
        .arg(&prom)
        .arg(spec("fail"))
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let samples = prometheus_samples(&std::fs::read_to_string(&prom).unwrap());
    let job = [("job", "run"), ("pipeline", "metrics-fail")];
    assert_eq!(sample(&samples, "lexembed_job_success", &job), 0.0);
}

/// A SQL source with `sink.mode: upsert`: a row replaces the row of its id, and a NULL text deletes
/// the id (here a repealed article: `CASE WHEN … THEN NULL`); a missing text is still refused.
#[test]
fn a_sql_source_upserts_and_deletes_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("sql.yaml");
    let write = |rows: &str| {
        std::fs::write(
            dir.path().join("docs.csv"),
            format!("doc,body,status\n{rows}"),
        )
        .unwrap();
    };
    std::fs::write(
        &spec,
        format!(
            "name: sql-upsert\nsource:\n  kind: sql\n  sql:\n    query: \"SELECT CAST(doc AS VARCHAR) AS id, CASE WHEN status = 'derogado' THEN NULL ELSE body END AS text FROM d\"\n    tables: {{d: docs.csv}}\nencoder:\n  model: {}\nsink:\n  uri: out.lance\n  mode: upsert\n",
            tiny().display()
        ),
    )
    .unwrap();
    let run = || -> serde_json::Value {
        serde_json::from_str(&run_ok(bin().args(["run", "--json"]).arg(&spec))).unwrap()
    };
    write(
        "1,Artículo 1. Plazo de tres meses.,vigente\n2,Artículo 2. Recurso de alzada.,vigente\n3,Artículo 3. Silencio positivo.,vigente\n",
    );
    assert_eq!(run()["rows_in_dataset"], 3);
    write(
        "1,Artículo 1. Plazo de seis meses.,vigente\n2,Artículo 2. Recurso de alzada.,derogado\n4,Artículo 4. Nuevo.,vigente\n",
    );
    let s = run();
    let counts = [
        "rows_written",
        "rows_replaced",
        "rows_deleted",
        "rows_in_dataset",
    ]
    .map(|k| s[k].as_u64().unwrap());
    assert_eq!(counts, [2, 1, 1, 3], "{s}");
    let uri = dir.path().join("out.lance").display().to_string();
    use arrow_array::cast::AsArray;
    let mut rows: Vec<(String, String)> = scan_all(&uri)
        .iter()
        .flat_map(|b| {
            let ids = b.column_by_name("id").unwrap().as_string::<i32>();
            let texts = b.column_by_name("text").unwrap().as_string::<i32>();
            (0..b.num_rows())
                .map(|r| (ids.value(r).to_string(), texts.value(r).to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    rows.sort();
    let want = [
        ("1", "Artículo 1. Plazo de seis meses."),
        ("3", "Artículo 3. Silencio positivo."),
        ("4", "Artículo 4. Nuevo."),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(rows, want);
}
