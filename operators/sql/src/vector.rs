//! `cosine_similarity(a, b)`, `cosine_distance(a, b)`, `l2_distance(a, b)` on vectors: fixed-size or
//! variable lists of floats (an array literal `[0.1, 0.2]` is a list), row by row; a length mismatch
//! is an error naming both lengths.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, Float32Array};
use arrow_schema::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Which distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    CosineSimilarity,
    CosineDistance,
    L2Distance,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorFunc {
    metric: Metric,
    signature: Signature,
}

impl VectorFunc {
    pub fn udf(metric: Metric) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            metric,
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

fn is_vector(t: &DataType) -> bool {
    match t {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => {
            matches!(
                f.data_type(),
                DataType::Float32 | DataType::Float64 | DataType::Null | DataType::Int64
            )
        }
        _ => false,
    }
}

/// Row `i` of a list-of-floats array as f64 values, `None` for null.
fn row(a: &ArrayRef, i: usize) -> Option<Vec<f64>> {
    if a.is_null(i) {
        return None;
    }
    let v = match a.data_type() {
        DataType::FixedSizeList(..) => a.as_fixed_size_list().value(i),
        DataType::LargeList(_) => a.as_list::<i64>().value(i),
        _ => a.as_list::<i32>().value(i),
    };
    Some(match v.data_type() {
        DataType::Float32 => v
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|&x| f64::from(x))
            .collect(),
        DataType::Float64 => v.as_primitive::<Float64Type>().values().to_vec(),
        _ => arrow::compute::cast(&v, &DataType::Float64)
            .ok()?
            .as_primitive::<Float64Type>()
            .values()
            .to_vec(),
    })
}

impl Metric {
    fn apply(self, a: &[f64], b: &[f64]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        let cos = dot / (na * nb).max(1e-30);
        match self {
            Metric::CosineSimilarity => cos,
            Metric::CosineDistance => 1.0 - cos,
            Metric::L2Distance => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt(),
        }
    }
}

use datafusion::arrow;

impl ScalarUDFImpl for VectorFunc {
    fn name(&self) -> &str {
        match self.metric {
            Metric::CosineSimilarity => "cosine_similarity",
            Metric::CosineDistance => "cosine_distance",
            Metric::L2Distance => "l2_distance",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if let Some(t) = arg_types.iter().find(|t| !is_vector(t)) {
            return plan_err!(
                "{}(a, b): both arguments must be vectors (lists of floats), got {t}",
                self.name()
            );
        }
        Ok(DataType::Float32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let a = args.args[0].to_array(n)?;
        let b = args.args[1].to_array(n)?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(match (row(&a, i), row(&b, i)) {
                (Some(x), Some(y)) if x.len() != y.len() => {
                    return exec_err!(
                        "{}: vectors of different lengths ({} and {}) in row {i}",
                        self.name(),
                        x.len(),
                        y.len()
                    );
                }
                (Some(x), Some(y)) => Some(self.metric.apply(&x, &y) as f32),
                _ => None,
            });
        }
        Ok(ColumnarValue::Array(Arc::new(Float32Array::from(out))))
    }
}
