//! Pipelines end to end on the real encoder (tiny XLM-R fixture) and real Lance datasets: what is written,
//! what is refused, resume, and every source format.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, RecordBatch};
use futures::TryStreamExt;
use lexembed_encoder::{Dim, Encoder, EncoderOptions, Prompt};
use lexembed_lance::{DatasetLocation, commit_history};
use lexembed_pipeline::{LoadedSpec, RunOptions, RunSummary, run_pipeline};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../encoder/tests/fixtures/tiny-xlmr")
}

fn sentences() -> Vec<String> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../integration/fixtures/sentences.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn write_jsonl(path: &Path, rows: &[String]) {
    std::fs::write(path, rows.join("\n") + "\n").unwrap();
}

fn docs(n: usize, offset: usize) -> Vec<String> {
    let s = sentences();
    (0..n)
        .map(|i| serde_json::json!({"id": format!("d{}", i + offset), "text": s[(i + offset) % s.len()], "law": format!("ley-{}", i % 3)}).to_string())
        .collect()
}

fn spec(dir: &Path, body: &str) -> LoadedSpec {
    let file = dir.join("p.yaml");
    let text = format!(
        "name: test\nencoder:\n  model: {}\n{body}",
        tiny().display()
    );
    std::fs::write(&file, text).unwrap();
    LoadedSpec::load(&file).unwrap()
}

/// The runtime the pipelines' Lance I/O runs on (the binary's part in production).
fn io() -> &'static tokio::runtime::Handle {
    static IO: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    IO.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
        .handle()
}

fn run(dir: &Path, body: &str) -> lexembed_pipeline::Result<RunSummary> {
    run_pipeline(&spec(dir, body), &RunOptions::default(), io())
}

fn read_all(uri: &str) -> RecordBatch {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ds = DatasetLocation::new(uri).open().await.unwrap();
        let batches: Vec<RecordBatch> = ds
            .scan()
            .try_into_stream()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        arrow_select_concat(&batches)
    })
}

fn arrow_select_concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).unwrap()
}

const JSONL_SINK: &str = "source:\n  kind: file\n  path: docs.jsonl\n  metadata_fields: [law]\nsink:\n  uri: out.lance\n";

#[test]
fn writes_one_vector_column_per_dim_equal_to_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    write_jsonl(&dir.path().join("docs.jsonl"), &docs(60, 0));
    let s = run(dir.path(), JSONL_SINK).unwrap();
    assert_eq!(
        (
            s.rows_read,
            s.rows_embedded,
            s.rows_written,
            s.rows_in_dataset
        ),
        (60, 60, 60, 60)
    );
    let uri = dir.path().join("out.lance").display().to_string();
    let batch = read_all(&uri);
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        ["id", "text", "law", "emb_64", "emb_32", "emb_16", "emb_8"]
    );
    let meta = batch.schema().metadata().clone();
    assert_eq!(meta["lexembed.model_id"], "lexembed/tiny-xlmr");
    assert_eq!(meta["lexembed.dims"], "64,32,16,8");

    let enc = Encoder::open(tiny(), &EncoderOptions::default()).unwrap();
    let text = batch.column_by_name("text").unwrap();
    let want = enc
        .encode_array(text.as_ref(), &[Dim(64), Dim(8)], &Prompt::none())
        .unwrap();
    for (col, w) in ["emb_64", "emb_8"].iter().zip(&want) {
        let got = batch.column_by_name(col).unwrap().as_fixed_size_list();
        for i in 0..batch.num_rows() {
            let (g, e) = (got.value(i), w.value(i));
            let (g, e) = (
                g.as_primitive::<Float32Type>().values(),
                e.as_primitive::<Float32Type>().values(),
            );
            let diff = g
                .iter()
                .zip(e.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff <= 1e-6, "{col} row {i}: {diff}");
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(DatasetLocation::new(&uri).open()).unwrap();
    let history = rt.block_on(commit_history(&ds)).unwrap();
    assert_eq!(history.len(), 1);
    let record = &history[0].1;
    assert_eq!(record.pipeline.as_deref(), Some("test"));
    assert!(record.sources.iter().any(|s| s.contains("docs.jsonl")));
    let written_by = record.written_by.as_ref().unwrap();
    assert_eq!(written_by.model_id, "lexembed/tiny-xlmr");
    assert_eq!(written_by.dims, [64, 32, 16, 8]);
}

#[test]
fn bad_records_fail_with_their_line_or_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = docs(5, 0);
    rows.insert(2, "{not json".into());
    rows.insert(4, r#"{"id": "x1"}"#.into());
    rows.insert(5, r#"{"id": "x2", "text": 7}"#.into());
    rows.insert(6, r#"[1, 2]"#.into());
    // Two oversized texts of different sizes: one kind, not one key per byte count.
    for (at, n) in [(7, 6000), (8, 7000)] {
        rows.insert(
            at,
            serde_json::json!({"id": format!("big{n}"), "text": "a".repeat(n)}).to_string(),
        );
    }
    write_jsonl(&dir.path().join("docs.jsonl"), &rows);
    let err = run(dir.path(), JSONL_SINK).unwrap_err().to_string();
    assert!(
        err.contains("docs.jsonl:3") && err.contains("not JSON"),
        "{err}"
    );
    assert!(
        !dir.path().join("out.lance").exists() || read_rows(dir.path()) == 0,
        "a failed run commits nothing"
    );

    let body = JSONL_SINK.replace(
        "  metadata_fields: [law]\n",
        "  metadata_fields: [law]\n  on_bad_record: skip\n  max_text_bytes: 5000\n",
    );
    let s = run(dir.path(), &body).unwrap();
    assert_eq!(s.rows_written, 5);
    assert_eq!(s.rows_read, 11);
    // Counted by the refusal's kind, as the Kafka operator's metrics and dead letters name it.
    let mut kinds: Vec<(&str, usize)> = s.skipped.iter().map(|(k, n)| (k.name(), *n)).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("missing_text", 1),
            ("not_json", 1),
            ("not_object", 1),
            ("text_not_string", 1),
            ("too_large", 2)
        ]
    );
}

/// A line far over what any acceptable record needs (here 3 MiB, for `max_text_bytes: 100`) is
/// measured and skipped in chunks, never held whole: a bad record naming its line and size (the old
/// reader read any line whole, a 1 GB line without a newline included).
#[test]
fn an_oversized_line_is_refused_with_its_size_without_being_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = docs(3, 0);
    let huge = format!(
        "{{\"id\": \"huge\", \"text\": \"{}\"}}",
        "a".repeat(3 << 20)
    );
    rows.insert(1, huge.clone());
    write_jsonl(&dir.path().join("docs.jsonl"), &rows);
    let limited = JSONL_SINK.replace(
        "  metadata_fields: [law]\n",
        "  metadata_fields: [law]\n  max_text_bytes: 100\n",
    );
    let err = run(dir.path(), &limited).unwrap_err().to_string();
    let size = format!("{} bytes", huge.len() + 1);
    assert!(
        err.contains("docs.jsonl:2") && err.contains(&size) && err.contains("line limit"),
        "{err}"
    );
    let skip = limited.replace(
        "  max_text_bytes: 100\n",
        "  max_text_bytes: 100\n  on_bad_record: skip\n",
    );
    let s = run(dir.path(), &skip).unwrap();
    assert_eq!(s.rows_written, 3);
    let mut kinds: Vec<(&str, usize)> = s.skipped.iter().map(|(k, n)| (k.name(), *n)).collect();
    kinds.sort();
    assert_eq!(kinds, [("too_large", 1)]);
}

fn read_rows(dir: &Path) -> usize {
    read_all(&dir.join("out.lance").display().to_string()).num_rows()
}

#[test]
fn existing_datasets_refuse_create_other_models_and_other_schemas() {
    let dir = tempfile::tempdir().unwrap();
    write_jsonl(&dir.path().join("docs.jsonl"), &docs(4, 0));
    run(dir.path(), JSONL_SINK).unwrap();
    let err = run(dir.path(), JSONL_SINK).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");

    let append = JSONL_SINK.replace("  uri: out.lance\n", "  uri: out.lance\n  mode: append\n");
    let s = run(dir.path(), &append).unwrap();
    assert_eq!(
        s.rows_in_dataset, 8,
        "append with the same model and schema works"
    );

    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        format!(
            "name: test\nencoder:\n  model: {}\n  dims: [64, 16]\n{append}",
            tiny().display()
        ),
    )
    .unwrap();
    let err = run_pipeline(
        &LoadedSpec::load(&file).unwrap(),
        &RunOptions::default(),
        io(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("lexembed/tiny-xlmr")
            && err.contains("[64, 32, 16, 8]")
            && err.contains("[64, 16]"),
        "{err}"
    );

    let other_meta = append.replace("metadata_fields: [law]", "metadata_fields: [law, title]");
    let err = run(dir.path(), &other_meta).unwrap_err().to_string();
    assert!(
        err.contains("another schema") && err.contains("title"),
        "{err}"
    );
}

#[test]
fn resume_skips_committed_files_so_each_row_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    write_jsonl(&dir.path().join("in/a.jsonl"), &docs(7, 0));
    let body = "source:\n  kind: file\n  path: in/*.jsonl\nsink:\n  uri: out.lance\n  mode: append\n  resume: true\n";
    assert_eq!(run(dir.path(), body).unwrap().rows_written, 7);
    let again = run(dir.path(), body).unwrap();
    assert_eq!(
        (
            again.files_already_committed,
            again.rows_written,
            again.version
        ),
        (1, 0, None)
    );
    write_jsonl(&dir.path().join("in/b.jsonl"), &docs(5, 7));
    let third = run(dir.path(), body).unwrap();
    assert_eq!(
        (
            third.files_already_committed,
            third.rows_written,
            third.rows_in_dataset
        ),
        (1, 5, 12)
    );
    let batch = read_all(&dir.path().join("out.lance").display().to_string());
    let mut ids: Vec<String> = batch
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(|s| s.unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12);
}

/// `lexembed cleanup` removes the versions whose commits name the files committed; its recovery commit
/// keeps that record, so a resume afterwards re-embeds nothing (with Lance's own cleanup, every file
/// whose commit was removed would be embedded again: ids twice).
#[test]
fn resume_after_a_cleanup_of_every_old_version_re_embeds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    write_jsonl(&dir.path().join("in/a.jsonl"), &docs(7, 0));
    let body = "source:\n  kind: file\n  path: in/*.jsonl\nsink:\n  uri: out.lance\n  mode: append\n  resume: true\n";
    assert_eq!(run(dir.path(), body).unwrap().rows_written, 7);
    write_jsonl(&dir.path().join("in/b.jsonl"), &docs(5, 7));
    assert_eq!(run(dir.path(), body).unwrap().rows_written, 5);
    let location = DatasetLocation::new(dir.path().join("out.lance").display().to_string());
    let done = io()
        .block_on(lexembed_lance::cleanup(&location, None))
        .unwrap();
    assert_eq!(done.versions_removed, 2, "{done:?}");
    let again = run(dir.path(), body).unwrap();
    assert_eq!((again.files_already_committed, again.rows_written), (2, 0));
    assert_eq!(read_rows(dir.path()), 12);
}

/// A file committed before and changed since (size or mtime) would be ingested again whole next to
/// its old rows: resuming refuses it, naming the file and the commit, and writes nothing.
#[test]
fn resume_refuses_a_committed_file_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    let a = dir.path().join("in/a.jsonl");
    write_jsonl(&a, &docs(7, 0));
    let body = "source:\n  kind: file\n  path: in/*.jsonl\nsink:\n  uri: out.lance\n  mode: append\n  resume: true\n";
    assert_eq!(run(dir.path(), body).unwrap().rows_written, 7);
    write_jsonl(&a, &docs(8, 0)); // one more line
    write_jsonl(&dir.path().join("in/b.jsonl"), &docs(2, 8));
    let e = run(dir.path(), body).unwrap_err().to_string();
    assert!(
        e.contains("a.jsonl") && e.contains("changed") && e.contains("version 1"),
        "{e}"
    );
    assert_eq!(read_rows(dir.path()), 7);
}

/// `--resume` on an overwrite spec would skip the committed files and overwrite the dataset with the
/// rest: refused before anything is written.
#[test]
fn resume_with_mode_overwrite_is_refused_and_the_dataset_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    write_jsonl(&dir.path().join("in/a.jsonl"), &docs(7, 0));
    write_jsonl(&dir.path().join("in/b.jsonl"), &docs(5, 7));
    let body =
        "source:\n  kind: file\n  path: in/*.jsonl\nsink:\n  uri: out.lance\n  mode: overwrite\n";
    assert_eq!(run(dir.path(), body).unwrap().rows_written, 12);
    write_jsonl(&dir.path().join("in/c.jsonl"), &docs(3, 12));
    let resume = RunOptions {
        resume: Some(true),
        ..RunOptions::default()
    };
    let e = run_pipeline(&spec(dir.path(), body), &resume, io())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sink.mode") && e.contains("--resume"), "{e}");
    assert_eq!(
        read_all(&dir.path().join("out.lance").display().to_string()).num_rows(),
        12
    );
}

#[test]
fn csv_and_parquet_sources_read_the_same_documents() {
    let dir = tempfile::tempdir().unwrap();
    let s = sentences();
    let mut csv = String::from("id,text,law\n");
    for i in 0..6 {
        csv.push_str(&format!(
            "c{i},\"{}\",ley-{i}\n",
            s[i + 1].replace('"', "\"\"")
        ));
    }
    std::fs::write(dir.path().join("docs.csv"), csv).unwrap();
    let r = run(dir.path(), &JSONL_SINK.replace("docs.jsonl", "docs.csv")).unwrap();
    assert_eq!(r.rows_written, 6);

    let batch = read_all(&dir.path().join("out.lance").display().to_string());
    let pq = dir.path().join("docs.parquet");
    let docs_only = batch.project(&[0, 1, 2]).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&pq).unwrap(),
        docs_only.schema(),
        None,
    )
    .unwrap();
    w.write(&docs_only).unwrap();
    w.close().unwrap();
    let body = JSONL_SINK
        .replace("docs.jsonl", "docs.parquet")
        .replace("out.lance", "pq.lance");
    assert_eq!(run(dir.path(), &body).unwrap().rows_written, 6);
    let again = read_all(&dir.path().join("pq.lance").display().to_string());
    assert_eq!(
        again.column(1).as_string::<i32>(),
        batch.column(1).as_string::<i32>()
    );
    assert_eq!(
        again.column_by_name("emb_64").unwrap().as_ref(),
        batch.column_by_name("emb_64").unwrap().as_ref()
    );
    assert!(again.column(2).is_valid(0));
}

/// What a spreadsheet export looks like: a byte order mark, quoted fields holding commas, doubled
/// quotes and newlines. Every field arrives as written, and a bad record is named by the line it
/// starts on (counting the newlines inside quoted fields). The old reader split the header on every
/// `,` and kept the BOM in the first column's name, so `id` was not found.
#[test]
fn csv_quotes_newlines_and_a_byte_order_mark_are_read_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "\u{feff}id,\"text\",law\n\
               a1,\"Artículo 1, apartado 2: \"\"plazo\"\" de diez días\",\"ley, 39/2015\"\n\
               a2,\"Primera línea\nsegunda línea\",ley-2\n\
               a3,solo dos campos\n\
               a4,\"tercera\",ley-4\n";
    std::fs::write(dir.path().join("docs.csv"), csv).unwrap();
    let body = JSONL_SINK.replace("docs.jsonl", "docs.csv").replace(
        "  metadata_fields: [law]\n",
        "  metadata_fields: [law]\n  on_bad_record: skip\n",
    );
    let s = run(dir.path(), &body).unwrap();
    assert_eq!(s.rows_written, 3);
    let mut kinds: Vec<(&str, usize)> = s.skipped.iter().map(|(k, n)| (k.name(), *n)).collect();
    kinds.sort();
    assert_eq!(kinds, [("malformed_csv", 1)]);

    let batch = read_all(&dir.path().join("out.lance").display().to_string());
    let col = |name: &str| -> Vec<String> {
        let c = batch.column_by_name(name).unwrap().as_string::<i32>();
        (0..c.len()).map(|i| c.value(i).to_string()).collect()
    };
    assert_eq!(col("id"), ["a1", "a2", "a4"]);
    assert_eq!(
        col("text"),
        [
            "Artículo 1, apartado 2: \"plazo\" de diez días",
            "Primera línea\nsegunda línea",
            "tercera"
        ]
    );
    assert_eq!(col("law"), ["ley, 39/2015", "ley-2", "ley-4"]);

    let fail = JSONL_SINK.replace("docs.jsonl", "docs.csv");
    let err = run(dir.path(), &fail.replace("out.lance", "f.lance"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("docs.csv:5") && err.contains("2 fields, the header has 3"),
        "the short record starts on line 5 (line 3 holds a quoted newline): {err}"
    );
}

/// An unclosed quote would make the rest of the file one field: reading stops at the record
/// limit with an error naming the line the record starts on, instead of reading the file whole.
#[test]
fn an_unclosed_csv_quote_stops_at_the_record_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,text\na1,\"never closed\n");
    for i in 0..40_000 {
        csv.push_str(&format!("b{i},texto número {i} de relleno\n"));
    }
    std::fs::write(dir.path().join("docs.csv"), &csv).unwrap();
    let body =
        "source:\n  kind: file\n  path: docs.csv\n  max_text_bytes: 100\nsink:\n  uri: out.lance\n";
    let err = run(dir.path(), body).unwrap_err().to_string();
    assert!(
        err.contains("docs.csv") && err.contains("line 2") && err.contains("record limit"),
        "{err}"
    );
}

/// A `.json` export holding one array of objects (pretty-printed, a `]` inside a string, a bad
/// element) reads element by element like JSONL: same rows, bad elements named by the line they
/// start on. The old reader treated it as JSONL: the whole array was one `not_object` line.
#[test]
fn a_json_array_file_is_read_element_by_element() {
    let dir = tempfile::tempdir().unwrap();
    let rows = docs(4, 0);
    write_jsonl(&dir.path().join("docs.jsonl"), &rows);
    let elements: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    let mut array = serde_json::to_string_pretty(&elements[..2]).unwrap();
    array.truncate(array.rfind(']').unwrap());
    array.push_str(",\n  {\"id\": \"bad\", \"text\": null, \"note\": \"] , [\"},\n  ");
    array.push_str(&format!("{},\n{}\n]\n", elements[2], elements[3]));
    std::fs::write(dir.path().join("docs.json"), format!("\u{feff}  \n{array}")).unwrap();

    let reference = run(dir.path(), JSONL_SINK).unwrap();
    assert_eq!(reference.rows_written, 4);
    let body = JSONL_SINK
        .replace("docs.jsonl", "docs.json")
        .replace("out.lance", "array.lance");
    let err = run(dir.path(), &body).unwrap_err().to_string();
    let bad_line = 2 + array[..array.find("\"bad\"").unwrap()]
        .matches('\n')
        .count();
    assert!(
        err.contains(&format!("docs.json:{bad_line}")) && err.contains("is null"),
        "{err}"
    );
    let skip = body.replace(
        "  metadata_fields: [law]\n",
        "  metadata_fields: [law]\n  on_bad_record: skip\n",
    );
    let s = run(dir.path(), &skip).unwrap();
    assert_eq!(s.rows_written, 4);
    let want = read_all(&dir.path().join("out.lance").display().to_string());
    let got = read_all(&dir.path().join("array.lance").display().to_string());
    for name in ["id", "text", "law", "emb_64"] {
        assert_eq!(
            got.column_by_name(name).unwrap().as_ref(),
            want.column_by_name(name).unwrap().as_ref(),
            "{name}"
        );
    }
}

/// A broken array cannot be resynchronised: the run fails naming the line, and commits nothing.
#[test]
fn a_broken_json_array_fails_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[{\"id\": \"a\", \"text\": \"x\"}\n {\"id\": \"b\", \"text\": \"y\"}]",
            "line 2",
            "expected `,` or `]`",
        ),
        (
            "[{\"id\": \"a\", \"text\": \"x\"},\n",
            "line 2",
            "no closing `]`",
        ),
        (
            "[{\"id\": \"a\", \"text\": \"x\"}] {}",
            "line 1",
            "after the array's closing `]`",
        ),
        (
            "[{\"id\": \"a\", \"text\": \"x\"},,]",
            "line 1",
            "expected an array element",
        ),
        (
            "[{\"id\": \"a\", \"text\": \"x\n",
            "line 2",
            "ends inside an array element",
        ),
    ];
    for (i, (text, line, what)) in cases.iter().enumerate() {
        std::fs::write(dir.path().join("docs.json"), text).unwrap();
        let body = JSONL_SINK
            .replace("docs.jsonl", "docs.json")
            .replace("out.lance", &format!("out{i}.lance"));
        let err = run(dir.path(), &body).unwrap_err().to_string();
        assert!(
            err.contains("docs.json") && err.contains(line) && err.contains(what),
            "{text:?}: {err}"
        );
        assert!(!dir.path().join(format!("out{i}.lance")).exists());
    }
}

/// Ids and metadata are copied into every row as they come: each has a limit like the text, and a
/// record over it is a `too_large` bad record naming the field (before, any size was written).
#[test]
fn ids_and_metadata_over_their_limits_are_bad_records_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = docs(3, 0);
    rows.push(serde_json::json!({"id": "i".repeat(2000), "text": "texto"}).to_string());
    rows.push(
        serde_json::json!({"id": "m1", "text": "texto", "law": "l".repeat(100_000)}).to_string(),
    );
    write_jsonl(&dir.path().join("docs.jsonl"), &rows);
    let err = run(dir.path(), JSONL_SINK).unwrap_err().to_string();
    assert!(
        err.contains("docs.jsonl:4") && err.contains("id field `id` has 2000 bytes"),
        "{err}"
    );
    let mut csv = String::from("id,text,law\n");
    csv.push_str(&format!("c1,texto,{}\n", "l".repeat(300)));
    csv.push_str("c2,texto,ley\n");
    std::fs::write(dir.path().join("docs.csv"), csv).unwrap();
    let body = JSONL_SINK.replace("docs.jsonl", "docs.csv").replace(
        "  metadata_fields: [law]\n",
        "  metadata_fields: [law]\n  max_metadata_bytes: 200\n",
    );
    let err = run(dir.path(), &body).unwrap_err().to_string();
    assert!(
        err.contains("docs.csv:2") && err.contains("metadata field `law` has 300 bytes"),
        "{err}"
    );

    let skip = JSONL_SINK.replace(
        "  metadata_fields: [law]\n",
        "  metadata_fields: [law]\n  on_bad_record: skip\n",
    );
    let s = run(dir.path(), &skip).unwrap();
    assert_eq!(s.rows_written, 3);
    let mut kinds: Vec<(&str, usize)> = s.skipped.iter().map(|(k, n)| (k.name(), *n)).collect();
    kinds.sort();
    assert_eq!(kinds, [("too_large", 2)]);
}

use lexembed_testkit::prompted_tiny;

/// Runs `sink` with `model` and the `encoder.prompt` line `prompt` (none: no line).
fn run_prompted(
    dir: &Path,
    model: &Path,
    prompt: Option<&str>,
    sink: &str,
) -> lexembed_pipeline::Result<RunSummary> {
    let file = dir.join("p.yaml");
    let prompt = prompt
        .map(|p| format!("  prompt: {p}\n"))
        .unwrap_or_default();
    let text = format!(
        "name: test\nencoder:\n  model: {}\n{prompt}{sink}",
        model.display()
    );
    std::fs::write(&file, text).unwrap();
    run_pipeline(&LoadedSpec::load(&file)?, &RunOptions::default(), io())
}

/// The vectors of `uri`'s `emb_64` equal the encoder's for its texts with `prompt` before each.
fn assert_embedded_with(uri: &str, model: &Path, prompt: &Prompt) {
    let batch = read_all(uri);
    let enc = Encoder::open(model, &EncoderOptions::default()).unwrap();
    let text = batch.column_by_name("text").unwrap();
    let want = enc.encode_array(text.as_ref(), &[Dim(64)], prompt).unwrap();
    let got = batch.column_by_name("emb_64").unwrap().as_fixed_size_list();
    for i in 0..batch.num_rows() {
        let (g, w) = (got.value(i), want[0].value(i));
        let (g, w) = (
            g.as_primitive::<Float32Type>().values(),
            w.as_primitive::<Float32Type>().values(),
        );
        let diff = g
            .iter()
            .zip(w.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff <= 1e-6,
            "row {i}: {diff} from the vectors with {prompt}"
        );
    }
}

/// Documents take the model's document prompt ("passage: ") unless `encoder.prompt` says otherwise
/// (a literal, none); the prompts are recorded beside the model, an append with another document
/// prompt is refused like another model, and a prompt name the model lacks names the spec field.
#[test]
fn documents_are_embedded_with_the_document_prompt_which_the_dataset_records() {
    let model = prompted_tiny();
    let dir = tempfile::tempdir().unwrap();
    write_jsonl(&dir.path().join("docs.jsonl"), &docs(12, 0));
    let s = run_prompted(dir.path(), model.path(), None, JSONL_SINK).unwrap();
    assert_eq!(s.rows_written, 12);
    let uri = dir.path().join("out.lance").display().to_string();
    assert_embedded_with(&uri, model.path(), &Prompt::literal("passage: "));
    let meta = read_all(&uri).schema().metadata().clone();
    assert_eq!(meta["lexembed.prompt.document"], "passage: ");
    assert_eq!(meta["lexembed.prompt.query"], "query: ");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(DatasetLocation::new(&uri).open()).unwrap();
    let history = rt.block_on(commit_history(&ds)).unwrap();
    let recorded = history[0].1.written_by.as_ref().unwrap();
    assert_eq!(recorded.prompts.document, Prompt::literal("passage: "));

    let append = JSONL_SINK.replace("  uri: out.lance\n", "  uri: out.lance\n  mode: append\n");
    let err = run_prompted(dir.path(), model.path(), Some("none"), &append)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("documents \"passage: \"") && err.contains("documents no prompt"),
        "{err}"
    );
    assert_eq!(
        read_all(&uri).num_rows(),
        12,
        "the refused append wrote nothing"
    );
    let s = run_prompted(dir.path(), model.path(), Some("document"), &append).unwrap();
    assert_eq!(s.rows_in_dataset, 24, "the same prompt by name appends");

    let literal = JSONL_SINK.replace("out.lance", "literal.lance");
    run_prompted(
        dir.path(),
        model.path(),
        Some("{text: \"tema: \"}"),
        &literal,
    )
    .unwrap();
    let uri = dir.path().join("literal.lance").display().to_string();
    assert_embedded_with(&uri, model.path(), &Prompt::literal("tema: "));

    let none = JSONL_SINK.replace("out.lance", "none.lance");
    run_prompted(dir.path(), model.path(), Some("none"), &none).unwrap();
    let uri = dir.path().join("none.lance").display().to_string();
    assert_embedded_with(&uri, model.path(), &Prompt::none());
    assert!(
        !read_all(&uri)
            .schema()
            .metadata()
            .contains_key("lexembed.prompt.document")
    );

    let typo = JSONL_SINK.replace("out.lance", "typo.lance");
    let err = run_prompted(dir.path(), model.path(), Some("documnet"), &typo)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("p.yaml: encoder.prompt: ")
            && err.contains("\"documnet\"")
            && err.contains("\"query\""),
        "{err}"
    );
    assert!(!dir.path().join("typo.lance").exists());
}
