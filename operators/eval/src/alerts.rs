//! Alerts: a metric under a floor, or a drop against the previous comparable run (same dataset URI,
//! model, QA set and search path), makes a run fail so a CronJob shows it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::evaluate::EvalResult;
use crate::history::HistoryRow;
use lexembed_lance::SearchMode;

use crate::key::{Metric, UnknownMetric};
use crate::metrics::MetricConfig;

/// When to alert.
#[derive(Debug, Clone, Default)]
pub struct AlertRules {
    /// Largest allowed fall of a watched metric against the previous run, at any dim.
    pub max_drop: Option<f64>,
    /// Metrics watched for drops (default `cosine_ndcg@10`).
    pub watched: Vec<Metric>,
    /// Floors: metric → smallest allowed value, at every dim.
    pub min: Vec<(Metric, f64)>,
}

impl AlertRules {
    /// The rules of a run through `path`: a metric named without a path (`ndcg@10`, read as exact
    /// scoring's `cosine_ndcg@10`) means that metric through the run's path; watched by default:
    /// NDCG@10 through it.
    pub fn at_path(&self, path: SearchMode) -> Self {
        let retarget = |m: Metric| match m.path {
            SearchMode::Exact => m.at(path),
            _ => m,
        };
        let watched = match self.watched.is_empty() {
            true => vec![Metric::NDCG_AT_10.at(path)],
            false => self.watched.iter().copied().map(retarget).collect(),
        };
        Self {
            max_drop: self.max_drop,
            watched,
            min: self.min.iter().map(|&(m, v)| (retarget(m), v)).collect(),
        }
    }

    /// Every metric the rules name is computed: a rule on another would never fire.
    pub fn check_against(&self, cfg: &MetricConfig) -> Result<(), UnknownMetric> {
        let named = self.watched.iter().chain(self.min.iter().map(|(m, _)| m));
        match named.copied().find(|&m| !cfg.computes(m)) {
            Some(m) => Err(UnknownMetric(format!(
                "{m} (not computed by the evaluation)"
            ))),
            None => Ok(()),
        }
    }
}

/// Why a run alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A watched metric fell more than `max_drop` against the previous comparable run.
    Drop,
    /// A metric is under its floor.
    Min,
}

impl AlertKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Min => "min",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub dim: u32,
    pub metric: Metric,
    pub value: f64,
    /// The previous run's value (drops) or the floor (minimums).
    pub reference: f64,
    pub kind: AlertKind,
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            AlertKind::Drop => write!(
                f,
                "dim {}: {} fell from {:.4} to {:.4} ({:+.4})",
                self.dim,
                self.metric,
                self.reference,
                self.value,
                self.value - self.reference
            ),
            AlertKind::Min => write!(
                f,
                "dim {}: {} is {:.4}, under the floor {:.4}",
                self.dim, self.metric, self.value, self.reference
            ),
        }
    }
}

/// What makes an earlier run comparable: the same dataset URI, model and QA set, evaluated through the
/// same search path.
#[derive(Debug, Clone, Copy)]
pub struct Comparable<'a> {
    pub dataset_uri: &'a str,
    pub model_id: &'a str,
    pub qa_digest: &'a str,
    pub path: SearchMode,
}

/// The previous comparable run's values: `(dim, metric) → value` (names lexembed no longer computes
/// are left out).
pub fn previous_run(
    history: &[HistoryRow],
    run: &Comparable<'_>,
) -> Option<BTreeMap<(u32, Metric), f64>> {
    let on_path = |r: &HistoryRow| r.metric.parse::<Metric>().is_ok_and(|m| m.path == run.path);
    let comparable = |r: &&HistoryRow| {
        r.dataset_uri == run.dataset_uri
            && r.model_id == run.model_id
            && r.qa_digest == run.qa_digest
            && on_path(r)
    };
    let last = history
        .iter()
        .filter(comparable)
        .map(|r| r.run_time_us)
        .max()?;
    Some(
        history
            .iter()
            .filter(comparable)
            .filter(|r| r.run_time_us == last)
            .filter_map(|r| Some(((r.dim, r.metric.parse().ok()?), r.value)))
            .collect(),
    )
}

pub fn check(
    result: &EvalResult,
    previous: Option<&BTreeMap<(u32, Metric), f64>>,
    rules: &AlertRules,
) -> Vec<Alert> {
    let mut out = Vec::new();
    let watched: Vec<Metric> = if rules.watched.is_empty() {
        vec![Metric::NDCG_AT_10]
    } else {
        rules.watched.clone()
    };
    for &dim in &result.dims {
        if let (Some(max_drop), Some(prev)) = (rules.max_drop, previous) {
            for &m in &watched {
                if let (Some(now), Some(&before)) = (result.get(dim, m), prev.get(&(dim, m)))
                    && before - now > max_drop
                {
                    out.push(Alert {
                        dim,
                        metric: m,
                        value: now,
                        reference: before,
                        kind: AlertKind::Drop,
                    });
                }
            }
        }
        for &(m, floor) in &rules.min {
            if let Some(now) = result.get(dim, m)
                && now < floor
            {
                out.push(Alert {
                    dim,
                    metric: m,
                    value: now,
                    reference: floor,
                    kind: AlertKind::Min,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(v: f64) -> EvalResult {
        EvalResult {
            metrics: BTreeMap::from([
                ("dim_64_cosine_ndcg@10".parse().unwrap(), v),
                ("dim_128_cosine_ndcg@10".parse().unwrap(), 0.9),
            ]),
            dims: vec![128, 64],
            queries_evaluated: 1,
            queries_without_relevant: 0,
            unknown_relevant_ids: 0,
            corpus_size: 1,
            query_ids: vec![],
            rankings: BTreeMap::new(),
        }
    }

    #[test]
    fn drops_and_floors_name_dim_and_metric() {
        let prev = BTreeMap::from([
            ((64, Metric::NDCG_AT_10), 0.70),
            ((128, Metric::NDCG_AT_10), 0.9),
        ]);
        let rules = AlertRules {
            max_drop: Some(0.01),
            watched: vec![],
            min: vec![(Metric::NDCG_AT_10, 0.5)],
        };
        let a = check(&result(0.68), Some(&prev), &rules);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].dim, a[0].kind), (64, AlertKind::Drop));
        assert!(a[0].to_string().contains("dim 64") && a[0].to_string().contains("cosine_ndcg@10"));
        assert!(check(&result(0.695), Some(&prev), &rules).is_empty());
        let a = check(&result(0.4), None, &rules);
        assert_eq!((a.len(), a[0].kind), (1, AlertKind::Min));
    }

    /// A rule on a metric the evaluation does not compute (`ndcg@5`: the evaluator computes NDCG at
    /// 10) used to be accepted and never fire.
    #[test]
    fn rules_on_metrics_not_computed_are_refused() {
        let cfg = MetricConfig::default();
        let rules = |m: &str| AlertRules {
            max_drop: None,
            watched: vec![],
            min: vec![(m.parse().unwrap(), 0.5)],
        };
        assert!(rules("cosine_ndcg@10").check_against(&cfg).is_ok());
        let e = rules("ndcg@5").check_against(&cfg).unwrap_err();
        assert!(e.to_string().contains("cosine_ndcg@5"), "{e}");
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;
    use crate::key::Measure;

    fn row(t: i64, metric: &str, value: f64) -> HistoryRow {
        HistoryRow {
            run_time_us: t,
            model_id: "m".into(),
            dataset_uri: "d".into(),
            dataset_version: 1,
            qa_digest: "q".into(),
            dim: 64,
            metric: metric.into(),
            value,
        }
    }

    /// Rules name metrics without a path for the run's path; only runs through the same path are
    /// compared (a hybrid run in between does not hide the last index run).
    #[test]
    fn rules_and_comparisons_follow_the_search_path() {
        let rules = AlertRules {
            max_drop: Some(0.01),
            watched: vec![],
            min: vec![
                ("ndcg@10".parse().unwrap(), 0.5),
                ("index_knn_recall@10".parse().unwrap(), 0.95),
            ],
        }
        .at_path(SearchMode::Index);
        let ndcg = Metric::on(SearchMode::Index, Measure::Ndcg, 10);
        assert_eq!(rules.watched, vec![ndcg]);
        assert_eq!(rules.min[0].0, ndcg);
        assert!(
            rules
                .check_against(&MetricConfig::for_path(SearchMode::Index))
                .is_ok()
        );
        assert!(
            rules
                .check_against(&MetricConfig::for_path(SearchMode::Hybrid))
                .is_err()
        );

        let history = vec![
            row(1, "index_ndcg@10", 0.7),
            row(2, "hybrid_ndcg@10", 0.8),
            row(2, "cosine_ndcg@10", 0.75),
        ];
        let run = |path| Comparable {
            dataset_uri: "d",
            model_id: "m",
            qa_digest: "q",
            path,
        };
        let prev = previous_run(&history, &run(SearchMode::Index)).unwrap();
        assert_eq!(prev.get(&(64, ndcg)), Some(&0.7));
        let prev = previous_run(&history, &run(SearchMode::Exact)).unwrap();
        assert_eq!(prev.len(), 1);
        assert!(previous_run(&history, &run(SearchMode::Fts)).is_none());
    }
}
