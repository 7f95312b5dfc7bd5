//! Evaluation through the path users search by: each query's ranking as `lexembed search` returns it
//! (the vector index with its probes and re-ranking, full-text search, or hybrid fusion) instead of
//! exact scoring of every stored vector, scored with the same metrics; through the index, also the
//! k-NN recall of its rankings against exact ones, where an index loses quality invisibly.

use std::collections::BTreeMap;

use lexembed_encoder::Dim;
use lexembed_lance::schema::emb_column;
use lexembed_lance::{DEFAULT_RRF_K, Dataset, Query, SearchMode, SearchOptions, search};

use crate::error::{EvalError, Result};
use crate::evaluate::{EvalResult, Judgements};
use crate::key::DimMetric;
use crate::metrics::{MetricConfig, knn_recall};
use crate::qa::QaPair;

/// What a served-path evaluation searches with.
pub struct ServedInputs<'a> {
    pub ds: &'a Dataset,
    pub corpus_ids: &'a [String],
    pub qa: &'a [QaPair],
    /// Full-width query vectors, `width` values each, in QA order.
    pub query_vectors: &'a [f32],
    pub width: usize,
    pub dims: &'a [u32],
}

/// The metrics of `cfg.path`'s rankings at every dim; `exact` (the exact evaluation of the same
/// queries) gives the index path its k-NN recall.
pub async fn evaluate_served(
    inputs: &ServedInputs<'_>,
    cfg: &MetricConfig,
    exact: &EvalResult,
) -> Result<EvalResult> {
    let mode = cfg.path;
    if mode == SearchMode::Exact {
        return Err(EvalError::Runtime(
            "exact scoring is the evaluator's own (scoring.rs), not a served search".into(),
        ));
    }
    let judged = Judgements::new(inputs.corpus_ids, inputs.qa)?;
    let mut by_dim: BTreeMap<u32, Vec<Vec<u32>>> = BTreeMap::new();
    for &d in inputs.dims {
        // Full-text rankings do not depend on the dim: searched once, scored at every dim.
        let ranked = match (mode, by_dim.values().next()) {
            (SearchMode::Fts, Some(first)) => first.clone(),
            _ => rank_at_dim(inputs, &judged, mode, Dim(d), cfg.max_k()).await?,
        };
        by_dim.insert(d, ranked);
    }
    let mut result = judged.result(inputs.qa, inputs.corpus_ids.len(), by_dim, cfg);
    for (&d, searched) in &result.rankings {
        let Some(exact_ranked) = exact.rankings.get(&d) else {
            continue;
        };
        for (metric, v) in knn_recall(searched, exact_ranked, cfg) {
            result.metrics.insert(DimMetric { dim: d, metric }, v);
        }
    }
    Ok(result)
}

/// Every kept query's ranking at `dim` (corpus positions, best first, at most `k`).
async fn rank_at_dim(
    inputs: &ServedInputs<'_>,
    judged: &Judgements,
    mode: SearchMode,
    dim: Dim,
    k: usize,
) -> Result<Vec<Vec<u32>>> {
    let column = emb_column(dim);
    let opts = SearchOptions {
        k,
        ..SearchOptions::default()
    };
    let mut out = Vec::with_capacity(judged.kept.len());
    for &i in &judged.kept {
        let full = &inputs.query_vectors[i * inputs.width..(i + 1) * inputs.width];
        let vector = &full[..dim.get().min(inputs.width)];
        let query = Query {
            text: &inputs.qa[i].query,
            vector: Some(vector),
            column: &column,
            mode,
            rrf_k: DEFAULT_RRF_K,
        };
        let hits = search(inputs.ds, query, &opts).await?;
        out.push(
            hits.iter()
                .filter_map(|h| judged.position.get(&h.id).copied())
                .collect(),
        );
    }
    Ok(out)
}
