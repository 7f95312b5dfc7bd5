//! Reading a pipeline's Lance dataset as an evaluation corpus: ids and the widest stored vector column
//! (narrower Matryoshka dims are its prefixes, so one column serves every dim).

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use futures::TryStreamExt;
use lexembed_lance::schema::{column_dim, written_by};
use lexembed_lance::{DatasetLocation, StoreError, vector_columns};

use crate::error::{EvalError, Result};
use crate::evaluate::Corpus;

/// A corpus and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedCorpus {
    pub corpus: Corpus,
    /// The dims stored in the dataset, largest first.
    pub dims: Vec<u32>,
    pub model_id: Option<String>,
    pub version: u64,
}

pub async fn load(location: &DatasetLocation) -> Result<LoadedCorpus> {
    let uri = location.uri.clone();
    let ds = location.open().await?;
    let lance_err = |e| StoreError::Lance {
        uri: uri.clone(),
        source: e,
    };
    let mut dims: Vec<u32> = vector_columns(&ds)
        .iter()
        .filter_map(|c| column_dim(c))
        .map(|d| d.0)
        .collect();
    dims.sort_unstable_by(|a, b| b.cmp(a));
    let Some(&widest) = dims.first() else {
        return Err(EvalError::Dataset {
            uri,
            message: "no emb_<dim> vector columns: was it written by a lexembed pipeline?".into(),
        });
    };
    if ds.schema().field("id").is_none() {
        return Err(EvalError::Dataset {
            uri,
            message: "no id column".into(),
        });
    }
    let column = format!("emb_{widest}");
    let mut scan = ds.scan();
    scan.project(&["id", column.as_str()]).map_err(lance_err)?;
    let batches: Vec<arrow_array::RecordBatch> = scan
        .try_into_stream()
        .await
        .map_err(lance_err)?
        .try_collect()
        .await
        .map_err(lance_err)?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut ids = Vec::with_capacity(rows);
    let mut vectors = Vec::with_capacity(rows * widest as usize);
    for b in &batches {
        let id = arrow_cast::cast(b.column(0), &arrow_schema::DataType::Utf8)?;
        let v = b.column(1).as_fixed_size_list();
        for i in 0..b.num_rows() {
            if v.is_null(i) {
                return Err(EvalError::Dataset {
                    uri,
                    message: format!("row {} has a null {column}", ids.len()),
                });
            }
            ids.push(id.as_string::<i32>().value(i).to_string());
            vectors.extend_from_slice(v.value(i).as_primitive::<Float32Type>().values());
        }
    }
    let meta = arrow_schema::Schema::from(ds.schema()).metadata().clone();
    Ok(LoadedCorpus {
        corpus: Corpus {
            ids,
            width: widest as usize,
            vectors,
        },
        dims,
        model_id: written_by(&meta).map(|w| w.model_id),
        version: ds.version().version,
    })
}
