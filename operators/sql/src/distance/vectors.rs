//! A vector argument of a distance function read as float slices: a column of fixed-size or
//! variable lists (`FixedSizeList`, `List`, `LargeList`) of f32 or f64, or a constant (read once
//! and used for every row). Other element types (an integer array literal `[1, 0]`) are cast to f64
//! once per call, not per row.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ColumnarValue;
use std::sync::Arc;

/// Whether a distance function accepts `t` as a vector.
pub fn is_vector(t: &DataType) -> bool {
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

/// A float type a kernel reads.
pub trait Element: Copy + Into<f64> {
    fn to_f64(self) -> f64 {
        self.into()
    }
}

impl Element for f32 {}

impl Element for f64 {}

/// One row's values, borrowed from the argument's buffers.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl Row<'_> {
    pub fn len(&self) -> usize {
        match self {
            Row::F32(v) => v.len(),
            Row::F64(v) => v.len(),
        }
    }
}

enum Values {
    F32(ScalarBuffer<f32>),
    F64(ScalarBuffer<f64>),
}

/// Where row `i` sits in the values.
enum Offsets {
    Fixed(usize),
    Small(OffsetBuffer<i32>),
    Large(OffsetBuffer<i64>),
}

pub struct VectorArg {
    lists: ArrayRef,
    values: Values,
    offsets: Offsets,
    /// A constant: row 0 serves every row.
    constant: bool,
}

impl VectorArg {
    pub fn new(arg: &ColumnarValue) -> Result<Self> {
        let (lists, constant) = match arg {
            ColumnarValue::Array(a) => (a.clone(), false),
            ColumnarValue::Scalar(s) => (s.to_array_of_size(1)?, true),
        };
        let lists = as_float_lists(lists)?;
        let (values, offsets) = match lists.data_type() {
            DataType::FixedSizeList(_, n) => {
                let l = lists.as_fixed_size_list();
                (floats(l.values())?, Offsets::Fixed(*n as usize))
            }
            DataType::List(_) => {
                let l = lists.as_list::<i32>();
                (floats(l.values())?, Offsets::Small(l.offsets().clone()))
            }
            DataType::LargeList(_) => {
                let l = lists.as_list::<i64>();
                (floats(l.values())?, Offsets::Large(l.offsets().clone()))
            }
            other => return exec_err!("expected a list of floats, got {other}"),
        };
        Ok(Self {
            lists,
            values,
            offsets,
            constant,
        })
    }

    /// Row `i`'s values; `None` when it is null.
    pub fn row(&self, i: usize) -> Option<Row<'_>> {
        let i = if self.constant { 0 } else { i };
        if self.lists.is_null(i) {
            return None;
        }
        let (start, end) = match &self.offsets {
            Offsets::Fixed(n) => (i * n, (i + 1) * n),
            Offsets::Small(o) => (o[i] as usize, o[i + 1] as usize),
            Offsets::Large(o) => (o[i] as usize, o[i + 1] as usize),
        };
        Some(match &self.values {
            Values::F32(v) => Row::F32(&v[start..end]),
            Values::F64(v) => Row::F64(&v[start..end]),
        })
    }
}

fn floats(values: &ArrayRef) -> Result<Values> {
    Ok(match values.data_type() {
        DataType::Float32 => Values::F32(values.as_primitive::<Float32Type>().values().clone()),
        DataType::Float64 => Values::F64(values.as_primitive::<Float64Type>().values().clone()),
        other => return exec_err!("expected float vector elements, got {other}"),
    })
}

/// Lists whose elements are neither f32 nor f64 (integers, nulls), cast to f64 lists.
fn as_float_lists(lists: ArrayRef) -> Result<ArrayRef> {
    let f64_field = || Arc::new(Field::new_list_field(DataType::Float64, true));
    let target = match lists.data_type() {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f)
            if matches!(f.data_type(), DataType::Float32 | DataType::Float64) =>
        {
            return Ok(lists);
        }
        DataType::FixedSizeList(_, n) => DataType::FixedSizeList(f64_field(), *n),
        DataType::List(_) => DataType::List(f64_field()),
        DataType::LargeList(_) => DataType::LargeList(f64_field()),
        other => return exec_err!("expected a list of floats, got {other}"),
    };
    Ok(datafusion::arrow::compute::cast(&lists, &target)?)
}
