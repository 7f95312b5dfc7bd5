//! `COPY (SELECT …) TO 'path.lance'`: a query's result streamed into a new Lance dataset, so a SQL
//! backfill (read CSV/Parquet, embed, write Lance) is one statement. DataFusion's own COPY keeps
//! Parquet, CSV and JSON targets; only a target ending in `.lance` comes here. `emb_<dim>` columns made
//! by `embed()` get the model id and dims in the schema metadata, as a pipeline writes them, so
//! `lexembed search` and `eval` accept the dataset.

use std::sync::Arc;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{CopyToSource, DFParser, Statement};
use futures::StreamExt;
use lexembed_encoder::{ModelDir, PromptChoice};
use lexembed_lance::schema::stamp_written_by;
use lexembed_lance::{CommitRecord, DatasetLocation, SinkMode};

use crate::error::{Result, SqlError};

/// A `COPY (query) TO 'target.lance'` statement, split into its query and target; `None` for any
/// other statement (DataFusion runs those, and reports their syntax errors).
pub fn parse_lance_copy(sql: &str) -> Option<(String, String)> {
    let mut statements = DFParser::parse_sql(sql).ok()?;
    let Some(Statement::CopyTo(copy)) = statements.pop_front() else {
        return None;
    };
    let CopyToSource::Query(query) = copy.source else {
        return None;
    };
    (statements.is_empty() && copy.target.ends_with(".lance"))
        .then(|| (query.to_string(), copy.target))
}

/// Runs `query` and streams its rows into a new Lance dataset at `location` through the one Lance
/// writer: a strict create (a dataset that exists, or that another writer creates meanwhile, is an
/// error and this statement writes nothing), the model id, prompts and dims of its `emb_<dim>` columns in the
/// schema metadata and the commit, like a pipeline's. Returns the row count. Nothing is committed if
/// the query fails midway.
pub async fn copy_to_lance(
    ctx: &SessionContext,
    query: &str,
    location: &DatasetLocation,
    model: &ModelDir,
) -> Result<usize> {
    // `embed()` puts the model's document prompt; queries must use its query prompt.
    let prompts = model.role_prompts(&PromptChoice::Model)?;
    let stream = ctx.sql(query).await?.execute_stream().await?;
    let (schema, written_by) =
        stamp_written_by(stream.schema().as_ref(), &model.model_id, &prompts);
    let schema = Arc::new(schema);
    let out_schema = schema.clone();
    let stamped = stream.map(move |b| Ok(b?.with_schema(out_schema.clone())?));
    let stream: SendableRecordBatchStream =
        Box::pin(RecordBatchStreamAdapter::new(schema, stamped));
    let record = CommitRecord {
        written_by,
        ..CommitRecord::default()
    };
    let commit = location
        .commit(SinkMode::Create, stream, &record)
        .await
        .map_err(SqlError::Store)?;
    Ok(commit.rows_total)
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
        let (q, _) = parse_lance_copy("COPY (SELECT 'a;b' AS s) TO 's3://b/x.lance'").unwrap();
        assert_eq!(q, "SELECT 'a;b' AS s");
        assert_eq!(p, "out/x.lance");
        assert!(parse_lance_copy("COPY (SELECT 1) TO 'x.parquet'").is_none());
        assert!(parse_lance_copy("SELECT 1").is_none());
        assert!(parse_lance_copy("COPY t TO 'x.lance'").is_none());
        assert!(parse_lance_copy("COPY (SELECT 1) TO 'x.lance'; SELECT 2").is_none());
        assert!(parse_lance_copy("COPY (SELECT FROM) TO 'x.lance'").is_none());
    }
}
