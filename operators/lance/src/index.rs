//! Indexes: vector indexes (cosine) on `emb_<dim>` columns, the full-text index on the text column
//! (built by `fulltext`), and compaction.

use lance::Dataset;
use lance::dataset::optimize::{CompactionOptions, compact_files};
use lance::index::DatasetIndexExt;
use lance::index::vector::VectorIndexParams;
use lance_index::IndexType;
use lance_index::vector::hnsw::builder::HnswBuildParams;
use lance_index::vector::ivf::IvfBuildParams;
use lance_index::vector::sq::builder::SQBuildParams;
use lance_linalg::distance::MetricType;
use tracing::info;

use crate::error::{Result, StoreError, lance_err};
use crate::schema::column_dim;

/// Which vector index to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IndexKind {
    /// IVF partitions with product quantisation: small, fast, approximate.
    #[default]
    IvfPq,
    /// IVF partitions with an HNSW graph over scalar-quantised vectors: higher recall, larger.
    IvfHnswSq,
    /// A full-text (inverted) index on the text column, Spanish analyzer (`fulltext`).
    Fts,
}

impl IndexKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ivf_pq" => Ok(Self::IvfPq),
            "ivf_hnsw_sq" => Ok(Self::IvfHnswSq),
            "fts" => Ok(Self::Fts),
            other => Err(StoreError::Invalid(format!(
                "unknown index type {other:?} (expected ivf_pq, ivf_hnsw_sq or fts)"
            ))),
        }
    }
}

/// Index parameters; `None` picks a default from the row count and dim.
#[derive(Debug, Clone, Default)]
pub struct IndexParams {
    pub kind: IndexKind,
    pub num_partitions: Option<usize>,
    pub num_sub_vectors: Option<usize>,
}

/// Partitions ≈ √rows (Lance's own rule of thumb), at least 1.
fn default_partitions(rows: usize) -> usize {
    ((rows as f64).sqrt() as usize).clamp(1, 4096)
}

/// Sub-vectors of 8 dims each (PQ needs the dim to divide evenly).
fn default_sub_vectors(dim: usize) -> usize {
    [16, 8, 4, 2, 1]
        .iter()
        .map(|w| dim / w)
        .find(|&n| n > 0 && dim.is_multiple_of(n))
        .unwrap_or(1)
        .max(1)
}

/// Builds (or replaces) a cosine vector index on `column`, or the full-text index of a text column.
pub async fn build_index(ds: &mut Dataset, column: &str, params: &IndexParams) -> Result<()> {
    let partitions = |rows| {
        params
            .num_partitions
            .unwrap_or_else(|| default_partitions(rows))
    };
    let index = match params.kind {
        IndexKind::Fts => return crate::fulltext::build_fts_index(ds, column).await,
        IndexKind::IvfPq => {
            let dim = vector_column_dim(ds, column)?;
            let subs = params
                .num_sub_vectors
                .unwrap_or_else(|| default_sub_vectors(dim.get()));
            let rows = count_rows(ds).await?;
            VectorIndexParams::ivf_pq(partitions(rows), 8, subs, MetricType::Cosine, 50)
        }
        IndexKind::IvfHnswSq => {
            vector_column_dim(ds, column)?;
            let rows = count_rows(ds).await?;
            VectorIndexParams::with_ivf_hnsw_sq_params(
                MetricType::Cosine,
                IvfBuildParams::new(partitions(rows)),
                HnswBuildParams::default(),
                SQBuildParams::default(),
            )
        }
    };
    let uri = ds.uri().to_string();
    ds.create_index(
        &[column],
        IndexType::Vector,
        Some(format!("{column}_idx")),
        &index,
        true,
    )
    .await
    .map_err(lance_err(&uri))?;
    info!(%uri, column, kind = ?params.kind, "index built");
    Ok(())
}

async fn count_rows(ds: &Dataset) -> Result<usize> {
    ds.count_rows(None).await.map_err(lance_err(ds.uri()))
}

/// The dim of `column`, which must be one of the dataset's `emb_<dim>` columns.
pub fn vector_column_dim(ds: &Dataset, column: &str) -> Result<lexembed_encoder::Dim> {
    column_dim(column)
        .filter(|_| ds.schema().field(column).is_some())
        .ok_or_else(|| StoreError::NoColumn {
            uri: ds.uri().to_string(),
            column: column.to_string(),
            available: vector_columns(ds).join(", "),
        })
}

/// The dataset's `emb_<dim>` columns.
pub fn vector_columns(ds: &Dataset) -> Vec<String> {
    ds.schema()
        .fields
        .iter()
        .map(|f| f.name.clone())
        .filter(|n| column_dim(n).is_some())
        .collect()
}

/// Rewrites small fragments into larger ones (a new version; readers of older versions are unaffected).
pub async fn compact(ds: &mut Dataset) -> Result<(usize, usize)> {
    let uri = ds.uri().to_string();
    let m = compact_files(ds, CompactionOptions::default(), None)
        .await
        .map_err(lance_err(&uri))?;
    Ok((m.fragments_removed, m.fragments_added))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_data() {
        assert_eq!(default_partitions(10_000), 100);
        assert_eq!(default_partitions(0), 1);
        assert_eq!(default_sub_vectors(384), 24);
        assert_eq!(default_sub_vectors(64), 4);
        assert_eq!(default_sub_vectors(8), 1);
        assert!(IndexKind::parse("hnsw").is_err());
    }
}
