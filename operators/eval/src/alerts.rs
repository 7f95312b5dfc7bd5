//! Alerts: a metric under a floor, or a drop against the previous comparable run (same dataset URI,
//! model and QA set), makes a run fail so a CronJob shows it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::evaluate::EvalResult;
use crate::history::HistoryRow;

/// When to alert.
#[derive(Debug, Clone, Default)]
pub struct AlertRules {
    /// Largest allowed fall of a watched metric against the previous run, at any dim.
    pub max_drop: Option<f64>,
    /// Metrics watched for drops (default `cosine_ndcg@10`).
    pub watched: Vec<String>,
    /// Floors: metric → smallest allowed value, at every dim.
    pub min: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub dim: u32,
    pub metric: String,
    pub value: f64,
    /// The previous run's value (drops) or the floor (minimums).
    pub reference: f64,
    pub kind: &'static str,
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            "drop" => write!(
                f,
                "dim {}: {} fell from {:.4} to {:.4} ({:+.4})",
                self.dim,
                self.metric,
                self.reference,
                self.value,
                self.value - self.reference
            ),
            _ => write!(
                f,
                "dim {}: {} is {:.4}, under the floor {:.4}",
                self.dim, self.metric, self.value, self.reference
            ),
        }
    }
}

/// The previous run's values of a comparable run: `(dim, metric) → value`.
pub fn previous_run(
    history: &[HistoryRow],
    dataset_uri: &str,
    model_id: &str,
    qa_digest: &str,
) -> Option<BTreeMap<(u32, String), f64>> {
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
            .map(|r| ((r.dim, r.metric.clone()), r.value))
            .collect(),
    )
}

pub fn check(
    result: &EvalResult,
    previous: Option<&BTreeMap<(u32, String), f64>>,
    rules: &AlertRules,
) -> Vec<Alert> {
    let mut out = Vec::new();
    let watched: Vec<String> = if rules.watched.is_empty() {
        vec!["cosine_ndcg@10".into()]
    } else {
        rules.watched.clone()
    };
    for &dim in &result.dims {
        if let (Some(max_drop), Some(prev)) = (rules.max_drop, previous) {
            for m in &watched {
                if let (Some(now), Some(&before)) =
                    (result.get(dim, m), prev.get(&(dim, m.clone())))
                    && before - now > max_drop
                {
                    out.push(Alert {
                        dim,
                        metric: m.clone(),
                        value: now,
                        reference: before,
                        kind: "drop",
                    });
                }
            }
        }
        for (m, floor) in &rules.min {
            if let Some(now) = result.get(dim, m)
                && now < *floor
            {
                out.push(Alert {
                    dim,
                    metric: m.clone(),
                    value: now,
                    reference: *floor,
                    kind: "min",
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
                ("dim_64_cosine_ndcg@10".to_string(), v),
                ("dim_128_cosine_ndcg@10".to_string(), 0.9),
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
            ((64, "cosine_ndcg@10".to_string()), 0.70),
            ((128, "cosine_ndcg@10".to_string()), 0.9),
        ]);
        let rules = AlertRules {
            max_drop: Some(0.01),
            watched: vec![],
            min: vec![("cosine_ndcg@10".into(), 0.5)],
        };
        let a = check(&result(0.68), Some(&prev), &rules);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].dim, a[0].kind), (64, "drop"));
        assert!(a[0].to_string().contains("dim 64") && a[0].to_string().contains("cosine_ndcg@10"));
        assert!(check(&result(0.695), Some(&prev), &rules).is_empty());
        let a = check(&result(0.4), None, &rules);
        assert_eq!((a.len(), a[0].kind), (1, "min"));
    }
}
