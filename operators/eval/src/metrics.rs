//! The metrics of sentence-transformers' `InformationRetrievalEvaluator`, exactly as
//! `shared/ir-metrics.md` defines them, computed from ranked corpus positions per query.
//!
//! Pure functions over ranks; no scoring, no I/O.

use std::collections::{BTreeMap, HashSet};

use lexembed_lance::SearchMode;

use crate::key::{Measure, Metric};

/// Which cut-offs to compute: the evaluator's defaults are accuracy/precision/recall at 1, 3, 5, 10,
/// MRR@10, NDCG@10 and MAP@100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricConfig {
    /// The search path the rankings come from (it names the metrics).
    pub path: SearchMode,
    /// k-NN recall of the index path against exact search at these cut-offs (index path only).
    pub knn_recall_at_k: Vec<usize>,
    pub accuracy_at_k: Vec<usize>,
    pub precision_recall_at_k: Vec<usize>,
    pub mrr_at_k: Vec<usize>,
    pub ndcg_at_k: Vec<usize>,
    pub map_at_k: Vec<usize>,
}

impl Default for MetricConfig {
    fn default() -> Self {
        Self {
            path: SearchMode::Exact,
            knn_recall_at_k: Vec::new(),
            accuracy_at_k: vec![1, 3, 5, 10],
            precision_recall_at_k: vec![1, 3, 5, 10],
            mrr_at_k: vec![10],
            ndcg_at_k: vec![10],
            map_at_k: vec![100],
        }
    }
}

impl MetricConfig {
    /// The deepest cut any metric looks at: how many ranked documents each query needs.
    pub fn max_k(&self) -> usize {
        [
            &self.accuracy_at_k,
            &self.precision_recall_at_k,
            &self.mrr_at_k,
            &self.ndcg_at_k,
            &self.map_at_k,
        ]
        .iter()
        .flat_map(|v| v.iter().copied())
        .max()
        .unwrap_or(10)
    }

    /// The evaluator's metrics through `path`; through the index, also k-NN recall@10 against exact.
    pub fn for_path(path: SearchMode) -> Self {
        let knn_recall_at_k = match path {
            SearchMode::Index => vec![10],
            _ => Vec::new(),
        };
        Self {
            path,
            knn_recall_at_k,
            ..Self::default()
        }
    }

    /// Whether `metric` is among those computed (an alert rule on another would never fire).
    pub fn computes(&self, metric: Metric) -> bool {
        if metric.path != self.path {
            return false;
        }
        let cuts = match metric.measure {
            Measure::KnnRecall => &self.knn_recall_at_k,
            Measure::Accuracy => &self.accuracy_at_k,
            Measure::Precision | Measure::Recall => &self.precision_recall_at_k,
            Measure::Mrr => &self.mrr_at_k,
            Measure::Ndcg => &self.ndcg_at_k,
            Measure::Map => &self.map_at_k,
        };
        cuts.contains(&metric.k)
    }
}

/// Per-metric sums over queries (named through the path); divide by the query count for means.
#[derive(Debug, Clone)]
struct Sums(BTreeMap<Metric, f64>, SearchMode);

impl Sums {
    fn add(&mut self, measure: Measure, k: usize, v: f64) {
        *self.0.entry(Metric::on(self.1, measure, k)).or_default() += v;
    }
}

/// Mean k-NN recall of `searched` against `exact` rankings (corpus positions, best first) at each of
/// `cfg.knn_recall_at_k`: the share of exact search's top k found in the searched top k.
pub fn knn_recall(
    searched: &[Vec<u32>],
    exact: &[Vec<u32>],
    cfg: &MetricConfig,
) -> BTreeMap<Metric, f64> {
    let n = searched.len().max(1) as f64;
    cfg.knn_recall_at_k
        .iter()
        .map(|&k| {
            let sum: f64 = searched
                .iter()
                .zip(exact)
                .map(|(s, e)| {
                    let want: HashSet<u32> = e.iter().take(k).copied().collect();
                    let found = s.iter().take(k).filter(|c| want.contains(c)).count();
                    found as f64 / want.len().max(1) as f64
                })
                .sum();
            (Metric::on(cfg.path, Measure::KnnRecall, k), sum / n)
        })
        .collect()
}

/// Mean metrics over queries, keyed like sentence-transformers (`cosine_ndcg@10`, …, without the
/// `{name}_` prefix). `ranked[q]` is query q's ranking (corpus positions, best first, at least
/// `max_k` long or the whole corpus); `relevant[q]` its relevant corpus ids as positions, with
/// `relevant_total[q]` counting also relevant ids that are not in the corpus. Queries with no
/// relevant ids must already be dropped by the caller.
pub fn compute(
    ranked: &[Vec<u32>],
    relevant: &[HashSet<u32>],
    relevant_total: &[usize],
    cfg: &MetricConfig,
) -> BTreeMap<Metric, f64> {
    let mut sums = Sums(BTreeMap::new(), cfg.path);
    for ((ranking, rel), &n_rel) in ranked.iter().zip(relevant).zip(relevant_total) {
        per_query(ranking, rel, n_rel, cfg, &mut sums);
    }
    let n = ranked.len().max(1) as f64;
    sums.0.into_iter().map(|(k, v)| (k, v / n)).collect()
}

fn per_query(
    ranking: &[u32],
    rel: &HashSet<u32>,
    n_rel: usize,
    cfg: &MetricConfig,
    sums: &mut Sums,
) {
    let hit = |i: usize| ranking.get(i).is_some_and(|c| rel.contains(c));
    let hits_in = |k: usize| (0..k.min(ranking.len())).filter(|&i| hit(i)).count();
    for &k in &cfg.accuracy_at_k {
        let found = if hits_in(k) > 0 { 1.0 } else { 0.0 };
        sums.add(Measure::Accuracy, k, found);
    }
    for &k in &cfg.precision_recall_at_k {
        let h = hits_in(k) as f64;
        sums.add(Measure::Precision, k, h / k as f64);
        sums.add(Measure::Recall, k, h / n_rel as f64);
    }
    for &k in &cfg.mrr_at_k {
        let rr = (0..k.min(ranking.len()))
            .find(|&i| hit(i))
            .map_or(0.0, |i| 1.0 / (i + 1) as f64);
        sums.add(Measure::Mrr, k, rr);
    }
    for &k in &cfg.ndcg_at_k {
        let dcg: f64 = (0..k.min(ranking.len()))
            .filter(|&i| hit(i))
            .map(|i| 1.0 / ((i + 2) as f64).log2())
            .sum();
        let ideal: f64 = (0..n_rel.min(k))
            .map(|i| 1.0 / ((i + 2) as f64).log2())
            .sum();
        let ndcg = if ideal > 0.0 { dcg / ideal } else { 0.0 };
        sums.add(Measure::Ndcg, k, ndcg);
    }
    for &k in &cfg.map_at_k {
        let mut found = 0usize;
        let mut sum = 0.0;
        for i in 0..k.min(ranking.len()) {
            if hit(i) {
                found += 1;
                sum += found as f64 / (i + 1) as f64;
            }
        }
        sums.add(Measure::Map, k, sum / k.min(n_rel) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keyed by the evaluator's names, as the reference's dictionaries are.
    fn named(m: BTreeMap<Metric, f64>) -> BTreeMap<String, f64> {
        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    fn one(ranking: Vec<u32>, rel: &[u32], n_rel: usize) -> BTreeMap<String, f64> {
        named(compute(
            &[ranking],
            &[rel.iter().copied().collect()],
            &[n_rel],
            &MetricConfig::default(),
        ))
    }

    #[test]
    fn a_hit_at_rank_two() {
        let m = one(vec![5, 7, 1, 2], &[7], 1);
        assert_eq!(m["cosine_accuracy@1"], 0.0);
        assert_eq!(m["cosine_accuracy@3"], 1.0);
        assert_eq!(m["cosine_mrr@10"], 0.5);
        assert!((m["cosine_ndcg@10"] - 1.0 / 3f64.log2()).abs() < 1e-15);
        assert_eq!(m["cosine_map@100"], 0.5);
        assert_eq!(
            m["cosine_precision@10"], 0.1,
            "precision divides by k even when the corpus is smaller"
        );
        assert_eq!(m["cosine_recall@3"], 1.0);
    }

    #[test]
    fn missing_relevant_ids_still_count_in_recall_and_ideal_dcg() {
        // Two relevant ids, one absent from the corpus.
        let m = one(vec![3, 4], &[3], 2);
        assert_eq!(m["cosine_recall@1"], 0.5);
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((m["cosine_ndcg@10"] - 1.0 / ideal).abs() < 1e-15);
        assert_eq!(m["cosine_map@100"], 0.5);
    }

    #[test]
    fn means_over_queries() {
        let m = named(compute(
            &[vec![1, 2], vec![2, 1]],
            &[HashSet::from([1]), HashSet::from([1])],
            &[1, 1],
            &MetricConfig::default(),
        ));
        assert_eq!(m["cosine_accuracy@1"], 0.5);
        assert_eq!(m["cosine_mrr@10"], 0.75);
        assert_eq!(MetricConfig::default().max_k(), 100);
    }

    #[test]
    fn the_default_config_computes_the_evaluators_metrics_only() {
        let cfg = MetricConfig::default();
        let m = compute(&[vec![1]], &[HashSet::from([1])], &[1], &cfg);
        assert_eq!(m.len(), 4 * 3 + 3);
        assert!(m.keys().all(|&k| cfg.computes(k)));
        assert!(!cfg.computes(Metric::new(Measure::Ndcg, 5)));
    }
}
