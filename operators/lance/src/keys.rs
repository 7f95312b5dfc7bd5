//! Every key lexembed writes into a Lance dataset, in one place: transaction properties that say what
//! a commit holds (pipeline, sources, Kafka offsets and checkpoints, model, dims, prompts) and the schema
//! metadata that a later writer checks. Sources and operators name them from here; none defines its own.

/// Schema metadata and transaction property: the model id that produced the vectors.
pub const MODEL_ID_KEY: &str = "lexembed.model_id";
/// Schema metadata and transaction property: the Matryoshka dims written, widest first.
pub const DIMS_KEY: &str = "lexembed.dims";
/// Schema metadata and transaction property: the prompt put before every document (absent: none).
pub const DOCUMENT_PROMPT_KEY: &str = "lexembed.prompt.document";
/// Schema metadata and transaction property: the prompt queries must be embedded with (absent: none).
pub const QUERY_PROMPT_KEY: &str = "lexembed.prompt.query";
/// Schema metadata: the embedded dataset's schema version.
pub const SCHEMA_KEY: &str = "lexembed.schema";

/// Transaction property: the pipeline that made a commit.
pub const PIPELINE_KEY: &str = "lexembed.pipeline";
/// Transaction property: the job that made a commit when it is not a pipeline (`eval`).
pub const JOB_KEY: &str = "lexembed.job";
/// Transaction property: the source keys (files) a file/SQL commit holds, as a JSON list.
pub const SOURCES_KEY: &str = "lexembed.sources";

/// Transaction property: the consumer group whose offsets a commit records.
pub const GROUP_KEY: &str = "lexembed.kafka.group";
/// Transaction property: `{"topic:partition": [start, next], …}`.
pub const OFFSETS_KEY: &str = "lexembed.kafka.offsets";
/// Transaction property: every partition's next offset as the committing replica saw the dataset at
/// `CHECKPOINT_VERSION_KEY`, plus its own batch: a reader starting cold folds the newest checkpoint and
/// the commits after its version instead of the whole history.
pub const CHECKPOINT_KEY: &str = "lexembed.kafka.checkpoint";
/// Transaction property: the dataset version a checkpoint was read at.
pub const CHECKPOINT_VERSION_KEY: &str = "lexembed.kafka.checkpoint_version";

/// Transaction property: what every pipeline and consumer group had committed up to a version (JSON),
/// written by `lexembed cleanup` before it removes the versions below its commit.
pub const RECOVERY_KEY: &str = "lexembed.recovery";
/// Dataset config: the version of the newest recovery commit. Config is carried by every later
/// manifest (compaction and index builds included), so a reader finds it in the latest version.
pub const RECOVERY_VERSION_KEY: &str = "lexembed.recovery_version";
