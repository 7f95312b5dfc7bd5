//! lexembed in SQL. Owns the DataFusion functions — `embed(text [, dim])` (async, fed by the model's shared
//! queue, `lexembed_encoder::queue`), `cosine_similarity`, `cosine_distance`, `l2_distance` (`distance`, one file each), `vector_search`, `hybrid_search` (full-text and fused search) —
//! registering Lance datasets as tables (`session`), SQL as a pipeline source (`source`), and `COPY (…) TO 'x.lance'` (`copy`). Knows nothing of ONNX Runtime: it calls the
//! encoder through that queue.

pub mod copy;
pub mod distance;
pub mod embed;
pub mod error;
pub mod hybrid_search;
pub mod search_exec;
pub mod session;
pub mod source;
pub mod table_args;
pub mod vector_search;

pub use copy::{copy_to_lance, parse_lance_copy};
pub use error::{Result, SqlError};
pub use lexembed_encoder::{BatchPolicy, SharedBatcher};
pub use session::{SqlFunctions, register_functions, register_lance_table};
pub use source::{is_file_table, query_documents, register_file_table};
