//! `cosine_similarity(a, b)`: the cosine of the angle between two vectors, in [-1, 1] (1: same
//! direction). For unit vectors (lexembed's columns) it is their dot product.

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_OTHER;

use super::Distance;
use super::vectors::Element;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CosineSimilarity;

/// lexembed's one cosine (`lexembed_encoder::similarity`), over the row's element types.
pub(super) fn cosine<A: Element, B: Element>(a: &[A], b: &[B]) -> f64 {
    lexembed_encoder::similarity::cosine(a, b)
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_OTHER,
        "Cosine similarity of two vectors of equal length (fixed-size or variable lists of floats), \
         in [-1, 1]; null when either is null, an error when the lengths differ.",
        "cosine_similarity(a, b)",
    )
    .with_argument("a", "A vector: a column such as emb_256, an array literal, or embed(text, dim).")
    .with_argument("b", "A vector of the same length.")
    .with_sql_example(
        "SELECT id, cosine_similarity(emb_64, embed('plazo de recurso', 64)) AS score\n\
         FROM docs ORDER BY score DESC LIMIT 10",
    )
    .build()
});

impl Distance for CosineSimilarity {
    const NAME: &'static str = "cosine_similarity";

    fn kernel<A: Element, B: Element>(a: &[A], b: &[B]) -> f64 {
        cosine(a, b)
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::test_support::{old_cosine as old, query, vectors};

    fn f64s(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| f64::from(x)).collect()
    }

    #[test]
    fn equals_the_old_results_bit_for_bit_and_keeps_nulls() {
        let a = vectors(50, 64, 7);
        let b = vectors(50, 64, 8);
        let mut rows: Vec<_> = a.iter().cloned().zip(b.iter().cloned().map(Some)).collect();
        rows[3].1 = None;
        let got = query("SELECT cosine_similarity(a, b) FROM v ORDER BY id", &rows);
        for (i, g) in got.iter().enumerate() {
            let want = rows[i]
                .1
                .as_ref()
                .map(|b| old(&f64s(&a[i]), &f64s(b)) as f32);
            assert_eq!(*g, want, "row {i}");
        }
    }

    #[test]
    fn a_constant_argument_serves_every_row() {
        let a = vectors(5, 3, 9);
        let rows: Vec<_> = a.iter().map(|v| (v.clone(), None)).collect();
        let got = query(
            "SELECT cosine_similarity(a, [1.0, 0.0, 0]) FROM v ORDER BY id",
            &rows,
        );
        for (i, g) in got.iter().enumerate() {
            let want = old(&f64s(&a[i]), &[1.0, 0.0, 0.0]) as f32;
            assert_eq!(*g, Some(want), "row {i}");
        }
        let same = query(
            "SELECT cosine_similarity([3.0, 4.0], [3.0, 4.0])",
            &rows[..1],
        );
        assert!((same[0].unwrap() - 1.0).abs() < 1e-6);
        let zero = query(
            "SELECT cosine_similarity([0.0, 0.0], [1.0, 0.0])",
            &rows[..1],
        );
        assert_eq!(zero, [Some(0.0)]);
    }
}
