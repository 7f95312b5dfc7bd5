//! Alerts: a metric under a floor, or a drop against the previous comparable run (same dataset URI,
//! model and QA set), makes a run fail so a CronJob shows it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::evaluate::EvalResult;
use crate::history::HistoryRow;
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

/// The previous run's values of a comparable run: `(dim, metric) → value` (names lexembed no longer
/// computes are left out).
pub fn previous_run(
    history: &[HistoryRow],
    dataset_uri: &str,
    model_id: &str,
    qa_digest: &str,
) -> Option<BTreeMap<(u32, Metric), f64>> {
    let comparable = |r: &&HistoryRow| {
        r.dataset_uri == dataset_uri && r.model_id == model_id && r.qa_digest == qa_digest
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
