//! Full-text search on the documents' text: Lance's inverted index with a Spanish analyzer (lower
//! case, accent folding, Spanish stemming and stop words) and BM25 ranking.
//!
//! Owns the index's analyzer settings, building the index, checking that a dataset has one, and the
//! search itself. Legal questions hinge on identifiers ("artículo 66", "Ley 58/2003") that dense
//! vectors blur; this is the lexical half of `hybrid`.

use arrow_array::Float32Array;
use lance::Dataset;
use lance::index::DatasetIndexExt;
use lance_index::scalar::FullTextSearchQuery;
use lance_index::scalar::inverted::tokenizer::InvertedIndexParams;
use lance_index::{IndexCriteria, IndexType};
use lexembed_encoder::text_input::is_text_type;
use tracing::info;

use crate::error::{Result, StoreError, lance_err};
use crate::search::{Hit, SearchOptions, hits_from_batch};

/// The analyzer of lexembed's full-text indexes. Queries are analysed the same way by Lance (the
/// settings live in the index), so pylance's `full_text_query` on the same dataset ranks alike.
pub fn spanish_analyzer() -> Result<InvertedIndexParams> {
    let params = InvertedIndexParams::default()
        .base_tokenizer("simple".into())
        .language("Spanish")
        .map_err(|e| StoreError::Invalid(format!("full-text analyzer: {e}")))?
        .lower_case(true)
        .ascii_folding(true)
        .stem(true)
        .remove_stop_words(true)
        .with_position(false);
    Ok(params)
}

/// Builds (or replaces) the full-text index on the text column `column`.
pub async fn build_fts_index(ds: &mut Dataset, column: &str) -> Result<()> {
    let uri = ds.uri().to_string();
    let is_text = ds
        .schema()
        .field(column)
        .is_some_and(|f| is_text_type(&f.data_type()));
    if !is_text {
        return Err(StoreError::NoTextColumn {
            uri,
            column: column.to_string(),
        });
    }
    ds.create_index(
        &[column],
        IndexType::Inverted,
        Some(format!("{column}_fts_idx")),
        &spanish_analyzer()?,
        true,
    )
    .await
    .map_err(lance_err(&uri))?;
    info!(%uri, column, "full-text index built");
    Ok(())
}

/// Whether `column` has a full-text index; searching without one is refused, saying how to build it.
pub async fn require_fts_index(ds: &Dataset, column: &str) -> Result<()> {
    let criteria = IndexCriteria::default().for_column(column).supports_fts();
    let found = ds
        .load_scalar_index(criteria)
        .await
        .map_err(lance_err(ds.uri()))?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NoFullTextIndex {
            uri: ds.uri().to_string(),
            column: column.to_string(),
        }),
    }
}

/// The `opts.k` rows whose `column` best matches `query` (BM25, best first, ties by id); `score` is
/// the BM25 score, `distance` is `None`.
pub async fn fts_hits(
    ds: &Dataset,
    column: &str,
    query: &str,
    opts: &SearchOptions,
) -> Result<Vec<Hit>> {
    require_fts_index(ds, column).await?;
    let fts = FullTextSearchQuery::new(query.to_string())
        .with_column(column.to_string())
        .map_err(lance_err(ds.uri()))?
        .limit(Some(opts.k as i64));
    let mut scan = ds.scan();
    scan.full_text_search(fts).map_err(lance_err(ds.uri()))?;
    if let Some(f) = &opts.filter {
        scan.filter(f).map_err(lance_err(ds.uri()))?;
    }
    let batch = scan.try_into_batch().await.map_err(lance_err(ds.uri()))?;
    let scores: Float32Array = batch
        .column_by_name("_score")
        .and_then(|c| c.as_any().downcast_ref::<Float32Array>().cloned())
        .ok_or_else(|| StoreError::Invalid("full-text result has no _score column".into()))?;
    let mut out = hits_from_batch(&batch, |i| (scores.value(i), None))?;
    out.truncate(opts.k);
    Ok(out)
}
