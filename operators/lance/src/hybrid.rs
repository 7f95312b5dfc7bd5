//! Search over an embedded dataset in every mode (`crate::mode`): the vector column exact or through
//! its index, full-text (BM25 on the text), and hybrid: reciprocal-rank fusion (Cormack et al., 2009)
//! of the two lists, the way LanceDB users combine them.
//!
//! Owns the fusion and the one entry point callers use (`search`); the query's vector is the
//! caller's (it embeds with the dataset's model and query prompt).

use std::collections::HashMap;

use lance::Dataset;

use crate::error::{Result, StoreError};
use crate::fulltext::fts_hits;
use crate::mode::SearchMode;
use crate::schema::TEXT_COLUMN;
use crate::search::{Hit, SearchOptions, hits};

/// RRF's constant: a document at rank r of a list scores 1 / (k + r), ranks from 1. 60 is the
/// paper's value and LanceDB's default.
pub const DEFAULT_RRF_K: f32 = 60.0;

/// Candidates each list contributes to a hybrid ranking, at least: more than k, so that a document
/// ranked just past k in both lists can still win.
pub const HYBRID_CANDIDATES: usize = 50;

/// One search: the query's text and (for dense and hybrid) its vector at the column's dim.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub text: &'a str,
    pub vector: Option<&'a [f32]>,
    /// The vector column (dense and hybrid).
    pub column: &'a str,
    pub mode: SearchMode,
    pub rrf_k: f32,
}

/// The `opts.k` best rows for `query`, best first (ties by id).
pub async fn search(ds: &Dataset, query: Query<'_>, opts: &SearchOptions) -> Result<Vec<Hit>> {
    let vector = || {
        query.vector.ok_or_else(|| {
            StoreError::Invalid(format!(
                "{} search needs the query's vector",
                query.mode.name()
            ))
        })
    };
    match query.mode {
        SearchMode::Exact | SearchMode::Index => {
            hits(ds, query.column, vector()?, query.mode, opts).await
        }
        SearchMode::Fts => fts_hits(ds, TEXT_COLUMN, query.text, opts).await,
        SearchMode::Hybrid => {
            let wide = SearchOptions {
                k: opts.k.max(HYBRID_CANDIDATES),
                ..opts.clone()
            };
            let lexical = fts_hits(ds, TEXT_COLUMN, query.text, &wide).await?;
            let dense = hits(ds, query.column, vector()?, SearchMode::Index, &wide).await?;
            Ok(reciprocal_rank_fusion(
                &[dense, lexical],
                query.rrf_k,
                opts.k,
            ))
        }
    }
}

/// Fuses ranked lists: each document scores Σ 1 / (rrf_k + rank) over the lists it is in (rank from
/// 1); the `k` best, ties by id. A hit keeps the first list's fields (its distance, for the dense list).
pub fn reciprocal_rank_fusion(lists: &[Vec<Hit>], rrf_k: f32, k: usize) -> Vec<Hit> {
    let mut fused: HashMap<&str, (f64, &Hit)> = HashMap::new();
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let add = 1.0 / (f64::from(rrf_k) + rank as f64 + 1.0);
            fused.entry(hit.id.as_str()).or_insert((0.0, hit)).0 += add;
        }
    }
    let mut out: Vec<(f64, Hit)> = fused
        .into_values()
        .map(|(score, hit)| (score, hit.clone()))
        .collect();
    out.sort_by(|(a, x), (b, y)| b.total_cmp(a).then_with(|| x.id.cmp(&y.id)));
    out.truncate(k);
    out.into_iter()
        .map(|(score, mut hit)| {
            hit.score = score as f32;
            hit.distance = None;
            hit
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str) -> Hit {
        Hit {
            id: id.into(),
            score: 0.0,
            distance: None,
            text: String::new(),
            metadata: vec![],
        }
    }

    #[test]
    fn a_document_in_both_lists_beats_one_ranked_first_in_one() {
        let dense = vec![hit("a"), hit("b"), hit("c")];
        let lexical = vec![hit("d"), hit("b")];
        let fused = reciprocal_rank_fusion(&[dense, lexical], 60.0, 3);
        let ids: Vec<&str> = fused.iter().map(|h| h.id.as_str()).collect();
        // b: 1/62 + 1/62; a and d: 1/61 each, tied, by id.
        assert_eq!(ids, ["b", "a", "d"]);
        assert!((fused[0].score - 2.0 / 62.0).abs() < 1e-7);
    }
}
