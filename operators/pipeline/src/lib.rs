//! lexembed pipelines: a YAML spec (`spec`), sources that turn files into Arrow record batches
//! (`source`), and the run loop that embeds them and commits them to Lance in one transaction (`run`).
//! Data flows one way: source → RecordBatch → encoder → Matryoshka columns → sink.

pub mod error;
pub mod metrics;
pub mod run;
pub mod schedule;
pub mod shard;
pub mod source;
pub mod spec;

pub use error::{PipelineError, Result};
pub use run::{
    ExternalDocs, PipelineModel, RunOptions, RunSummary, open_encoder, output_dims, run_pipeline,
    run_pipeline_from, sink_location, with_vectors,
};
pub use shard::Shard;
pub use spec::{LoadedSpec, PipelineSpec, json_schema};
