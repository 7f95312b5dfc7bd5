//! The one search-mode vocabulary of lexembed: how rows are ranked for a query, spelled the same in
//! `lexembed search --mode`, `serve`'s `/search` JSON, SQL's `hybrid_search(…, 'mode')`, and
//! `lexembed eval --search` (and so in its metric keys: `index_ndcg@10`).
//!
//! `exact` scores every stored vector (what sentence-transformers' evaluator does); `index` goes
//! through the vector column's index when it has one (exact re-ranking of its candidates) and is exact
//! otherwise; `fts` is BM25 over the text's full-text index; `hybrid` fuses the index path and the
//! full-text list. `dense` (the index path, before the exact/index split had one word) is still
//! accepted for one release, with a warning (once a process).

use std::fmt;
use std::str::FromStr;
use std::sync::Once;

use serde::{Deserialize, Deserializer};
use tracing::warn;

/// How to rank the rows for a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum SearchMode {
    /// Cosine against every stored vector of the column (flat search).
    Exact,
    /// The column's vector index when it has one (candidates re-ranked exactly), else exact.
    #[default]
    Index,
    /// BM25 over the text column's full-text index.
    Fts,
    /// Reciprocal-rank fusion of the index path and the full-text list.
    Hybrid,
}

/// A search mode not in the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown search mode {0:?} (expected exact, index, fts or hybrid)")]
pub struct UnknownSearchMode(pub String);

impl SearchMode {
    pub const ALL: [Self; 4] = [Self::Exact, Self::Index, Self::Fts, Self::Hybrid];

    /// The mode's one spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Index => "index",
            Self::Fts => "fts",
            Self::Hybrid => "hybrid",
        }
    }

    /// Whether this mode needs the query's vector.
    pub fn needs_vector(self) -> bool {
        self != Self::Fts
    }

    /// Whether the dense list goes through the column's vector index (when it has one).
    pub fn uses_index(self) -> bool {
        matches!(self, Self::Index | Self::Hybrid)
    }

    /// Whether `s` names a mode, the deprecated spellings included, without warning: for argument
    /// parsers that run before logging is set up (the warning comes from `parse`, later).
    pub fn is_spelling(s: &str) -> bool {
        Self::ALL.into_iter().any(|m| m.name() == s) || s == DEPRECATED_INDEX
    }

    /// The mode a spelling names; `dense`, the old name of `index`, with a deprecation warning.
    pub fn parse(s: &str) -> Result<Self, UnknownSearchMode> {
        if let Some(mode) = Self::ALL.into_iter().find(|m| m.name() == s) {
            return Ok(mode);
        }
        match s {
            DEPRECATED_INDEX => {
                // Once a process: a server parses a mode per request, and one client still saying
                // "dense" must not put a line in the log for each of them.
                static WARNED: Once = Once::new();
                WARNED.call_once(|| {
                    warn!(
                        "search mode \"dense\" is deprecated and will be refused in the next release: say \"index\" (the vector index when the column has one) or \"exact\""
                    )
                });
                Ok(Self::Index)
            }
            other => Err(UnknownSearchMode(other.to_string())),
        }
    }
}

/// The old name of `index`, accepted with a warning for one release.
const DEPRECATED_INDEX: &str = "dense";

impl fmt::Display for SearchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SearchMode {
    type Err = UnknownSearchMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for SearchMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for SearchMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_reads_back_from_its_one_spelling() {
        for mode in SearchMode::ALL {
            assert_eq!(SearchMode::parse(mode.name()), Ok(mode));
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.name()));
            assert_eq!(serde_json::from_str::<SearchMode>(&json).unwrap(), mode);
        }
        assert_eq!(SearchMode::default(), SearchMode::Index);
    }

    #[test]
    fn the_old_spelling_dense_still_means_the_index_path() {
        assert_eq!(SearchMode::parse("dense"), Ok(SearchMode::Index));
        assert_eq!(
            serde_json::from_str::<SearchMode>("\"dense\"").unwrap(),
            SearchMode::Index
        );
    }

    #[test]
    fn an_unknown_mode_is_refused_naming_the_vocabulary() {
        let err = SearchMode::parse("sparse").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown search mode \"sparse\" (expected exact, index, fts or hybrid)"
        );
        let err = serde_json::from_str::<SearchMode>("\"Exact\"").unwrap_err();
        assert!(err.to_string().contains("expected exact, index"), "{err}");
    }

    #[test]
    fn only_full_text_search_goes_without_the_query_vector() {
        let needs: Vec<bool> = SearchMode::ALL.iter().map(|m| m.needs_vector()).collect();
        assert_eq!(needs, [true, true, false, true]);
        let index: Vec<bool> = SearchMode::ALL.iter().map(|m| m.uses_index()).collect();
        assert_eq!(index, [false, true, false, true]);
    }
}
