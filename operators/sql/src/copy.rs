//! `COPY (SELECT …) TO 'path.lance'`: a query's result streamed into a new Lance dataset, so a SQL
//! backfill (read CSV/Parquet, embed, write Lance) is one statement. DataFusion's own COPY keeps
//! Parquet, CSV and JSON targets; only a target ending in `.lance` comes here. `emb_<dim>` columns made
//! by `embed()` get the model id and dims in the schema metadata, as a pipeline writes them, so
//! `lexembed search` and `eval` accept the dataset.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::Schema;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use lance::dataset::{InsertBuilder, WriteMode, WriteParams};
use lexembed_encoder::Dim;
use lexembed_lance::DatasetLocation;
use lexembed_lance::schema::{DIMS_KEY, MODEL_ID_KEY, column_dim, format_dims};

use crate::error::{Result, SqlError};

/// A `COPY (query) TO 'target.lance'` statement, split into its query and target; `None` for any
/// other statement (DataFusion runs those).
pub fn parse_lance_copy(sql: &str) -> Option<(String, String)> {
    let s = sql.trim().trim_end_matches(';').trim();
    let rest = s.get(..4).filter(|k| k.eq_ignore_ascii_case("copy"))?;
    let _ = rest;
    let after = s[4..].trim_start();
    let inner = after.strip_prefix('(')?;
    let close = matching_paren(inner)?;
    let query = inner[..close].trim().to_string();
    let tail = inner[close + 1..].trim_start();
    let to = tail.get(..2).filter(|k| k.eq_ignore_ascii_case("to"))?;
    let _ = to;
    let target = tail[2..].trim();
    let path = target.strip_prefix('\'')?.split('\'').next()?.to_string();
    path.ends_with(".lance").then_some((query, path))
}

/// Index of the `)` closing an already opened `(`, skipping quoted text.
fn matching_paren(s: &str) -> Option<usize> {
    let (mut depth, mut quote) = (1usize, None::<char>);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Runs `query` and streams its rows into a new Lance dataset at `location`; returns the row count.
/// Nothing is committed if the query fails midway.
pub async fn copy_to_lance(
    ctx: &SessionContext,
    query: &str,
    location: &DatasetLocation,
    model_id: &str,
) -> Result<usize> {
    let stream = ctx.sql(query).await?.execute_stream().await?;
    let schema = Arc::new(with_model_metadata(stream.schema().as_ref(), model_id));
    let out_schema = schema.clone();
    let counted = stream.map(move |b| {
        let b = b?;
        Ok(b.with_schema(out_schema.clone())?)
    });
    let stream: SendableRecordBatchStream =
        Box::pin(RecordBatchStreamAdapter::new(schema, counted));
    let params = WriteParams {
        mode: WriteMode::Create,
        ..WriteParams::default()
    };
    let ds = InsertBuilder::new(location.uri.as_str())
        .with_params(&params)
        .execute_stream(stream)
        .await
        .map_err(lexembed_lance::error::lance_err(&location.uri))
        .map_err(SqlError::Store)?;
    ds.count_rows(None)
        .await
        .map_err(lexembed_lance::error::lance_err(&location.uri))
        .map_err(SqlError::Store)
}

/// The schema with the model id and dims of its `emb_<dim>` columns (if any) in the metadata.
fn with_model_metadata(schema: &Schema, model_id: &str) -> Schema {
    let mut dims: Vec<Dim> = schema
        .fields()
        .iter()
        .filter_map(|f| column_dim(f.name()))
        .collect();
    if dims.is_empty() {
        return schema.clone();
    }
    dims.sort_by(|a, b| b.cmp(a));
    let mut meta: HashMap<String, String> = schema.metadata().clone();
    meta.insert(MODEL_ID_KEY.into(), model_id.into());
    meta.insert(DIMS_KEY.into(), format_dims(&dims));
    schema.clone().with_metadata(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_copies_to_lance_targets_are_taken() {
        let (q, p) = parse_lance_copy(
            "copy (SELECT id, embed(text, 64) AS emb_64 FROM d WHERE text <> ')') TO 'out/x.lance';",
        )
        .unwrap();
        assert_eq!(
            q,
            "SELECT id, embed(text, 64) AS emb_64 FROM d WHERE text <> ')'"
        );
        assert_eq!(p, "out/x.lance");
        assert!(parse_lance_copy("COPY (SELECT 1) TO 'x.parquet'").is_none());
        assert!(parse_lance_copy("SELECT 1").is_none());
        assert!(parse_lance_copy("COPY t TO 'x.lance'").is_none());
    }
}
