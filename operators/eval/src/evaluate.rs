//! One evaluation: QA pairs against a corpus of stored vectors, every Matryoshka dim, the metrics of
//! sentence-transformers' `InformationRetrievalEvaluator` keyed by (dim, metric).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::error::{EvalError, Result};
use crate::key::{DimMetric, Metric};
use crate::metrics::{MetricConfig, compute};
use crate::qa::QaPair;
use crate::scoring::{Matrix, rank_all};

/// Corpus ids and their vectors (row-major, `width` values each; any normalisation).
#[derive(Debug, Clone)]
pub struct Corpus {
    pub ids: Vec<String>,
    pub width: usize,
    pub vectors: Vec<f32>,
}

/// What an evaluation found.
#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    /// Value of each metric at each dim (JSON keys `dim_<d>_cosine_<metric>@<k>`).
    pub metrics: BTreeMap<DimMetric, f64>,
    pub dims: Vec<u32>,
    pub queries_evaluated: usize,
    /// Queries dropped because they list no relevant document (as the reference does).
    pub queries_without_relevant: usize,
    /// Relevant ids that are not in the corpus (they still count in recall's denominator).
    pub unknown_relevant_ids: usize,
    pub corpus_size: usize,
    /// Ids of the evaluated queries, in the order of `rankings`' lists.
    #[serde(skip)]
    pub query_ids: Vec<String>,
    /// Per dim, per evaluated query: corpus row positions best first (ids via `Corpus::ids`). The
    /// reference's `write_predictions`, for inspection and tie analysis; positions rather than ids so
    /// that a run which does not write them does not pay for copying strings.
    #[serde(skip)]
    pub rankings: BTreeMap<u32, Vec<Vec<u32>>>,
}

impl EvalResult {
    /// The value of `metric` at `dim`.
    pub fn get(&self, dim: u32, metric: Metric) -> Option<f64> {
        self.metrics.get(&DimMetric { dim, metric }).copied()
    }
}

/// The QA pairs as the evaluator judges them: queries without relevant ids dropped, relevant ids as
/// corpus positions (ids not in the corpus still count in each query's total).
pub struct Judgements {
    /// Indices into the QA pairs of the queries evaluated.
    pub kept: Vec<usize>,
    pub relevant: Vec<HashSet<u32>>,
    pub totals: Vec<usize>,
    pub unknown_relevant_ids: usize,
    /// Corpus id → position.
    pub position: HashMap<String, u32>,
}

impl Judgements {
    pub fn new(corpus_ids: &[String], qa: &[QaPair]) -> Result<Self> {
        let position: HashMap<String, u32> = corpus_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        let kept: Vec<usize> = (0..qa.len())
            .filter(|&i| !qa[i].relevant_ids.is_empty())
            .collect();
        if kept.is_empty() {
            return Err(EvalError::NoQueries);
        }
        let mut unknown = 0;
        let relevant: Vec<HashSet<u32>> = kept
            .iter()
            .map(|&i| {
                qa[i]
                    .relevant_ids
                    .iter()
                    .filter_map(|id| {
                        let p = position.get(id.as_str()).copied();
                        unknown += usize::from(p.is_none());
                        p
                    })
                    .collect()
            })
            .collect();
        let totals: Vec<usize> = kept.iter().map(|&i| qa[i].relevant_ids.len()).collect();
        Ok(Self {
            kept,
            relevant,
            totals,
            unknown_relevant_ids: unknown,
            position,
        })
    }

    /// The metrics of each dim's rankings (per kept query, corpus positions best first).
    pub fn result(
        &self,
        qa: &[QaPair],
        corpus_size: usize,
        by_dim: BTreeMap<u32, Vec<Vec<u32>>>,
        cfg: &MetricConfig,
    ) -> EvalResult {
        let mut metrics = BTreeMap::new();
        for (d, ranked) in &by_dim {
            for (metric, v) in compute(ranked, &self.relevant, &self.totals, cfg) {
                metrics.insert(DimMetric { dim: *d, metric }, v);
            }
        }
        EvalResult {
            metrics,
            dims: by_dim.keys().rev().copied().collect(),
            queries_evaluated: self.kept.len(),
            queries_without_relevant: qa.len() - self.kept.len(),
            unknown_relevant_ids: self.unknown_relevant_ids,
            corpus_size,
            query_ids: self.kept.iter().map(|&i| qa[i].query_id.clone()).collect(),
            rankings: by_dim,
        }
    }
}

/// Evaluates `qa` (with `query_vectors[i]` the embedding of `qa[i].query`, `corpus.width` values)
/// at each of `dims` (each ≤ the corpus width) by exact scoring, as sentence-transformers' evaluator.
pub fn evaluate(
    corpus: &Corpus,
    query_vectors: &[f32],
    qa: &[QaPair],
    dims: &[u32],
    cfg: &MetricConfig,
) -> Result<EvalResult> {
    let judged = Judgements::new(&corpus.ids, qa)?;
    let width = corpus.width;
    let queries: Vec<f32> = judged
        .kept
        .iter()
        .flat_map(|&i| query_vectors[i * width..(i + 1) * width].iter().copied())
        .collect();
    let mut sorted_dims: Vec<u32> = dims.to_vec();
    sorted_dims.sort_unstable();
    sorted_dims.dedup();
    if let Some(&d) = sorted_dims.iter().find(|&&d| d as usize > width || d == 0) {
        return Err(EvalError::Runtime(format!(
            "dim {d} is not available: the corpus vectors have {width} values"
        )));
    }
    let mut rankings = rank_all(
        &Matrix {
            rows: judged.kept.len(),
            width,
            values: &queries,
        },
        &Matrix {
            rows: corpus.ids.len(),
            width,
            values: &corpus.vectors,
        },
        &sorted_dims.iter().map(|&d| d as usize).collect::<Vec<_>>(),
        &string_order(&corpus.ids),
        cfg.max_k(),
    );
    let mut by_dim = BTreeMap::new();
    for (j, d) in sorted_dims.iter().enumerate() {
        let ranked: Vec<Vec<u32>> = rankings
            .iter_mut()
            .map(|per_dim| std::mem::take(&mut per_dim[j]))
            .collect();
        by_dim.insert(*d, ranked);
    }
    Ok(judged.result(qa, corpus.ids.len(), by_dim, cfg))
}

/// Each id's position in byte-wise string order (the reference's tie-break: "d10" < "d4").
fn string_order(ids: &[String]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by(|&a, &b| ids[a as usize].cmp(&ids[b as usize]));
    let mut rank = vec![0u32; ids.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Measure;

    fn pair(id: &str, rel: &[&str]) -> QaPair {
        QaPair {
            query_id: id.into(),
            query: String::new(),
            relevant_ids: rel.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn ties_break_by_id_as_a_string_and_edge_cases_are_counted() {
        // d10 and d4 are identical vectors: "d10" < "d4" as strings, so d10 ranks first.
        let corpus = Corpus {
            ids: vec!["d4".into(), "d10".into(), "x".into()],
            width: 2,
            vectors: vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0],
        };
        let qa = vec![
            pair("q1", &["d4"]),
            pair("q2", &[]),
            pair("q3", &["d10", "missing"]),
        ];
        let q = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.1];
        let r = evaluate(&corpus, &q, &qa, &[2, 1], &MetricConfig::default()).unwrap();
        assert_eq!(
            (
                r.queries_evaluated,
                r.queries_without_relevant,
                r.unknown_relevant_ids
            ),
            (2, 1, 1)
        );
        assert_eq!(r.dims, vec![2, 1]);
        // q1: d4 is second behind its twin d10 → mrr 0.5; q3: d10 first → 1. Mean 0.75.
        assert_eq!(r.get(2, Metric::new(Measure::Mrr, 10)), Some(0.75));
        // q3 has 2 relevant (one missing from the corpus): recall@10 = 1/2.
        assert_eq!(
            r.get(2, Metric::new(Measure::Recall, 10)),
            Some((1.0 + 0.5) / 2.0)
        );
        assert!(
            evaluate(
                &corpus,
                &q,
                &[pair("q", &[])],
                &[2],
                &MetricConfig::default()
            )
            .is_err()
        );
    }
}
