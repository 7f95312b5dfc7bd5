//! Matryoshka outputs: from full vectors to one Arrow `FixedSizeList<Float32, d>` array per dim.
//!
//! For each dim `d`: the first `d` values of the full vector, L2-renormalised. One values buffer per dim,
//! no per-row allocation; null rows stay null (their slots are zero-filled as Arrow requires).

use std::sync::Arc;

use arrow_array::{FixedSizeListArray, Float32Array};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field};

use crate::dims::Dim;
use crate::error::{EncoderError, Result};
use crate::pooling::l2_normalize;

/// The item field of every embedding column: `FixedSizeList<Float32 (nullable "item"), d>`.
pub fn item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Float32, true))
}

/// Arrow type of an embedding column of width `dim`.
pub fn embedding_type(dim: Dim) -> DataType {
    DataType::FixedSizeList(item_field(), dim.0 as i32)
}

/// Writes row `v`'s first `d` values into `out`, renormalised.
pub fn truncate_into(v: &[f32], out: &mut [f32]) {
    out.copy_from_slice(&v[..out.len()]);
    l2_normalize(out);
}

/// One array per dim from `rows` full vectors of width `full` (row-major in `values`).
pub fn matryoshka_arrays(
    values: &[f32],
    full: usize,
    dims: &[Dim],
    nulls: Option<&NullBuffer>,
) -> Result<Vec<FixedSizeListArray>> {
    let rows = values.len().checked_div(full).unwrap_or(0);
    dims.iter()
        .map(|&dim| {
            let d = dim.get();
            if d > full || d == 0 {
                return Err(EncoderError::DimTooLarge {
                    requested: dim.0,
                    full: full as u32,
                });
            }
            let mut out = vec![0f32; rows * d];
            for (row, dst) in values.chunks_exact(full).zip(out.chunks_exact_mut(d)) {
                truncate_into(row, dst);
            }
            if let Some(n) = nulls {
                for i in (0..rows).filter(|&i| n.is_null(i)) {
                    out[i * d..(i + 1) * d].fill(0.0);
                }
            }
            FixedSizeListArray::try_new(
                item_field(),
                d as i32,
                Arc::new(Float32Array::from(out)),
                nulls.cloned(),
            )
            .map_err(EncoderError::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn prefixes_are_renormalised_and_nulls_kept() {
        let values = [3.0, 4.0, 12.0, 0.0, 0.0, 0.0];
        let nulls = NullBuffer::from(vec![true, false]);
        let arrays =
            matryoshka_arrays(&values, 3, &[Dim(3), Dim(2), Dim(1)], Some(&nulls)).unwrap();
        let row = |a: &FixedSizeListArray| {
            let v = a.value(0);
            let f = v.as_any().downcast_ref::<Float32Array>().unwrap();
            f.values().to_vec()
        };
        assert_eq!(row(&arrays[0]), vec![3.0 / 13.0, 4.0 / 13.0, 12.0 / 13.0]);
        assert_eq!(row(&arrays[1]), vec![0.6, 0.8]);
        assert_eq!(row(&arrays[2]), vec![1.0]);
        assert!(arrays.iter().all(|a| a.is_null(1) && a.len() == 2));
        assert_eq!(arrays[1].value_length(), 2);
    }

    #[test]
    fn a_dim_wider_than_the_vector_is_an_error() {
        assert!(matryoshka_arrays(&[1.0, 2.0], 2, &[Dim(4)], None).is_err());
    }
}
