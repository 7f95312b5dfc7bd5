//! The one cosine of lexembed's product code: SQL's `cosine_similarity`/`cosine_distance`, the demo's
//! per-dim similarities and the benchmarks' accuracy checks all call it. The evaluator keeps its own
//! blocked kernel (`lexembed-eval`'s `scoring`), which ranks a corpus at every Matryoshka dim at once
//! and is held to sentence-transformers' scores on its own.

/// Cosine of the angle between `a` and `b` (over their common length), in f64: the dot product and
/// both squared norms in one pass; a zero vector gives 0 rather than NaN.
pub fn cosine<A: Copy + Into<f64>, B: Copy + Into<f64>>(a: &[A], b: &[B]) -> f64 {
    let (mut dot, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y): (f64, f64) = (x.into(), y.into());
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    dot / (aa.sqrt() * bb.sqrt()).max(1e-30)
}

/// The smallest cosine between the rows (`dim` values each) of two equally shaped row-major
/// matrices: how far the worst row of one strayed from the other's.
pub fn min_row_cosine(a: &[f32], b: &[f32], dim: usize) -> f64 {
    a.chunks_exact(dim)
        .zip(b.chunks_exact(dim))
        .map(|(x, y)| cosine(x, y))
        .fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_is_the_angle_and_a_zero_vector_scores_zero() {
        assert!((cosine(&[1.0f32, 0.0], &[1.0f32, 0.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0f32, 0.0], &[0.0f32, 2.0]).abs() < 1e-12);
        assert!((cosine(&[1.0f32, 1.0], &[-2.0f64, -2.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0f32, 0.0], &[1.0f32, 2.0]), 0.0);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((cosine(&[3.0f32, 0.0], &[1.0f64, 1.0]) - h).abs() < 1e-12);
    }

    #[test]
    fn the_worst_row_decides_the_min_row_cosine() {
        let a = [1.0f32, 0.0, 0.0, 1.0];
        let b = [1.0f32, 0.0, 1.0, 1.0];
        let want = std::f64::consts::FRAC_1_SQRT_2;
        assert!((min_row_cosine(&a, &b, 2) - want).abs() < 1e-7);
    }
}
