//! A DataFusion session with lexembed's functions and Lance datasets as tables.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use lance::datafusion::LanceTableProvider;
use lexembed_encoder::Encoder;
use lexembed_lance::DatasetLocation;

use crate::batcher::{BatchPolicy, SharedBatcher};
use crate::embed::EmbedFunc;
use crate::error::{Result, SqlError};
use crate::vector::{Metric, VectorFunc};

/// Registers `embed` (backed by one shared batcher for `encoder`) and the vector functions.
pub fn register_functions(
    ctx: &SessionContext,
    encoder: Arc<Encoder>,
    policy: BatchPolicy,
) -> SharedBatcher {
    let batcher = SharedBatcher::start(encoder, policy);
    ctx.register_udf(EmbedFunc::udf(batcher.clone()));
    for m in [
        Metric::CosineSimilarity,
        Metric::CosineDistance,
        Metric::L2Distance,
    ] {
        ctx.register_udf(VectorFunc::udf(m));
    }
    batcher
}

/// Registers the Lance dataset at `location` as table `name` (projection and filter pushdown are
/// Lance's own DataFusion integration).
pub async fn register_lance_table(
    ctx: &SessionContext,
    name: &str,
    location: &DatasetLocation,
) -> Result<()> {
    let ds = location.open().await?;
    let provider = LanceTableProvider::new(Arc::new(ds), false, false);
    ctx.register_table(name, Arc::new(provider))
        .map_err(SqlError::from)?;
    Ok(())
}
