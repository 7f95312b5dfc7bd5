//! One evaluation run end to end, as `lexembed eval` and its schedule run it: load the dataset as a
//! corpus, refuse queries of another model, embed the QA queries with the dataset's model, score every
//! dim (exactly, or through the search path users hit), compare with the previous comparable run, append to the history, write rankings. Printing and
//! scheduling are the caller's.

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use lexembed_encoder::{Encoder, Prompt};
use lexembed_lance::{DatasetLocation, checked_query_prompt};
use tracing::warn;

use crate::alerts::{Alert, AlertRules, Comparable, check, previous_run};
use crate::error::{EvalError, Result};
use crate::evaluate::{EvalResult, evaluate};
use crate::history::{self, RunInfo};
use crate::metrics::MetricConfig;
use crate::served::{ServedInputs, evaluate_served};
use crate::{corpus, qa};
use lexembed_lance::SearchMode;

/// What to evaluate and what to do with the results.
#[derive(Debug, Clone)]
pub struct EvalJob {
    /// The corpus: a dataset a pipeline wrote.
    pub dataset: DatasetLocation,
    /// QA pairs: JSONL, Parquet or a Lance table.
    pub qa: PathBuf,
    /// Dims to evaluate; empty: every dim the dataset stores.
    pub dims: Vec<u32>,
    /// Lance table the results are appended to (and the previous run read from).
    pub history: Option<DatasetLocation>,
    pub rules: AlertRules,
    /// JSONL file for each query's ranking (top 100 corpus ids per dim).
    pub rankings: Option<PathBuf>,
    /// Exact scoring (sentence-transformers' evaluator), or the path users search by (`served`).
    pub search: SearchMode,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct EvalRun {
    pub info: RunInfo,
    pub result: EvalResult,
    /// Floors broken and drops against the previous comparable run: the run failed when not empty.
    pub alerts: Vec<Alert>,
}

impl EvalJob {
    /// Runs the evaluation once with `encoder` (the dataset's model) embedding the queries.
    pub async fn run(&self, encoder: &Encoder) -> Result<EvalRun> {
        let started_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let cfg = MetricConfig::for_path(self.search);
        let rules = self.rules.at_path(self.search);
        rules.check_against(&cfg)?;
        let model_id = encoder.model().model_id.clone();
        // Queries take the model's query prompt, which must be the one the dataset records.
        let ds = self.dataset.open().await?;
        let prompt = checked_query_prompt(&ds, encoder.model())?;
        let loaded = corpus::load(&self.dataset).await?;
        let pairs = qa::load(&self.qa).await?;
        let queries = self.embed_queries(encoder, &prompt, &pairs, loaded.corpus.width)?;
        let dims = match self.dims.is_empty() {
            true => loaded.dims.clone(),
            false => self.dims.clone(),
        };
        let exact = evaluate(
            &loaded.corpus,
            &queries,
            &pairs,
            &dims,
            &MetricConfig::default(),
        )?;
        let result = match self.search {
            SearchMode::Exact => exact,
            _ => {
                let inputs = ServedInputs {
                    ds: &ds,
                    corpus_ids: &loaded.corpus.ids,
                    qa: &pairs,
                    query_vectors: &queries,
                    width: loaded.corpus.width,
                    dims: &dims,
                };
                evaluate_served(&inputs, &cfg, &exact).await?
            }
        };
        if result.unknown_relevant_ids > 0 {
            warn!(
                count = result.unknown_relevant_ids,
                "relevant ids of the QA set are not in the corpus (they count as misses)"
            );
        }
        let info = RunInfo {
            run_time_us: started_us,
            model_id,
            dataset_uri: self.dataset.uri.clone(),
            dataset_version: loaded.version,
            qa_digest: qa::digest(&pairs),
        };
        let alerts = self.record(&info, &result, &rules).await?;
        record_metrics(&info, &result, &alerts);
        if let Some(path) = &self.rankings {
            write_rankings(path, &result, &loaded.corpus.ids)?;
        }
        Ok(EvalRun {
            info,
            result,
            alerts,
        })
    }

    /// The queries' vectors, cut to the corpus's widest stored dim (Matryoshka prefixes).
    fn embed_queries(
        &self,
        encoder: &Encoder,
        prompt: &Prompt,
        pairs: &[qa::QaPair],
        width: usize,
    ) -> Result<Vec<f32>> {
        let texts: Vec<&str> = pairs.iter().map(|p| p.query.as_str()).collect();
        let emb = encoder
            .encode(&texts, prompt)
            .map_err(|e| EvalError::Runtime(format!("embedding the queries: {e}")))?;
        if width > emb.dim {
            return Err(EvalError::Dataset {
                uri: self.dataset.uri.clone(),
                message: format!(
                    "its vectors ({width}) are wider than the model's ({})",
                    emb.dim
                ),
            });
        }
        Ok(emb
            .values
            .chunks_exact(emb.dim)
            .flat_map(|r| r[..width].iter().copied())
            .collect())
    }

    /// Checks the alert rules (drops against the history's previous comparable run) and appends this
    /// run to the history.
    async fn record(
        &self,
        info: &RunInfo,
        result: &EvalResult,
        rules: &AlertRules,
    ) -> Result<Vec<Alert>> {
        let Some(h) = &self.history else {
            let floors_only = AlertRules {
                max_drop: None,
                watched: rules.watched.clone(),
                min: rules.min.clone(),
            };
            return Ok(check(result, None, &floors_only));
        };
        let past = history::read(h).await?;
        let comparable = Comparable {
            dataset_uri: &info.dataset_uri,
            model_id: &info.model_id,
            qa_digest: &info.qa_digest,
            path: self.search,
        };
        let prev = previous_run(&past, &comparable);
        let alerts = check(result, prev.as_ref(), rules);
        history::append(h, &history::rows(info, result)).await?;
        Ok(alerts)
    }
}

fn write_rankings(path: &PathBuf, r: &EvalResult, corpus_ids: &[String]) -> Result<()> {
    let io = |source| EvalError::Io {
        path: path.clone(),
        source,
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for (dim, queries) in &r.rankings {
        for (qid, ranked) in r.query_ids.iter().zip(queries) {
            let ids: Vec<&str> = ranked
                .iter()
                .map(|&c| corpus_ids[c as usize].as_str())
                .collect();
            let line = serde_json::json!({"query_id": qid, "dim": dim, "ids": ids});
            writeln!(f, "{line}").map_err(io)?;
        }
    }
    f.flush().map_err(io)
}

/// The run's metrics through the `metrics` facade: each (dim, metric) value, and the alerts raised,
/// labelled by dataset (the recorder the binary installed writes them out).
fn record_metrics(info: &RunInfo, result: &EvalResult, alerts: &[crate::alerts::Alert]) {
    metrics::describe_gauge!(
        "lexembed_eval_metric",
        "IR metric of the last evaluation (InformationRetrievalEvaluator's), by dim and metric."
    );
    metrics::describe_gauge!(
        "lexembed_eval_alerts",
        "Alerts (drops or floors) the last evaluation raised."
    );
    metrics::describe_gauge!(
        "lexembed_eval_queries",
        "Queries the last evaluation scored."
    );
    let dataset = info.dataset_uri.clone();
    for row in crate::history::rows(info, result) {
        metrics::gauge!(
            "lexembed_eval_metric",
            "dataset" => dataset.clone(),
            "dim" => row.dim.to_string(),
            "metric" => row.metric
        )
        .set(row.value);
    }
    metrics::gauge!("lexembed_eval_alerts", "dataset" => dataset.clone()).set(alerts.len() as f64);
    metrics::gauge!("lexembed_eval_queries", "dataset" => dataset)
        .set(result.queries_evaluated as f64);
}
