//! SQL as a pipeline source (`source: {kind: sql}`): the rows of a query over file and Lance tables
//! become document batches for the pipeline's encoder and sink, with the same checks as every other
//! source (bad rows are skipped or fail the run, named by row number). The query runs on its own
//! thread, on the caller's runtime; batches cross a bounded channel, so memory holds a few batches at
//! most.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use futures::StreamExt;
use lance::datafusion::LanceTableProvider;
use lexembed_lance::DatasetLocation;
use lexembed_pipeline::source::DocBatch;
use lexembed_pipeline::source::rows::{RowBuilder, Value};
use lexembed_pipeline::spec::{LoadedSpec, SourceSpec, SqlSourceSpec};
use lexembed_pipeline::{ExternalDocs, PipelineError, Shard};

use crate::error::{Result, SqlError};

/// Extensions of the plain files SQL reads as tables; anything else must be a Lance dataset.
const FILE_TABLE_EXTENSIONS: [&str; 5] = [".parquet", ".csv", ".jsonl", ".json", ".ndjson"];

/// Whether `path` names a plain file table (Parquet, CSV, JSON lines) rather than a Lance dataset.
pub fn is_file_table(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    FILE_TABLE_EXTENSIONS.iter().any(|ext| lower.ends_with(ext))
}

/// Registers `path` as table `name`, by its extension: `.lance`, `.parquet`, `.csv`, `.jsonl`/`.json`.
pub async fn register_file_table(ctx: &SessionContext, name: &str, path: &str) -> Result<()> {
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".lance") || lower.ends_with(".lance/") {
        let ds = DatasetLocation::new(path).open().await?;
        ctx.register_table(
            name,
            Arc::new(LanceTableProvider::new(Arc::new(ds), false, false)),
        )?;
        return Ok(());
    }
    if !is_file_table(path) {
        return Err(SqlError::Source(format!(
            "table {name}: {path} is not .lance, .parquet, .csv or .jsonl"
        )));
    }
    let ext = &lower[lower.rfind('.').unwrap_or(0)..];
    match ext {
        ".parquet" => {
            ctx.register_parquet(name, path, ParquetReadOptions::default())
                .await?
        }
        ".csv" => {
            ctx.register_csv(name, path, CsvReadOptions::new().has_header(true))
                .await?
        }
        _ => {
            let opts = JsonReadOptions::default().file_extension(ext);
            ctx.register_json(name, path, opts).await?
        }
    }
    Ok(())
}

/// The documents of the spec's `source.sql` query, for `run_pipeline_from`; with a shard, only the rows
/// whose id it owns (a row without an id goes to shard 0, which reports it).
pub fn query_documents(
    loaded: &LoadedSpec,
    sql: &SqlSourceSpec,
    shard: Option<Shard>,
    io: &tokio::runtime::Handle,
) -> Result<ExternalDocs> {
    let spec = loaded.spec.source.clone();
    let sql = sql.clone();
    let tables: Vec<(String, String)> = sql
        .tables
        .iter()
        .map(|(n, p)| (n.clone(), loaded.resolve(p)))
        .collect();
    let mut keys = vec![format!("sql:{}", sql.query)];
    keys.extend(tables.iter().map(|(n, p)| format!("table:{n}={p}")));
    keys.extend(shard.map(|s| format!("shard:{s}")));
    let (tx, rx) = sync_channel::<lexembed_pipeline::Result<DocBatch>>(2);
    std::thread::Builder::new()
        .name("lexembed-sql-source".into())
        .spawn({
            let io = io.clone();
            move || produce(&io, tables, sql.query, spec, shard, tx)
        })
        .map_err(|e| SqlError::Source(format!("starting the SQL source thread: {e}")))?;
    Ok(ExternalDocs {
        docs: Box::new(Received(rx)),
        keys,
        rows_hint: 0,
    })
}

struct Received(Receiver<lexembed_pipeline::Result<DocBatch>>);

impl Iterator for Received {
    type Item = lexembed_pipeline::Result<DocBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.recv().ok()
    }
}

fn source_err(message: String) -> PipelineError {
    PipelineError::Source {
        path: PathBuf::from("source.sql"),
        message,
    }
}

/// Runs the query and sends document batches until done, the receiver hangs up, or an error.
fn produce(
    rt: &tokio::runtime::Handle,
    tables: Vec<(String, String)>,
    query: String,
    spec: SourceSpec,
    shard: Option<Shard>,
    tx: SyncSender<lexembed_pipeline::Result<DocBatch>>,
) {
    let result = rt.block_on(async {
        let ctx = SessionContext::new();
        for (name, path) in &tables {
            register_file_table(&ctx, name, path)
                .await
                .map_err(|e| source_err(e.to_string()))?;
        }
        let mut stream = ctx
            .sql(&query)
            .await
            .map_err(|e| source_err(e.to_string()))?
            .execute_stream()
            .await
            .map_err(|e| source_err(e.to_string()))?;
        let schema = lexembed_lance::schema::documents(&spec.metadata_fields)?;
        let mut rows = RowBuilder::new(schema, &spec);
        let mut row_number = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| source_err(e.to_string()))?;
            let cols = Columns::of(&batch, &spec)?;
            for r in 0..batch.num_rows() {
                row_number += 1;
                if let Some(shard) = shard
                    && !cols.id.owned_by(shard, r)
                {
                    continue;
                }
                rows.push(
                    Path::new("source.sql row"),
                    row_number,
                    &spec,
                    cols.id.get(r),
                    cols.text.get(r),
                    cols.metadata.iter().map(|c| c.get(r)).collect(),
                )?;
                if rows.rows >= spec.batch_rows && tx.send(Ok(rows.finish()?)).is_err() {
                    return Ok(());
                }
            }
        }
        let docs = rows.finish()?;
        if !docs.is_empty() {
            let _ = tx.send(Ok(docs));
        }
        Ok::<(), PipelineError>(())
    });
    if let Err(e) = result {
        let _ = tx.send(Err(e));
    }
}

/// One result column read as text (`Other` for a non-string column where a string is required).
struct TextColumn {
    values: Option<ArrayRef>,
    is_string: bool,
}

impl TextColumn {
    /// Whether `shard` owns the row with this column as its id (rows without one: shard 0).
    fn owned_by(&self, shard: Shard, row: usize) -> bool {
        match self.get(row) {
            Value::Str(id) => shard.owns(&id),
            Value::Other(id) => shard.owns(&id),
            _ => shard.index == 0,
        }
    }

    fn get(&self, row: usize) -> Value<'_> {
        let Some(a) = &self.values else {
            return Value::Missing;
        };
        if a.is_null(row) {
            return Value::Null;
        }
        let s = a.as_string::<i32>().value(row);
        if self.is_string {
            Value::Str(std::borrow::Cow::Borrowed(s))
        } else {
            Value::Other(s.to_string())
        }
    }
}

struct Columns {
    id: TextColumn,
    text: TextColumn,
    metadata: Vec<TextColumn>,
}

impl Columns {
    fn of(batch: &RecordBatch, spec: &SourceSpec) -> lexembed_pipeline::Result<Self> {
        let col = |name: &str, required: bool| -> lexembed_pipeline::Result<TextColumn> {
            let Some(a) = batch.column_by_name(name) else {
                if required {
                    let names: Vec<String> = batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect();
                    return Err(source_err(format!(
                        "the query's result has no column `{name}` (columns: {})",
                        names.join(", ")
                    )));
                }
                return Ok(TextColumn {
                    values: None,
                    is_string: false,
                });
            };
            let is_string = matches!(
                a.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            let values = arrow_cast::cast(a, &DataType::Utf8)?;
            Ok(TextColumn {
                values: Some(values),
                is_string,
            })
        };
        let mut id = col(&spec.id_field, true)?;
        id.is_string = true; // numbers are fine as ids (written as text)
        Ok(Self {
            id,
            text: col(&spec.text_field, true)?,
            metadata: spec
                .metadata_fields
                .iter()
                .map(|m| col(m, false))
                .collect::<lexembed_pipeline::Result<_>>()?,
        })
    }
}
