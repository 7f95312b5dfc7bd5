//! `l2_distance(a, b)`: the Euclidean distance between two vectors. Computed on its own (the old
//! function computed the cosine terms for every row, whichever metric was asked for).

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_OTHER;

use super::Distance;
use super::vectors::Element;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct L2Distance;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_OTHER,
        "Euclidean (L2) distance of two vectors of equal length; null when either is null, an \
         error when the lengths differ.",
        "l2_distance(a, b)",
    )
    .with_argument(
        "a",
        "A vector: a column such as emb_256, an array literal, or embed(text, dim).",
    )
    .with_argument("b", "A vector of the same length.")
    .with_sql_example("SELECT l2_distance([0.0, 3.0], [4.0, 0.0])  -- 5")
    .build()
});

impl Distance for L2Distance {
    const NAME: &'static str = "l2_distance";

    fn kernel<A: Element, B: Element>(a: &[A], b: &[B]) -> f64 {
        let mut sum = 0.0;
        for (&x, &y) in a.iter().zip(b) {
            let d = x.to_f64() - y.to_f64();
            sum += d * d;
        }
        sum.sqrt()
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{query, vectors};

    /// What the function computed before it had typed kernels.
    fn old(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    #[test]
    fn equals_the_old_results_bit_for_bit() {
        let a = vectors(40, 256, 5);
        let b = vectors(40, 256, 6);
        let rows: Vec<_> = a.iter().cloned().zip(b.iter().cloned().map(Some)).collect();
        let got = query("SELECT l2_distance(a, b) FROM v ORDER BY id", &rows);
        let f64s = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        for (i, g) in got.iter().enumerate() {
            assert_eq!(*g, Some(old(&f64s(&a[i]), &f64s(&b[i])) as f32), "row {i}");
        }
    }

    #[test]
    fn integer_and_variable_list_literals_work() {
        let rows = vec![(vec![0.0, 3.0], None)];
        assert_eq!(
            query("SELECT l2_distance(a, [4, 0]) FROM v", &rows),
            [Some(5.0)]
        );
        assert_eq!(
            query("SELECT l2_distance([0.0, 3.0], [4.0, 0.0])", &rows),
            [Some(5.0)]
        );
    }
}
