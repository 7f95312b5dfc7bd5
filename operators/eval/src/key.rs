//! What names a metric: a measure at a cut-off through a search path (`cosine_ndcg@10` for exact
//! scoring, as sentence-transformers names it; `index_ndcg@10`, `fts_…`, `hybrid_…` through the path
//! users search by) and that metric at a Matryoshka dim (`dim_64_cosine_ndcg@10`). Typed inside lexembed; the text forms, which are sentence-transformers'
//! `InformationRetrievalEvaluator` keys, appear only at the edges (JSON, history, alert rules, labels).

use std::fmt;
use std::str::FromStr;

use lexembed_lance::SearchMode;
use serde::{Serialize, Serializer};

/// One of the evaluator's measures (its keys call them all `cosine_…`: the score function).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    Accuracy,
    Precision,
    Recall,
    Mrr,
    Ndcg,
    Map,
    /// The share of exact search's top k that the index path returns in its top k (k-NN recall of the
    /// index; not a relevance measure).
    KnnRecall,
}

impl Measure {
    pub const ALL: [Self; 7] = [
        Self::Accuracy,
        Self::Precision,
        Self::Recall,
        Self::Mrr,
        Self::Ndcg,
        Self::Map,
        Self::KnnRecall,
    ];

    /// As the evaluator spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::Precision => "precision",
            Self::Recall => "recall",
            Self::Mrr => "mrr",
            Self::Ndcg => "ndcg",
            Self::Map => "map",
            Self::KnnRecall => "knn_recall",
        }
    }
}

/// The metric-name prefix of a search mode: `cosine` (the evaluator's score-function name) for exact
/// scoring, the mode's name otherwise (`index_ndcg@10`).
pub fn metric_prefix(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::Exact => "cosine",
        other => other.name(),
    }
}

/// A measure at a cut-off through a search path: `cosine_ndcg@10`, `index_ndcg@10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Metric {
    pub path: SearchMode,
    pub measure: Measure,
    pub k: usize,
}

impl Metric {
    /// Through exact scoring.
    pub const fn new(measure: Measure, k: usize) -> Self {
        Self::on(SearchMode::Exact, measure, k)
    }

    pub const fn on(path: SearchMode, measure: Measure, k: usize) -> Self {
        Self { path, measure, k }
    }

    /// The same measure and cut-off through `path`.
    pub const fn at(self, path: SearchMode) -> Self {
        Self { path, ..self }
    }

    /// NDCG@10, the metric watched for drops by default.
    pub const NDCG_AT_10: Self = Self::new(Measure::Ndcg, 10);
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}@{}",
            metric_prefix(self.path),
            self.measure.name(),
            self.k
        )
    }
}

/// A metric name that is not one of the evaluator's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown metric {0:?}: expected <path>_<measure>@<k> (or <measure>@<k>) with path one of cosine (exact), index, fts, hybrid and measure one of accuracy, precision, recall, mrr, ndcg, map, knn_recall"
)]
pub struct UnknownMetric(pub String);

impl FromStr for Metric {
    type Err = UnknownMetric;

    /// `cosine_ndcg@10`, `hybrid_ndcg@10`, or `ndcg@10` for short (exact scoring).
    fn from_str(text: &str) -> Result<Self, UnknownMetric> {
        let unknown = || UnknownMetric(text.to_string());
        let (path, bare) = SearchMode::ALL
            .into_iter()
            .find_map(|p| Some((p, text.strip_prefix(metric_prefix(p))?.strip_prefix('_')?)))
            .unwrap_or((SearchMode::Exact, text));
        let (name, k) = bare.split_once('@').ok_or_else(unknown)?;
        let measure = Measure::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(unknown)?;
        let k = k
            .parse::<usize>()
            .ok()
            .filter(|&k| k > 0)
            .ok_or_else(unknown)?;
        Ok(Self { path, measure, k })
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A metric at a dim: the key of an evaluation's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DimMetric {
    pub dim: u32,
    pub metric: Metric,
}

impl fmt::Display for DimMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dim_{}_{}", self.dim, self.metric)
    }
}

impl FromStr for DimMetric {
    type Err = UnknownMetric;

    /// `dim_64_cosine_ndcg@10`.
    fn from_str(text: &str) -> Result<Self, UnknownMetric> {
        let unknown = || UnknownMetric(text.to_string());
        let (dim, metric) = text
            .strip_prefix("dim_")
            .and_then(|rest| rest.split_once('_'))
            .ok_or_else(unknown)?;
        Ok(Self {
            dim: dim.parse().map_err(|_| unknown())?,
            metric: metric.parse().map_err(|_| unknown())?,
        })
    }
}

/// JSON keys as sentence-transformers writes them.
impl Serialize for DimMetric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_bad_names_are_refused() {
        for path in SearchMode::ALL {
            for m in Measure::ALL {
                let metric = Metric::on(path, m, 3);
                assert_eq!(metric.to_string().parse::<Metric>(), Ok(metric));
                let key = DimMetric { dim: 64, metric };
                assert_eq!(key.to_string().parse::<DimMetric>(), Ok(key));
            }
        }
        assert_eq!(
            "index_knn_recall@10".parse::<Metric>(),
            Ok(Metric::on(SearchMode::Index, Measure::KnnRecall, 10))
        );
        assert_eq!("ndcg@10".parse::<Metric>(), Ok(Metric::NDCG_AT_10));
        assert_eq!(
            "dim_128_cosine_map@100".parse::<DimMetric>().unwrap(),
            DimMetric {
                dim: 128,
                metric: Metric::new(Measure::Map, 100)
            }
        );
        for bad in [
            "ndcg",
            "cosine_ndgc@10",
            "ndcg@0",
            "ndcg@x",
            "cosine_@10",
            "",
        ] {
            let e = bad.parse::<Metric>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert!("dim_x_cosine_ndcg@10".parse::<DimMetric>().is_err());
        assert!("cosine_ndcg@10".parse::<DimMetric>().is_err());
    }

    #[test]
    fn json_keys_are_sentence_transformers_keys() {
        let key = DimMetric {
            dim: 64,
            metric: Metric::NDCG_AT_10,
        };
        let map = std::collections::BTreeMap::from([(key, 0.5)]);
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            r#"{"dim_64_cosine_ndcg@10":0.5}"#
        );
    }
}
