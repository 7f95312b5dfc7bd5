//! `cosine_distance(a, b)`: 1 − cosine similarity, in [0, 2] (0: same direction); the distance
//! Lance's cosine indexes order by.

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_OTHER;

use super::Distance;
use super::cosine_similarity::cosine;
use super::vectors::Element;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CosineDistance;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_OTHER,
        "Cosine distance (1 - cosine similarity) of two vectors of equal length, in [0, 2]; null \
         when either is null, an error when the lengths differ.",
        "cosine_distance(a, b)",
    )
    .with_argument(
        "a",
        "A vector: a column such as emb_256, an array literal, or embed(text, dim).",
    )
    .with_argument("b", "A vector of the same length.")
    .with_sql_example(
        "SELECT id FROM docs ORDER BY cosine_distance(emb_256, embed('plazo', 256)) LIMIT 10",
    )
    .build()
});

impl Distance for CosineDistance {
    const NAME: &'static str = "cosine_distance";

    fn kernel<A: Element, B: Element>(a: &[A], b: &[B]) -> f64 {
        1.0 - cosine(a, b)
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::test_support::{old_cosine, query, vectors};

    /// What the function computed before it had typed kernels.
    fn old(a: &[f64], b: &[f64]) -> f64 {
        1.0 - old_cosine(a, b)
    }

    #[test]
    fn equals_the_old_results_bit_for_bit() {
        let a = vectors(40, 128, 3);
        let b = vectors(40, 128, 4);
        let rows: Vec<_> = a.iter().cloned().zip(b.iter().cloned().map(Some)).collect();
        let got = query("SELECT cosine_distance(a, b) FROM v ORDER BY id", &rows);
        let f64s = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        for (i, g) in got.iter().enumerate() {
            assert_eq!(*g, Some(old(&f64s(&a[i]), &f64s(&b[i])) as f32), "row {i}");
        }
    }

    #[test]
    fn lengths_that_differ_are_an_error_naming_both() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let err = rt.block_on(async {
            let ctx = datafusion::prelude::SessionContext::new();
            for f in super::super::udfs() {
                ctx.register_udf(f);
            }
            let df = ctx
                .sql("SELECT cosine_distance([1.0, 0.0], [1.0, 0.0, 0.0])")
                .await
                .unwrap();
            df.collect().await.unwrap_err().to_string()
        });
        assert!(err.contains("different lengths (2 and 3)"), "{err}");
    }
}
