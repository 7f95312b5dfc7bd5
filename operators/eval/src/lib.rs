//! lexembed's evaluation: held-out QA pairs against a pipeline's Lance dataset, with the metrics of
//! sentence-transformers' `InformationRetrievalEvaluator` (`shared/ir-metrics.md`) at every Matryoshka
//! dim; results kept as history in Lance, rendered as reports, checked by alerts.
//!
//! `metrics` (pure, per ranking) and `scoring` (exact ranking, every dim in one pass) are the core;
//! `qa` and `corpus` load inputs; `history`, `report` and `alerts` are what a scheduled job needs.
//! Embedding the queries is the caller's job: this crate takes vectors.

pub mod alerts;
pub mod corpus;
pub mod error;
pub mod evaluate;
pub mod history;
pub mod metrics;
pub mod qa;
pub mod report;
pub mod schedule;
pub mod scoring;

pub use error::{EvalError, Result};
pub use evaluate::{Corpus, EvalResult, evaluate};
pub use metrics::MetricConfig;
pub use qa::QaPair;
