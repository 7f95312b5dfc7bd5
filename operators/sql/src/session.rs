//! A DataFusion session with lexembed's functions and Lance datasets as tables.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use lance::datafusion::LanceTableProvider;
use lexembed_encoder::Encoder;
use lexembed_lance::DatasetLocation;

use crate::embed::EmbedFunc;
use crate::error::{Result, SqlError};
use crate::hybrid_search::HybridSearchFunc;
use crate::table_args::TableRegistry;
use crate::vector_search::VectorSearchFunc;
use lexembed_encoder::{BatchPolicy, Role, SharedBatcher};

/// What a session's lexembed functions share: the model's batcher and the Lance tables by name.
#[derive(Clone)]
pub struct SqlFunctions {
    pub batcher: SharedBatcher,
    tables: TableRegistry,
}

/// Registers `embed` and `embed_query` (backed by one shared batcher for `encoder`), the vector
/// functions, `vector_search` and `hybrid_search`. Fails only for a model whose prompts lexembed cannot apply.
pub fn register_functions(
    ctx: &SessionContext,
    encoder: Arc<Encoder>,
    policy: BatchPolicy,
) -> Result<SqlFunctions> {
    let batcher = SharedBatcher::start(encoder.clone(), policy);
    for role in [Role::Document, Role::Query] {
        ctx.register_udf(EmbedFunc::udf(batcher.clone(), role)?);
    }
    for f in crate::distance::udfs() {
        ctx.register_udf(f);
    }
    let tables = TableRegistry::default();
    ctx.register_udtf(
        "vector_search",
        Arc::new(VectorSearchFunc::new(encoder.clone(), tables.clone())?),
    );
    ctx.register_udtf(
        "hybrid_search",
        Arc::new(HybridSearchFunc::new(encoder, tables.clone())?),
    );
    Ok(SqlFunctions { batcher, tables })
}

/// Registers the Lance dataset at `location` as table `name` (projection and filter pushdown are
/// Lance's own DataFusion integration) and for `vector_search`.
pub async fn register_lance_table(
    ctx: &SessionContext,
    funcs: &SqlFunctions,
    name: &str,
    location: &DatasetLocation,
) -> Result<()> {
    let ds = location.open().await?;
    let provider = LanceTableProvider::new(Arc::new(ds), false, false);
    ctx.register_table(name, Arc::new(provider))
        .map_err(SqlError::from)?;
    if let Ok(mut t) = funcs.tables.lock() {
        t.insert(name.to_string(), location.clone());
    }
    Ok(())
}
