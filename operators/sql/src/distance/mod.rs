//! The vector distance functions — `cosine_similarity`, `cosine_distance`, `l2_distance` — one per
//! file with its kernel, documentation and tests (DataFusion's layout). This module owns what they
//! share: the `Distance` trait a function implements, the one `ScalarUDFImpl` over it (argument
//! checks, the row loop, nulls, length mismatches) and `vectors`, which reads a vector argument as
//! float slices without copying.
//!
//! Kernels take the two rows as `&[f32]`/`&[f64]` slices and accumulate in f64; nothing is
//! allocated per row, and a constant argument (`embed('plazo', 64)`, an array literal) is read once,
//! not expanded to one copy per row.

mod cosine_distance;
mod cosine_similarity;
mod l2_distance;
mod vectors;

use std::sync::Arc;

use arrow_array::Float32Array;
use arrow_schema::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

pub use cosine_distance::CosineDistance;
pub use cosine_similarity::CosineSimilarity;
pub use l2_distance::L2Distance;
use vectors::{Element, Row, VectorArg};

/// A distance between two vectors of equal length.
pub trait Distance:
    std::fmt::Debug + Default + PartialEq + Eq + std::hash::Hash + Send + Sync + 'static
{
    /// The SQL name.
    const NAME: &'static str;

    /// The distance of two rows of equal length, accumulated in f64.
    fn kernel<A: Element, B: Element>(a: &[A], b: &[B]) -> f64;

    /// What `SHOW FUNCTIONS`-style tools print.
    fn documentation() -> &'static Documentation;
}

/// Every distance function as a DataFusion UDF.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        DistanceFunc::<CosineSimilarity>::udf(),
        DistanceFunc::<CosineDistance>::udf(),
        DistanceFunc::<L2Distance>::udf(),
    ]
}

/// The UDF of distance `D`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DistanceFunc<D: Distance> {
    distance: D,
    signature: Signature,
}

impl<D: Distance> DistanceFunc<D> {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            distance: D::default(),
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

/// `D` over row `i` of both arguments: `None` when either is null.
fn distance_of_row<D: Distance>(a: &VectorArg, b: &VectorArg, i: usize) -> Result<Option<f32>> {
    let (Some(x), Some(y)) = (a.row(i), b.row(i)) else {
        return Ok(None);
    };
    if x.len() != y.len() {
        return exec_err!(
            "{}: vectors of different lengths ({} and {}) in row {i}",
            D::NAME,
            x.len(),
            y.len()
        );
    }
    let d = match (x, y) {
        (Row::F32(x), Row::F32(y)) => D::kernel(x, y),
        (Row::F32(x), Row::F64(y)) => D::kernel(x, y),
        (Row::F64(x), Row::F32(y)) => D::kernel(x, y),
        (Row::F64(x), Row::F64(y)) => D::kernel(x, y),
    };
    Ok(Some(d as f32))
}

impl<D: Distance> ScalarUDFImpl for DistanceFunc<D> {
    fn name(&self) -> &str {
        D::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if let Some(t) = arg_types.iter().find(|t| !vectors::is_vector(t)) {
            return plan_err!(
                "{}(a, b): both arguments must be vectors (lists of floats), got {t}",
                D::NAME
            );
        }
        Ok(DataType::Float32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = VectorArg::new(&args.args[0])?;
        let b = VectorArg::new(&args.args[1])?;
        let out = (0..args.number_rows)
            .map(|i| distance_of_row::<D>(&a, &b, i))
            .collect::<Result<Float32Array>>()?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(D::documentation())
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! What every distance's tests use: the function run through a real DataFusion session.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float32Type;
    use datafusion::prelude::SessionContext;

    /// The single Float32 column of `sql`'s result (nulls as `None`), with the distance UDFs
    /// registered and table `v(id, a, b)` holding `rows` as fixed-size lists of `dim` f32.
    pub fn query(sql: &str, rows: &[(Vec<f32>, Option<Vec<f32>>)]) -> Vec<Option<f32>> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ctx = SessionContext::new();
            for f in super::udfs() {
                ctx.register_udf(f);
            }
            let batch = table(rows);
            ctx.register_batch("v", batch).unwrap();
            let out = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            out.iter()
                .flat_map(|b| {
                    let c = b.column(0).as_primitive::<Float32Type>().clone();
                    (0..c.len())
                        .map(|i| c.is_valid(i).then(|| c.value(i)))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
    }

    fn table(rows: &[(Vec<f32>, Option<Vec<f32>>)]) -> arrow_array::RecordBatch {
        use std::sync::Arc;

        use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
        use arrow_array::{ArrayRef, Int64Array, RecordBatch};
        let dim = rows[0].0.len() as i32;
        let mut a = FixedSizeListBuilder::new(Float32Builder::new(), dim);
        let mut b = FixedSizeListBuilder::new(Float32Builder::new(), dim);
        for (x, y) in rows {
            a.values().append_slice(x);
            a.append(true);
            match y {
                Some(y) => {
                    b.values().append_slice(y);
                    b.append(true);
                }
                None => {
                    b.values().append_slice(&vec![0.0; dim as usize]);
                    b.append(false);
                }
            }
        }
        let ids = Int64Array::from_iter_values(0..rows.len() as i64);
        RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as ArrayRef),
            ("a", Arc::new(a.finish()) as ArrayRef),
            ("b", Arc::new(b.finish()) as ArrayRef),
        ])
        .unwrap()
    }

    /// Cosine similarity as the function computed it before it had typed kernels: both rows
    /// copied into `Vec<f64>`, three separate sums.
    pub fn old_cosine(a: &[f64], b: &[f64]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        dot / (na * nb).max(1e-30)
    }

    /// Deterministic pseudo-random vectors (xorshift): rows of `dim` values in [-1, 1).
    pub fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed.max(1);
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        };
        (0..n).map(|_| (0..dim).map(|_| next()).collect()).collect()
    }
}
