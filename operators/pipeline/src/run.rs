//! Running a pipeline: source → RecordBatch → encoder → Matryoshka columns → one Lance commit.
//!
//! The encoder runs inside the record-batch reader that Lance drains on its writer thread, so reading
//! and embedding batch n+1 overlaps Lance writing batch n, and memory holds a few batches at most. A
//! failure anywhere aborts the write: nothing of the run is committed. The commit records the
//! pipeline, its source files, model, dims and prompts; `resume` skips files an earlier commit holds.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, FixedSizeListArray, RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use indicatif::{ProgressBar, ProgressStyle};
use lexembed_encoder::model_dir::default_model_dir;
use lexembed_encoder::stage::DEFAULT_AHEAD;
use lexembed_encoder::{Dim, Encoder, EncoderOptions, Provider, TokenBudget};
use lexembed_encoder::{EncodeStage, PromptChoice, StageModel, Staged};
use lexembed_lance::schema::{TEXT_COLUMN, WrittenBy, embedded_dataset};
use lexembed_lance::{
    ChangeLog, CommitRecord, DatasetLocation, IndexParams, SinkMode, build_index, commit_history,
};
use serde::Serialize;
use tokio::runtime::Handle;
use tracing::info;

use crate::error::{PipelineError, Result};
use crate::shard::Shard;
use crate::source::DocBatch;
use crate::source::file::{SourceFile, read_file, resolve_files};
use crate::source::{Deletion, RefusalKind};
use crate::spec::{EncoderSpec, LoadedSpec, SourceInput};

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub pipeline: String,
    pub dataset: String,
    pub files: usize,
    /// Files skipped because an earlier commit of this pipeline holds them (resume).
    pub files_already_committed: usize,
    pub rows_read: usize,
    pub rows_embedded: usize,
    /// Bad records skipped, by kind (`not_json`, `missing_text`, `too_large`, …; each is logged with
    /// its file, line and message).
    pub skipped: BTreeMap<RefusalKind, usize>,
    pub rows_written: usize,
    /// Upserts: rows written that replaced the row of their id.
    pub rows_replaced: usize,
    /// Upserts: rows the run deleted (records with a null text).
    pub rows_deleted: usize,
    /// Upserts: rows a later record of the same id in the run superseded (not written).
    pub rows_superseded: usize,
    /// Lance version of the commit; `None` when there was nothing to write.
    pub version: Option<u64>,
    pub rows_in_dataset: usize,
    pub seconds: f64,
    /// Time the model was busy (summed over its sessions), for overhead accounting; reading and
    /// tokenizing run beside it.
    pub encoder_seconds: f64,
    pub indexes: Vec<String>,
}

/// Options of a run that are not part of the spec.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show a progress bar (a terminal); otherwise log progress every 10 s.
    pub progress: bool,
    /// Override the spec's sink.resume.
    pub resume: Option<bool>,
    /// Run only this shard of the sources (`--shard INDEX/COUNT`).
    pub shard: Option<Shard>,
}

/// What a pipeline embeds with, resolved once from its spec: the encoder, and what the dataset
/// records as having written its vectors (model, dims, prompts). The file runner and the Kafka
/// operator both start here.
pub struct PipelineModel {
    pub encoder: Arc<Encoder>,
    pub written_by: WrittenBy,
}

impl PipelineModel {
    /// Opens the spec's encoder and resolves its dims and prompts: documents take the spec's
    /// `encoder.prompt`, else the model's document prompt; queries the model's query prompt.
    pub fn open(loaded: &LoadedSpec) -> Result<Self> {
        let spec = &loaded.spec.encoder;
        let encoder = Arc::new(open_encoder(spec, |p| loaded.resolve(p))?);
        let dims = output_dims(spec, &encoder);
        let choice = spec
            .prompt
            .clone()
            .map(PromptChoice::from)
            .unwrap_or_default();
        let prompts =
            encoder
                .model()
                .role_prompts(&choice)
                .map_err(|e| PipelineError::Invalid {
                    file: loaded.file.clone(),
                    field: "encoder.prompt".into(),
                    message: e.to_string(),
                })?;
        let written_by = WrittenBy::new(&encoder.model().model_id, &dims, prompts);
        Ok(Self {
            encoder,
            written_by,
        })
    }

    /// The dims written, widest first.
    pub fn dims(&self) -> Vec<Dim> {
        self.written_by.dims.iter().map(|&d| Dim(d)).collect()
    }

    /// The embedded dataset's schema, with these metadata columns.
    pub fn schema(&self, metadata_fields: &[String]) -> Result<SchemaRef> {
        Ok(embedded_dataset(&self.written_by, metadata_fields)?)
    }

    /// What the encoder stage runs: documents, with the document prompt.
    pub fn stage(&self) -> StageModel {
        StageModel {
            encoder: self.encoder.clone(),
            dims: self.dims(),
            prompt: self.written_by.prompts.document.clone(),
        }
    }
}

/// Opens the encoder a spec describes.
pub fn open_encoder(spec: &EncoderSpec, resolve: impl Fn(&str) -> String) -> Result<Encoder> {
    let dir = match &spec.model {
        Some(m) => PathBuf::from(resolve(m)),
        None => default_model_dir(),
    };
    let provider = Provider::from(spec.provider.unwrap_or_default())
        .on_device(spec.device_id.unwrap_or(0))
        .with_engine_cache(spec.trt_cache.as_deref().map(|p| PathBuf::from(resolve(p))));
    let opts = EncoderOptions {
        provider,
        precision: spec.precision.unwrap_or_default().into(),
        intra_threads: spec.threads,
        token_budget: spec.token_budget.map(TokenBudget),
        max_batch_rows: spec.max_batch_rows,
        streams: spec.streams,
        extra_dims: spec.dims.clone(),
        ..EncoderOptions::default()
    };
    Ok(Encoder::open(&dir, &opts)?)
}

/// The Matryoshka dims a pipeline writes, widest first: the spec's, else every dim the model serves.
pub fn output_dims(spec: &EncoderSpec, encoder: &Encoder) -> Vec<Dim> {
    if spec.dims.is_empty() {
        return encoder.dims().as_slice().to_vec();
    }
    lexembed_encoder::widest_first(spec.dims.iter().map(|&d| Dim(d)))
}

/// The sink dataset of a spec, its path resolved against the spec file, with the spec's retry bounds
/// as Lance's store options (where `storage_options` does not set them itself).
pub fn sink_location(loaded: &LoadedSpec) -> DatasetLocation {
    let sink = &loaded.spec.sink;
    let mut storage_options: HashMap<String, String> =
        sink.storage_options.clone().into_iter().collect();
    let retry = [
        ("client_max_retries", sink.retry.max_retries.to_string()),
        ("client_retry_timeout", sink.retry.timeout_s.to_string()),
    ];
    for (key, value) in retry {
        storage_options.entry(key.to_string()).or_insert(value);
    }
    DatasetLocation {
        uri: loaded.resolve(&sink.uri),
        storage_options,
    }
}

/// Documents (`id`, `text`, metadata) and their vectors → the embedded dataset's rows (`schema`): the
/// same columns plus one `emb_<dim>` column per dim.
pub fn with_vectors(
    schema: &SchemaRef,
    docs: &RecordBatch,
    vectors: Vec<FixedSizeListArray>,
) -> std::result::Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> = docs.columns().to_vec();
    columns.extend(vectors.into_iter().map(|a| Arc::new(a) as ArrayRef));
    RecordBatch::try_new(schema.clone(), columns)
}

/// The documents' text column, by name.
fn text_column(docs: &RecordBatch) -> Result<ArrayRef> {
    docs.column_by_name(TEXT_COLUMN).cloned().ok_or_else(|| {
        PipelineError::Runtime(format!("document batch without a {TEXT_COLUMN:?} column"))
    })
}

/// Documents from somewhere other than files (a SQL query), for `run_pipeline_from`.
pub struct ExternalDocs {
    pub docs: Box<dyn Iterator<Item = Result<DocBatch>> + Send>,
    /// What the commit records as its sources.
    pub keys: Vec<String>,
    /// Rows expected, for the progress bar (0: unknown).
    pub rows_hint: u64,
}

/// The spec's files (less those a resumed run already committed) as documents; `None` when there is
/// nothing left to do.
fn file_source(
    loaded: &LoadedSpec,
    opts: &RunOptions,
    rt: &Handle,
    existing: Option<&lance::Dataset>,
    summary: &mut RunSummary,
) -> Result<Option<ExternalDocs>> {
    let spec = &loaded.spec;
    let SourceInput::File { path, format } = &spec.source.input else {
        return Err(PipelineError::Runtime(format!(
            "a {} source is not files: run it with lexembed run",
            spec.source.input.kind().name()
        )));
    };
    let mut files = resolve_files(&loaded.resolve(path), *format)?;
    if let Some(shard) = opts.shard {
        files.retain(|f| shard.owns(&f.path.display().to_string()));
        info!(%shard, files = files.len(), "this shard's files");
    }
    summary.files = files.len();
    if resuming(spec, opts)
        && let Some(ds) = existing
    {
        let done = rt.block_on(committed_sources(ds, &spec.name))?;
        refuse_changed_files(&files, &done)?;
        files.retain(|f| !done.contains_key(&f.key()));
        summary.files_already_committed = summary.files - files.len();
    }
    if files.is_empty() {
        info!("every source file (of this shard) is already committed: nothing to do");
        return Ok(None);
    }
    Ok(Some(ExternalDocs {
        rows_hint: files.iter().map(estimate_rows).sum(),
        keys: files.iter().map(SourceFile::key).collect(),
        docs: doc_batches(
            files,
            spec.source.clone(),
            lexembed_lance::schema::documents(&spec.source.metadata_fields)?,
        ),
    }))
}

/// Runs a pipeline to completion: one commit, then the indexes it asks for. Lance I/O runs on `io`
/// (the caller's runtime); this thread blocks on it, so call it outside async code.
pub fn run_pipeline(loaded: &LoadedSpec, opts: &RunOptions, io: &Handle) -> Result<RunSummary> {
    run_pipeline_from(loaded, opts, None, io)
}

/// `run_pipeline` with documents from `external` instead of the spec's files.
pub fn run_pipeline_from(
    loaded: &LoadedSpec,
    opts: &RunOptions,
    external: Option<ExternalDocs>,
    rt: &Handle,
) -> Result<RunSummary> {
    let summary = run_to_summary(loaded, opts, external, rt)?;
    crate::metrics::record(&summary);
    Ok(summary)
}

fn run_to_summary(
    loaded: &LoadedSpec,
    opts: &RunOptions,
    external: Option<ExternalDocs>,
    rt: &Handle,
) -> Result<RunSummary> {
    let started = Instant::now();
    let spec = &loaded.spec;
    check_resume(loaded, opts)?;
    let model = PipelineModel::open(loaded)?;
    let encoder = model.encoder.clone();
    let schema = model.schema(&spec.source.metadata_fields)?;
    let location = sink_location(loaded);
    let mode = SinkMode::from(spec.sink.mode);
    let existing = rt.block_on(location.check_writable(mode, &schema))?;

    let mut summary = RunSummary {
        pipeline: spec.name.clone(),
        dataset: location.uri.clone(),
        ..RunSummary::default()
    };
    let source = match external {
        Some(docs)
            if resuming(spec, opts) && all_committed(rt, existing.as_ref(), spec, &docs)? =>
        {
            info!("this source is already committed (resume): nothing to do");
            summary.seconds = started.elapsed().as_secs_f64();
            return Ok(summary);
        }
        Some(docs) => docs,
        None => {
            let Some(files) = file_source(loaded, opts, rt, existing.as_ref(), &mut summary)?
            else {
                summary.seconds = started.elapsed().as_secs_f64();
                return Ok(summary);
            };
            files
        }
    };
    let progress = Progress::new(opts.progress, source.rows_hint);
    let model_before = encoder.stats().model_seconds();
    let reader = EmbeddingReader::new(
        model.stage(),
        spec.encoder.ahead.unwrap_or(DEFAULT_AHEAD),
        source.docs,
        schema.clone(),
        progress,
    )?;
    let shared = reader.tally.clone();
    let record = CommitRecord {
        pipeline: Some(spec.name.clone()),
        written_by: Some(model.written_by.clone()),
        sources: source.keys.clone(),
        ..CommitRecord::default()
    };
    if mode == SinkMode::Upsert {
        upsert_all(rt, &location, reader, &record, &mut summary)?;
    } else {
        write_all(rt, &location, mode, reader, &record, &mut summary)?;
    }
    let tally = shared
        .lock()
        .map_err(|_| PipelineError::Runtime("progress lock poisoned".into()))?
        .clone();
    summary.rows_read = tally.rows_read;
    summary.rows_embedded = tally.rows_embedded;
    if summary.version.is_none() {
        summary.rows_written = 0;
    } else if mode != SinkMode::Upsert {
        summary.rows_written = tally.rows_embedded;
    }
    summary.skipped = tally.skipped;
    summary.encoder_seconds = encoder.stats().model_seconds() - model_before;

    // A shard's index would cover only what was committed when it finished.
    let sharded = opts.shard.is_some_and(|s| s.count > 1);
    if sharded && summary.version.is_some() && !spec.sink.indexes.is_empty() {
        info!("a shard builds no index: run `lexembed index` once every shard has finished");
    }
    if summary.version.is_some() && !sharded {
        for ix in &spec.sink.indexes {
            let mut ds = rt.block_on(location.open())?;
            let params = IndexParams {
                kind: ix.kind.into(),
                num_partitions: ix.num_partitions,
                num_sub_vectors: ix.num_sub_vectors,
            };
            rt.block_on(build_index(&mut ds, &ix.column, &params))?;
            summary.indexes.push(ix.column.clone());
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Every embedded row as one plain commit (create, append, overwrite). The first batch is pulled
/// before committing: a run with no good rows writes nothing.
fn write_all(
    rt: &Handle,
    location: &DatasetLocation,
    mode: SinkMode,
    mut reader: EmbeddingReader,
    record: &CommitRecord,
    summary: &mut RunSummary,
) -> Result<()> {
    let first_error = reader.first_error.clone();
    match reader.next() {
        None => Ok(()),
        Some(Err(_)) => Err(take_error(&first_error)),
        Some(Ok(first)) => {
            reader.pending = Some(first);
            let reader: Box<dyn RecordBatchReader + Send> = Box::new(reader);
            let result = rt.block_on(location.commit(mode, reader, record));
            // A source or encoder error reaches Lance as an opaque Arrow error: report the original.
            if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                return Err(take_error(&first_error));
            }
            let commit = result?;
            summary.version = Some(commit.version);
            summary.rows_in_dataset = commit.rows_total;
            Ok(())
        }
    }
}

/// Every embedded row and deletion as one merge-insert commit, the latest change of each id winning.
/// The rows are spilled to a local file first (memory holds their ids), since which row of an id
/// wins is known only at the end of the run.
fn upsert_all(
    rt: &Handle,
    location: &DatasetLocation,
    mut reader: EmbeddingReader,
    record: &CommitRecord,
    summary: &mut RunSummary,
) -> Result<()> {
    let mut log = ChangeLog::spilled(reader.schema.clone())?;
    while let Some(next) = reader.next_embedded() {
        let Ok(Embedded { rows, deleted }) = next else {
            return Err(take_error(&reader.first_error));
        };
        log.push_placed(&rows, deleted.iter().map(|d| (d.before_row, d.id.as_str())))?;
    }
    let changes = log.finish()?;
    if changes.is_empty() {
        return Ok(());
    }
    summary.rows_superseded = (changes.rows_in - changes.rows_kept) as usize;
    let upserted = rt.block_on(location.upsert(changes, record))?;
    summary.version = Some(upserted.version);
    summary.rows_in_dataset = upserted.rows_total;
    summary.rows_written = (upserted.inserted + upserted.replaced) as usize;
    summary.rows_replaced = upserted.replaced as usize;
    summary.rows_deleted = upserted.deleted as usize;
    Ok(())
}

fn resuming(spec: &crate::spec::PipelineSpec, opts: &RunOptions) -> bool {
    opts.resume.unwrap_or(spec.sink.resume)
}

/// Whether a commit of this pipeline holds every key of `docs` (a SQL source: its query, tables and
/// shard), so a resumed run has nothing to do.
fn all_committed(
    rt: &Handle,
    existing: Option<&lance::Dataset>,
    spec: &crate::spec::PipelineSpec,
    docs: &ExternalDocs,
) -> Result<bool> {
    let Some(ds) = existing else {
        return Ok(false);
    };
    let done = rt.block_on(committed_sources(ds, &spec.name))?;
    Ok(!docs.keys.is_empty() && docs.keys.iter().all(|k| done.contains_key(k)))
}

/// Resuming skips committed sources and writes the rest: only an append keeps what was skipped
/// (an overwrite would drop it, a create fails on the existing dataset anyway).
fn check_resume(loaded: &LoadedSpec, opts: &RunOptions) -> Result<()> {
    let mode = loaded.spec.sink.mode;
    if opts.resume == Some(true) && !mode.keeps_rows() {
        return Err(PipelineError::Invalid {
            file: loaded.file.clone(),
            field: "sink.mode".into(),
            message: format!(
                "--resume skips sources already committed and writes the rest; with mode {} the dataset would keep only the rest: set mode: append (or upsert)",
                mode.name()
            ),
        });
    }
    Ok(())
}

fn take_error(slot: &Mutex<Option<PipelineError>>) -> PipelineError {
    slot.lock()
        .ok()
        .and_then(|mut e| e.take())
        .unwrap_or_else(|| PipelineError::Runtime("the pipeline failed".into()))
}

/// Source keys that commits of pipeline `name` hold, with the version of the commit that holds each.
pub async fn committed_sources(ds: &lance::Dataset, name: &str) -> Result<HashMap<String, u64>> {
    let mut done = HashMap::new();
    for (version, record) in commit_history(ds).await? {
        if let Some(mut recovery) = record.recovery {
            let keys = recovery.sources.remove(name).unwrap_or_default();
            done.extend(keys.into_iter().map(|k| (k, version)));
        }
        if record.pipeline.as_deref() == Some(name) {
            done.extend(record.sources.into_iter().map(|k| (k, version)));
        }
    }
    Ok(done)
}

/// A file committed before whose size or modification time changed since: resuming would ingest it
/// again whole, next to its old rows (ids twice). Refused, naming the file and the commit.
fn refuse_changed_files(files: &[SourceFile], done: &HashMap<String, u64>) -> Result<()> {
    let committed: HashMap<&str, u64> = done
        .iter()
        .filter_map(|(k, &v)| Some((SourceFile::path_of_key(k)?, v)))
        .collect();
    for f in files.iter().filter(|f| !done.contains_key(&f.key())) {
        if let Some(&version) = committed.get(f.path.display().to_string().as_str()) {
            return Err(PipelineError::ChangedSource {
                path: f.path.clone(),
                version,
            });
        }
    }
    Ok(())
}

/// Rows a file will yield, roughly (lines for text formats, the footer's count for Parquet): the
/// progress bar's total.
fn estimate_rows(f: &SourceFile) -> u64 {
    use crate::spec::FileFormat;
    match f.format {
        FileFormat::Parquet => std::fs::File::open(&f.path)
            .ok()
            .and_then(|file| parquet::file::reader::SerializedFileReader::new(file).ok())
            .map_or(0, |r| {
                use parquet::file::reader::FileReader;
                r.metadata().file_metadata().num_rows().max(0) as u64
            }),
        _ => count_newlines(&f.path),
    }
}

/// Newlines in a file, read in 1 MiB chunks so memory stays bounded whatever the file size.
fn count_newlines(path: &std::path::Path) -> u64 {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    while let Ok(read) = file.read(&mut buf) {
        if read == 0 {
            break;
        }
        n += buf[..read].iter().filter(|&&c| c == b'\n').count() as u64;
    }
    n
}

fn doc_batches(
    files: Vec<SourceFile>,
    spec: crate::spec::SourceSpec,
    schema: SchemaRef,
) -> Box<dyn Iterator<Item = Result<DocBatch>> + Send> {
    Box::new(
        files
            .into_iter()
            .flat_map(move |f| match read_file(&f, &spec, schema.clone()) {
                Ok(it) => it,
                Err(e) => Box::new(std::iter::once(Err(e))),
            }),
    )
}

#[derive(Debug, Clone, Default)]
struct Tally {
    rows_read: usize,
    rows_embedded: usize,
    skipped: BTreeMap<RefusalKind, usize>,
}

/// Lance pulls batches from this reader on its writer thread. Behind it the encoder stage reads and
/// tokenizes the next document batches on its own thread while the model runs this one, so reading,
/// tokenizing, the model and Lance's write all overlap, with a bounded number of batches in memory.
struct EmbeddingReader {
    schema: SchemaRef,
    staged: EncodeStage<Result<DocBatch>>,
    tally: Arc<Mutex<Tally>>,
    first_error: Arc<Mutex<Option<PipelineError>>>,
    progress: Progress,
    pending: Option<RecordBatch>,
    /// Set by the first error: the stream ends there.
    stopped: bool,
}

impl EmbeddingReader {
    fn new(
        model: StageModel,
        ahead: usize,
        docs: Box<dyn Iterator<Item = Result<DocBatch>> + Send>,
        schema: SchemaRef,
        progress: Progress,
    ) -> Result<Self> {
        // Batches without rows or without a text column pass through; `embed` reports the latter.
        let texts = |d: &Result<DocBatch>| {
            d.as_ref()
                .ok()
                .filter(|d| d.batch.num_rows() > 0)
                .and_then(|d| text_column(&d.batch).ok())
        };
        Ok(Self {
            schema,
            staged: EncodeStage::spawn(model, ahead, docs, texts)?,
            tally: Arc::default(),
            first_error: Arc::default(),
            progress,
            pending: None,
            stopped: false,
        })
    }

    /// Counts a staged document batch and joins its vectors to it.
    fn embed(&mut self, staged: Staged<Result<DocBatch>>) -> Result<Embedded> {
        let doc = staged.item?;
        let deleted = doc.deleted;
        let skipped = doc.skipped.len();
        let n = doc.batch.num_rows();
        if let Ok(mut t) = self.tally.lock() {
            t.rows_read += n + skipped;
            for b in &doc.skipped {
                *t.skipped.entry(b.kind).or_default() += 1;
            }
        }
        self.progress.add((n + skipped) as u64);
        let Some(vectors) = staged.vectors else {
            if n > 0 {
                text_column(&doc.batch)?;
            }
            return Ok(Embedded {
                rows: RecordBatch::new_empty(self.schema.clone()),
                deleted,
            });
        };
        let rows = with_vectors(&self.schema, &doc.batch, vectors?)?;
        if let Ok(mut t) = self.tally.lock() {
            t.rows_embedded += n;
        }
        Ok(Embedded { rows, deleted })
    }

    /// The next staged batch with rows or deletions; an error stops the stream (see `fail`).
    fn next_embedded(&mut self) -> Option<std::result::Result<Embedded, ArrowError>> {
        while !self.stopped {
            let staged = match self.staged.next()? {
                Ok(s) => s,
                Err(e) => return Some(Err(self.fail(e.into()))),
            };
            match self.embed(staged) {
                Ok(e) if e.rows.num_rows() == 0 && e.deleted.is_empty() => continue,
                Ok(e) => return Some(Ok(e)),
                Err(e) => return Some(Err(self.fail(e))),
            }
        }
        None
    }
}

/// A staged batch's changes: its embedded rows (maybe none) and the deletions among them.
struct Embedded {
    rows: RecordBatch,
    deleted: Vec<Deletion>,
}

impl Iterator for EmbeddingReader {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(b) = self.pending.take() {
            return Some(Ok(b));
        }
        // Deletions come only with sink mode upsert, which reads `next_embedded` itself.
        loop {
            match self.next_embedded()? {
                Ok(Embedded { rows, .. }) if rows.num_rows() > 0 => return Some(Ok(rows)),
                Ok(_) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl EmbeddingReader {
    /// Keeps the first error (Lance only sees an opaque Arrow error) and stops the stream.
    fn fail(&mut self, e: PipelineError) -> ArrowError {
        let msg = e.to_string();
        if let Ok(mut slot) = self.first_error.lock() {
            slot.get_or_insert(e);
        }
        self.stopped = true;
        ArrowError::ExternalError(msg.into())
    }
}

impl RecordBatchReader for EmbeddingReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// A progress bar on terminals; periodic log lines elsewhere.
struct Progress {
    bar: Option<ProgressBar>,
    done: u64,
    total: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    fn new(terminal: bool, total: u64) -> Self {
        let bar = terminal.then(|| {
            let b = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}")
            {
                b.set_style(style);
            }
            b
        });
        Self {
            bar,
            done: 0,
            total,
            started: Instant::now(),
            last_log: Instant::now(),
        }
    }

    fn add(&mut self, rows: u64) {
        self.done += rows;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        } else if self.last_log.elapsed() >= Duration::from_secs(10) {
            self.last_log = Instant::now();
            let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            info!(
                rows = self.done,
                total = self.total,
                rows_per_s = rate as u64,
                "progress"
            );
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;
    use std::path::Path;

    fn location(sink: &str) -> DatasetLocation {
        let y = format!("name: p\nsource: {{kind: file, path: a.jsonl}}\nsink:\n{sink}");
        let file = Path::new("/specs/p.yaml");
        sink_location(&LoadedSpec {
            file: file.to_path_buf(),
            spec: parse(&y, file).unwrap(),
        })
    }

    /// Lance's own retry default (3, within about a second) stops a pipeline at a store restart: the
    /// spec's bounds reach the object store, and options set by hand win over them.
    #[test]
    fn the_sinks_retry_bounds_reach_the_store_unless_its_options_set_them() {
        let l = location("  uri: s3://b/d.lance\n");
        assert_eq!(l.uri, "s3://b/d.lance");
        assert_eq!(l.storage_options["client_max_retries"], "30");
        assert_eq!(l.storage_options["client_retry_timeout"], "60");
        let l = location("  uri: d.lance\n  retry: {max_retries: 25, timeout_s: 300}\n");
        assert_eq!(l.uri, "/specs/d.lance");
        assert_eq!(l.storage_options["client_max_retries"], "25");
        assert_eq!(l.storage_options["client_retry_timeout"], "300");
        let l = location(
            "  uri: s3://b/d.lance\n  storage_options: {client_max_retries: \"2\", aws_region: r}\n",
        );
        assert_eq!(l.storage_options["client_max_retries"], "2");
        assert_eq!(l.storage_options["client_retry_timeout"], "60");
        assert_eq!(l.storage_options["aws_region"], "r");
        let e = parse(
            "name: p\nsource: {kind: file, path: a.jsonl}\nsink: {uri: d, retry: {tries: 3}}\n",
            Path::new("p.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tries"), "{e}");
    }
}
