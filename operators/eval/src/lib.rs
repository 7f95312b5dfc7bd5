//! lexembed's evaluation: held-out QA pairs against a pipeline's Lance dataset, with the metrics of
//! sentence-transformers' `InformationRetrievalEvaluator` (`shared/ir-metrics.md`) at every Matryoshka
//! dim; results kept as history in Lance, rendered as reports, checked by alerts.
//!
//! `key` names metrics (typed; sentence-transformers' text only at the edges); `metrics` (pure, per ranking) and `scoring` (exact ranking, every dim in one pass) are the core;
//! `qa` and `corpus` load inputs; `history`, `report` and `alerts` are what a scheduled job needs;
//! `served` ranks through the search path users hit (index, full-text, hybrid) instead of exactly;
//! `job` is one evaluation run end to end (model check, query embedding, metrics, history, alerts).

pub mod alerts;
pub mod corpus;
pub mod error;
pub mod evaluate;
pub mod history;
pub mod job;
pub mod key;
pub mod metrics;
pub mod qa;
pub mod report;
pub mod scoring;
pub mod served;

pub use error::{EvalError, Result};
pub use evaluate::{Corpus, EvalResult, evaluate};
pub use job::{EvalJob, EvalRun};
pub use key::{DimMetric, Measure, Metric, UnknownMetric, metric_prefix};
/// The search mode a run's rankings come from (lexembed's one vocabulary, from the store).
pub use lexembed_lance::SearchMode;
pub use metrics::MetricConfig;
pub use qa::QaPair;
