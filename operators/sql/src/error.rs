//! Errors of the SQL layer.

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Store(#[from] lexembed_lance::StoreError),
    #[error(transparent)]
    Encoder(#[from] lexembed_encoder::EncoderError),
    #[error("{0}")]
    Source(String),
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;
