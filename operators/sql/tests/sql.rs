//! `embed()` and the vector functions in real DataFusion sessions, over the tiny XLM-R fixture and a
//! real Lance table.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{RecordBatch, RecordBatchIterator, StringArray};
use arrow_schema::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use lexembed_encoder::{Dim, Encoder, EncoderOptions, Prompt};
use lexembed_lance::{DatasetLocation, SinkMode};
use lexembed_sql::{BatchPolicy, register_functions, register_lance_table};

fn encoder() -> Arc<Encoder> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../encoder/tests/fixtures/tiny-xlmr");
    Arc::new(Encoder::open(dir, &EncoderOptions::default()).unwrap())
}

/// What a dataset of the tiny model at dim 16, embedded without prompts, records.
fn written(model: &str) -> lexembed_lance::schema::WrittenBy {
    lexembed_lance::schema::WrittenBy::new(model, &[Dim(16)], Default::default())
}

fn sentences() -> Vec<String> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../integration/fixtures/sentences.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `rows` texts split into `partitions` partitions of batches of `batch` rows.
fn table(rows: &[String], partitions: usize, batch: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
    ]));
    let mut parts = vec![Vec::new(); partitions];
    for (n, chunk) in rows.chunks(batch).enumerate() {
        let start = n * batch;
        let ids = arrow_array::Int64Array::from_iter_values(
            (start..start + chunk.len()).map(|i| i as i64),
        );
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(ids),
                Arc::new(StringArray::from_iter_values(chunk)),
            ],
        )
        .unwrap();
        parts[n % partitions].push(b);
    }
    MemTable::try_new(schema, parts).unwrap()
}

async fn collect(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embed_matches_the_encoder_over_many_partitions_and_small_batches() {
    let enc = encoder();
    let rows: Vec<String> = sentences().into_iter().cycle().take(400).collect();
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(8)
            .with_batch_size(4),
    );
    register_functions(&ctx, enc.clone(), BatchPolicy::default()).unwrap();
    ctx.register_table("t", Arc::new(table(&rows, 8, 4)))
        .unwrap();
    let before = enc.stats();
    let batches = collect(
        &ctx,
        "SELECT id, embed(text, 16) AS e, embed(text) AS full FROM t",
    )
    .await
    .unwrap();
    let after = enc.stats();

    let want16 = enc
        .encode_array(
            &StringArray::from_iter_values(&rows),
            &[Dim(16), Dim(64)],
            &Prompt::none(),
        )
        .unwrap();
    let mut seen = 0;
    for b in &batches {
        let ids = b.column(0).as_primitive::<arrow_array::types::Int64Type>();
        for (col, want) in [(1, &want16[0]), (2, &want16[1])] {
            let got = b.column(col).as_fixed_size_list();
            for i in 0..b.num_rows() {
                let id = ids.value(i) as usize;
                let (g, w) = (got.value(i), want.value(id));
                let diff = g
                    .as_primitive::<Float32Type>()
                    .values()
                    .iter()
                    .zip(w.as_primitive::<Float32Type>().values().iter())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(diff <= 1e-6, "row {id} col {col}: {diff}");
            }
        }
        seen += b.num_rows();
    }
    assert_eq!(seen, 400);
    // DataFusion handed embed() batches of 4 rows; the shared batcher fed the model far larger ones.
    let rows_embedded = after.rows - before.rows;
    let calls = after.model_calls - before.model_calls;
    assert_eq!(rows_embedded, 800, "two embed() calls per row");
    assert!(
        after.max_call_rows > 4 * 4,
        "largest model call had {} rows",
        after.max_call_rows
    );
    assert!(
        calls < 800 / 4 / 2,
        "{calls} model calls for 200 DataFusion batches"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_and_the_session_stays_usable() {
    let ctx = SessionContext::new();
    register_functions(&ctx, encoder(), BatchPolicy::default()).unwrap();
    ctx.register_table("t", Arc::new(table(&sentences()[..5], 1, 5)))
        .unwrap();
    let err = |sql: &'static str| {
        let ctx = ctx.clone();
        async move { collect(&ctx, sql).await.unwrap_err().to_string() }
    };
    let e = err("SELECT embed(text, 100) FROM t").await;
    assert!(e.contains("100") && e.contains("[64, 32, 16, 8]"), "{e}");
    let e = err("SELECT embed(id) FROM t").await;
    assert!(e.contains("must be a string"), "{e}");
    let e = err("SELECT embed(text, id) FROM t").await;
    assert!(e.contains("integer literal"), "{e}");
    let e = err("SELECT * FROM missing_table").await;
    assert!(e.contains("missing_table"), "{e}");
    let e = err("SELECT cosine_similarity([1.0, 2.0], [1.0]) FROM t").await;
    assert!(e.contains("different lengths (2 and 1)"), "{e}");
    let e = err("SELECT cosine_similarity('abc', [1.0]) FROM t").await;
    assert!(e.contains("must be vectors"), "{e}");
    // Still usable.
    let ok = collect(&ctx, "SELECT cosine_similarity(embed(text, 8), embed(text, 8)) AS s, l2_distance([0.0, 3.0], [4.0, 0.0]) AS d FROM t").await.unwrap();
    let s = ok[0].column(0).as_primitive::<Float32Type>();
    assert!((s.value(0) - 1.0).abs() < 1e-6);
    assert_eq!(ok[0].column(1).as_primitive::<Float32Type>().value(0), 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lance_datasets_are_tables_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("docs.lance").display().to_string();
    let enc = encoder();
    let texts: Vec<String> = sentences()[1..21].to_vec();
    let ids = StringArray::from_iter_values((0..texts.len()).map(|i| format!("d{i}")));
    let emb = enc
        .encode_array(
            &StringArray::from_iter_values(&texts),
            &[Dim(16)],
            &Prompt::none(),
        )
        .unwrap();
    let schema =
        lexembed_lance::schema::embedded_dataset(&written("lexembed/tiny-xlmr"), &[]).unwrap();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(ids),
            Arc::new(StringArray::from_iter_values(&texts)),
            Arc::new(emb[0].clone()),
        ],
    )
    .unwrap();
    let loc = DatasetLocation::new(&uri);
    loc.commit(
        SinkMode::Create,
        Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema)),
        &lexembed_lance::CommitRecord::default(),
    )
    .await
    .unwrap();

    let ctx = SessionContext::new();
    let funcs = register_functions(&ctx, enc.clone(), BatchPolicy::default()).unwrap();
    register_lance_table(&ctx, &funcs, "docs", &loc)
        .await
        .unwrap();
    let q = "SELECT id, cosine_distance(emb_16, embed('¿Cuál es el plazo para resolver?', 16)) AS d FROM docs WHERE id <> 'd0' ORDER BY d, id LIMIT 3";
    let before = enc.stats();
    let out = collect(&ctx, q).await.unwrap();
    // The literal is embedded once per batch DataFusion hands over (one here), not once per row (19).
    let embedded = enc.stats().rows - before.rows;
    assert_eq!(embedded, 1, "the query text was embedded {embedded} times");
    let rows: usize = out.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 3);
    let first = out[0].column(0).as_string::<i32>().value(0).to_string();
    assert_ne!(first, "d0");
    let d = out[0].column(1).as_primitive::<Float32Type>();
    assert!(d.value(0) <= d.value(1) && d.value(1) <= d.value(2));

    // vector_search returns the same top-k as lexembed search (the store's `hits`), composes with WHERE.
    let question = "¿Cuál es el plazo para resolver?";
    let q = "SELECT id, _distance FROM vector_search('docs', 'emb_16', embed('¿Cuál es el plazo para resolver?', 16), 10) ORDER BY _distance, id";
    let out = collect(&ctx, q).await.unwrap();
    let got = first_column_strings(&out);
    let e = enc.encode(&[question], &Prompt::none()).unwrap();
    let mut v = e.row(0)[..16].to_vec();
    lexembed_encoder::pooling::l2_normalize(&mut v);
    let ds = loc.open().await.unwrap();
    let want: Vec<String> = lexembed_lance::hits(
        &ds,
        "emb_16",
        &v,
        lexembed_lance::SearchMode::Index,
        &lexembed_lance::SearchOptions::default(),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|h| h.id)
    .collect();
    assert_eq!(got, want);
    let filtered = collect(&ctx, "SELECT count(*) AS n FROM vector_search('docs', 'emb_16', embed('plazo', 16), 10) WHERE id <> 'd1'").await.unwrap();
    assert!(
        filtered[0]
            .column(0)
            .as_primitive::<arrow_array::types::Int64Type>()
            .value(0)
            <= 10
    );
    for (sql, expect) in [
        (
            "SELECT * FROM vector_search('nope', 'emb_16', embed('x', 16), 3)",
            "no Lance table named nope",
        ),
        (
            "SELECT * FROM vector_search('docs', 'emb_16', embed('x', 8), 3)",
            "does not match",
        ),
        (
            "SELECT * FROM vector_search('docs', 'emb_16', [1.0, 2.0], 3)",
            "2 values",
        ),
    ] {
        let e = collect(&ctx, sql).await.unwrap_err().to_string();
        assert!(e.contains(expect), "{sql}: {e}");
    }
}

/// `COPY … TO 'x.lance'` goes through the one Lance writer: it creates strictly, so racing another
/// writer (an appender, as the Kafka operator is) to create the same new dataset never overwrites the
/// other's rows. Each round starts the appender a little later into the COPY's write; whoever creates
/// first, every row of every writer that reported success is in the dataset once, and the COPY's
/// output carries the model and dims like a pipeline's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_racing_another_writer_to_create_a_dataset_lands_every_row_once() {
    use lexembed_lance::schema::{WrittenBy, stamp_written_by, written_by};
    let written_by_copy = |m: &str| {
        Some(WrittenBy {
            model_id: m.to_string(),
            dims: vec![16],
            prompts: Default::default(),
        })
    };
    use lexembed_lance::{CommitRecord, StoreError, commit_history};
    use lexembed_sql::copy_to_lance;

    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let funcs = register_functions(&ctx, encoder(), BatchPolicy::default()).unwrap();
    ctx.register_table("d", Arc::new(table(&sentences(), 2, 16)))
        .unwrap();
    let model = funcs.batcher.encoder().model().clone();
    // The appender's rows: the same columns, ids the COPY does not write.
    let theirs = collect(
        &ctx,
        "SELECT id, text, embed(text, 16) AS emb_16 FROM d WHERE id < 8",
    )
    .await
    .unwrap();
    let (schema, _) = stamp_written_by(
        theirs[0].schema().as_ref(),
        &model.model_id,
        &Default::default(),
    );
    let theirs = arrow_select_concat(&theirs, Arc::new(schema));
    // The COPY's rows: the other 42 texts, 40 times each, so its write lasts while the appender starts.
    let copied_query = "SELECT d.id * 100 + r.value AS id, text, embed(text, 16) AS emb_16 FROM d CROSS JOIN range(0, 40) AS r WHERE d.id >= 8";
    let n_copy = (sentences().len() - 8) * 40;
    let (mut copy_won, mut copy_lost) = (0, 0);
    for round in 0..10u64 {
        let loc = DatasetLocation::new(
            dir.path()
                .join(format!("r{round}.lance"))
                .display()
                .to_string(),
        );
        let copy = async {
            let started = std::time::Instant::now();
            let copied = copy_to_lance(&ctx, copied_query, &loc, &model).await;
            eprintln!("round {round}: COPY took {:?}", started.elapsed());
            copied
        };
        let append = async {
            tokio::time::sleep(std::time::Duration::from_millis(round * 35)).await;
            loc.append(None, theirs.clone(), &CommitRecord::default())
                .await
        };
        let (copied, appended) = tokio::join!(copy, append);
        appended.unwrap();
        let ds = loc.open().await.unwrap();
        let rows = ds.count_rows(None).await.unwrap();
        match copied {
            Ok(n) => {
                assert_eq!(n, n_copy, "round {round}: rows the COPY reports");
                assert_eq!(rows, n_copy + 8, "round {round}: both writers' rows, once");
                let history = commit_history(&ds).await.unwrap();
                let copy_commit = history.iter().find(|(_, r)| r.written_by.is_some());
                let recorded = copy_commit.and_then(|(_, r)| r.written_by.clone());
                assert_eq!(recorded, written_by_copy(&model.model_id), "round {round}");
                let schema = Schema::from(ds.schema());
                assert_eq!(
                    written_by(schema.metadata()),
                    written_by_copy(&model.model_id),
                    "round {round}"
                );
                copy_won += 1;
            }
            Err(lexembed_sql::SqlError::Store(StoreError::AlreadyExists(_))) => {
                assert_eq!(rows, 8, "round {round}: the losing COPY wrote nothing");
                copy_lost += 1;
            }
            Err(e) => panic!("round {round}: {e}"),
        }
        let ids = collect_ids(&loc).await;
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "round {round}: an id landed twice");
    }
    eprintln!("COPY created the dataset in {copy_won} rounds, lost the race in {copy_lost}");
}

fn arrow_select_concat(batches: &[RecordBatch], schema: arrow_schema::SchemaRef) -> RecordBatch {
    let batches: Vec<RecordBatch> = batches
        .iter()
        .map(|b| b.clone().with_schema(schema.clone()).unwrap())
        .collect();
    arrow_select::concat::concat_batches(&schema, &batches).unwrap()
}

async fn collect_ids(loc: &DatasetLocation) -> Vec<i64> {
    use futures::TryStreamExt;
    let ds = loc.open().await.unwrap();
    let mut scan = ds.scan();
    scan.project(&["id"]).unwrap();
    let batches: Vec<RecordBatch> = scan
        .try_into_stream()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<arrow_array::types::Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

/// `vector_search` with `embed()` refuses a dataset another model wrote (the same check `lexembed
/// search` and `eval` make): its vectors live in another space, so a ranking would be noise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_search_refuses_a_dataset_of_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let loc = DatasetLocation::new(dir.path().join("other.lance").display().to_string());
    let schema = lexembed_lance::schema::embedded_dataset(&written("another/model"), &[]).unwrap();
    let enc = encoder();
    let texts: Vec<String> = sentences()[..4].to_vec();
    let emb = enc
        .encode_array(
            &StringArray::from_iter_values(&texts),
            &[Dim(16)],
            &Prompt::none(),
        )
        .unwrap();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(["a", "b", "c", "d"])),
            Arc::new(StringArray::from_iter_values(&texts)),
            Arc::new(emb[0].clone()),
        ],
    )
    .unwrap();
    loc.commit(
        SinkMode::Create,
        RecordBatchIterator::new(vec![Ok(batch)], schema),
        &lexembed_lance::CommitRecord::default(),
    )
    .await
    .unwrap();
    let ctx = SessionContext::new();
    let funcs = register_functions(&ctx, enc, BatchPolicy::default()).unwrap();
    register_lance_table(&ctx, &funcs, "docs", &loc)
        .await
        .unwrap();
    let e = collect(
        &ctx,
        "SELECT id FROM vector_search('docs', 'emb_16', embed('plazo', 16), 3)",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("another/model") && e.contains("queries must use the dataset's model"),
        "{e}"
    );
    // A vector literal is the caller's own: searched as given.
    let literal = format!("[{}]", vec!["0.25"; 16].join(", "));
    let q = format!("SELECT id FROM vector_search('docs', 'emb_16', {literal}, 3)");
    assert_eq!(collect(&ctx, &q).await.unwrap()[0].num_rows(), 3);
}

/// The tiny model with E5's prompts (same model id as `encoder()`), opened.
fn prompted_encoder() -> (tempfile::TempDir, Arc<Encoder>) {
    let dir = lexembed_testkit::prompted_tiny();
    let enc = Arc::new(Encoder::open(dir.path(), &EncoderOptions::default()).unwrap());
    (dir, enc)
}

/// The first column of a result, as strings, in order.
fn first_column_strings(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn first_vector(batches: &[RecordBatch]) -> Vec<f32> {
    let list = batches[0].column(0).as_fixed_size_list();
    list.value(0)
        .as_primitive::<Float32Type>()
        .values()
        .to_vec()
}

/// With a model that has prompts: `embed` puts the document prompt, `embed_query` the query prompt;
/// `COPY … TO` records both; `vector_search` takes an `embed_query` and refuses an `embed` (with a hint)
/// and a session whose model has other prompts, as it refuses another model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_puts_the_document_prompt_and_embed_query_the_query_prompt() {
    use lexembed_sql::copy_to_lance;
    let (_model_dir, enc) = prompted_encoder();
    let ctx = SessionContext::new();
    let funcs = register_functions(&ctx, enc.clone(), BatchPolicy::default()).unwrap();
    let question = "¿Cuál es el plazo para resolver?";
    for (function, prompt) in [("embed", "passage: "), ("embed_query", "query: ")] {
        let sql = format!("SELECT {function}('{question}', 16)");
        let got = first_vector(&collect(&ctx, &sql).await.unwrap());
        let want = enc.encode(&[question], &Prompt::literal(prompt)).unwrap();
        let diff = common_max_abs(&got, &want.prefix(0, Dim(16)));
        assert!(diff <= 1e-6, "{function}: {diff}");
    }

    let dir = tempfile::tempdir().unwrap();
    ctx.register_table("d", Arc::new(table(&sentences()[..20], 1, 20)))
        .unwrap();
    let loc = DatasetLocation::new(dir.path().join("docs.lance").display().to_string());
    let copy = "SELECT CAST(id AS VARCHAR) AS id, text, embed(text, 16) AS emb_16 FROM d";
    copy_to_lance(&ctx, copy, &loc, enc.model()).await.unwrap();
    let ds = loc.open().await.unwrap();
    let meta = arrow_schema::Schema::from(ds.schema()).metadata().clone();
    assert_eq!(meta["lexembed.prompt.document"], "passage: ");
    assert_eq!(meta["lexembed.prompt.query"], "query: ");

    register_lance_table(&ctx, &funcs, "docs", &loc)
        .await
        .unwrap();
    let search = |f: &str| {
        format!(
            "SELECT id FROM vector_search('docs', 'emb_16', {f}('{question}', 16), 5) ORDER BY _distance, id"
        )
    };
    let got = collect(&ctx, &search("embed_query")).await.unwrap();
    let q = enc
        .encode(&[question], &Prompt::literal("query: "))
        .unwrap();
    let want = lexembed_lance::hits(
        &ds,
        "emb_16",
        &q.prefix(0, Dim(16)),
        lexembed_lance::SearchMode::Index,
        &lexembed_lance::SearchOptions {
            k: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let got_ids = first_column_strings(&got);
    let want_ids: Vec<String> = want.iter().map(|h| h.id.clone()).collect();
    assert_eq!(got_ids, want_ids);
    let e = collect(&ctx, &search("embed"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("its queries take \"query: \"") && e.contains("embed_query()"),
        "{e}"
    );

    // The same model id without prompts: its queries carry no prompt, which the dataset refuses.
    let plain = SessionContext::new();
    let plain_funcs = register_functions(&plain, encoder(), BatchPolicy::default()).unwrap();
    register_lance_table(&plain, &plain_funcs, "docs", &loc)
        .await
        .unwrap();
    let e = collect(&plain, &search("embed_query"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("this query was embedded with no prompt"), "{e}");
}

fn common_max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}
