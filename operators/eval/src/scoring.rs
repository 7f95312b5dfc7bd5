//! Exact (brute-force) cosine ranking of a corpus for many queries at every Matryoshka dim at once.
//!
//! Matryoshka prefixes nest, so one pass over the full width serves every dim: the corpus is cut into
//! dim segments ([0,64), [64,128), …), each segment is one matrix product accumulated into the same
//! scores, and after each segment boundary `d` the running dot products, divided by the prefix norms,
//! are the cosines at dim `d`. That is 2·Q·C·D flops for all dims together instead of 2·Q·C·ΣD.
//! Work is split over query blocks (rayon) and corpus chunks (bounded memory); per query and dim a
//! candidate list keeps the top k in the reference order: score descending, then corpus id as a string.

use rayon::prelude::*;

/// Row-major vectors of one width.
#[derive(Debug, Clone)]
pub struct Matrix<'a> {
    pub rows: usize,
    pub width: usize,
    pub values: &'a [f32],
}

/// Per query and per dim, the top `k` corpus positions, best first.
pub type Rankings = Vec<Vec<Vec<u32>>>;

const QUERY_BLOCK: usize = 64;
const CORPUS_CHUNK: usize = 2048;

/// Ranks `corpus` for every query at every dim in `dims` (ascending, each ≤ width). `id_rank[c]` is
/// corpus row c's position in string order of ids (the tie-break). Returns `rankings[q][dim_index]`.
pub fn rank_all(
    queries: &Matrix,
    corpus: &Matrix,
    dims: &[usize],
    id_rank: &[u32],
    k: usize,
) -> Rankings {
    assert!(dims.windows(2).all(|w| w[0] < w[1]), "dims must ascend");
    assert_eq!(queries.width, corpus.width);
    let qnorms = prefix_inverse_norms(queries, dims);
    let cnorms = prefix_inverse_norms(corpus, dims);
    let k = k.min(corpus.rows);
    let blocks: Vec<usize> = (0..queries.rows).step_by(QUERY_BLOCK).collect();
    blocks
        .par_iter()
        .flat_map_iter(|&q0| {
            let qn = (q0 + QUERY_BLOCK).min(queries.rows) - q0;
            rank_block(queries, q0, qn, corpus, dims, &qnorms, &cnorms, id_rank, k)
        })
        .collect()
}

/// `out[row * dims.len() + j]` = 1 / L2 norm of the row's first `dims[j]` values (multiplying by it is
/// cheaper than dividing in the innermost loop).
fn prefix_inverse_norms(m: &Matrix, dims: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(m.rows * dims.len());
    for row in m.values.chunks_exact(m.width) {
        let mut acc = 0f32;
        let mut from = 0;
        for &d in dims {
            acc += row[from..d].iter().map(|x| x * x).sum::<f32>();
            from = d;
            out.push(1.0 / acc.sqrt().max(1e-12));
        }
    }
    out
}

/// Candidates of one query at one dim: (score, id rank, corpus position).
struct TopK {
    k: usize,
    items: Vec<(f32, u32, u32)>,
    /// Scores below this cannot enter the top k.
    floor: f32,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(4 * k.max(1)),
            floor: f32::NEG_INFINITY,
        }
    }

    fn offer(&mut self, score: f32, rank: u32, pos: u32) {
        if score < self.floor {
            return;
        }
        self.items.push((score, rank, pos));
        if self.items.len() >= 4 * self.k.max(1) {
            self.shrink();
        }
    }

    fn shrink(&mut self) {
        let k = self.k.max(1);
        if self.items.len() > k {
            self.items.select_nth_unstable_by(k - 1, order);
            self.items.truncate(k);
            // Keep ties with the k-th score: id order among them is settled at the end.
            self.floor = self.items.iter().map(|x| x.0).fold(f32::INFINITY, f32::min);
        }
    }

    fn finish(mut self) -> Vec<u32> {
        self.items.sort_by(order);
        self.items.truncate(self.k);
        self.items.into_iter().map(|x| x.2).collect()
    }
}

fn order(a: &(f32, u32, u32), b: &(f32, u32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

#[allow(clippy::too_many_arguments)]
fn rank_block(
    queries: &Matrix,
    q0: usize,
    qn: usize,
    corpus: &Matrix,
    dims: &[usize],
    qnorms: &[f32],
    cnorms: &[f32],
    id_rank: &[u32],
    k: usize,
) -> Vec<Vec<Vec<u32>>> {
    let width = queries.width;
    let nd = dims.len();
    let mut tops: Vec<Vec<TopK>> = (0..qn)
        .map(|_| (0..nd).map(|_| TopK::new(k)).collect())
        .collect();
    let mut dots = vec![0f32; qn * CORPUS_CHUNK];
    let qblock = &queries.values[q0 * width..(q0 + qn) * width];
    for c0 in (0..corpus.rows).step_by(CORPUS_CHUNK) {
        let cn = (c0 + CORPUS_CHUNK).min(corpus.rows) - c0;
        let cblock = &corpus.values[c0 * width..(c0 + cn) * width];
        dots[..qn * cn].fill(0.0);
        let mut from = 0;
        for (j, &d) in dims.iter().enumerate() {
            // dots[qn × cn] += Q[:, from..d] · C[:, from..d]ᵀ
            unsafe {
                matrixmultiply::sgemm(
                    qn,
                    d - from,
                    cn,
                    1.0,
                    qblock.as_ptr().add(from),
                    width as isize,
                    1,
                    cblock.as_ptr().add(from),
                    1,
                    width as isize,
                    1.0,
                    dots.as_mut_ptr(),
                    cn as isize,
                    1,
                );
            }
            from = d;
            for (qi, top) in tops.iter_mut().enumerate() {
                let qinv = qnorms[(q0 + qi) * nd + j];
                let row = &dots[qi * cn..(qi + 1) * cn];
                for (ci, &dot) in row.iter().enumerate() {
                    let c = c0 + ci;
                    let score = dot * qinv * cnorms[c * nd + j];
                    top[j].offer(score, id_rank[c], c as u32);
                }
            }
        }
    }
    tops.into_iter()
        .map(|per_dim| per_dim.into_iter().map(TopK::finish).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(q: &[f32], corpus: &[Vec<f32>], d: usize, id_rank: &[u32], k: usize) -> Vec<u32> {
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let mut s: Vec<(f32, u32, u32)> = corpus
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let dot: f32 = q[..d].iter().zip(&c[..d]).map(|(a, b)| a * b).sum();
                (dot / (norm(&q[..d]) * norm(&c[..d])), id_rank[i], i as u32)
            })
            .collect();
        s.sort_by(order);
        s.into_iter().take(k).map(|x| x.2).collect()
    }

    #[test]
    fn matches_a_naive_ranking_at_every_prefix_including_ties() {
        let width = 16;
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / u32::MAX as f32) - 0.25
        };
        let mut corpus: Vec<Vec<f32>> = (0..5000)
            .map(|_| (0..width).map(|_| next()).collect())
            .collect();
        corpus[10] = corpus[20].clone(); // an exact tie
        let queries: Vec<Vec<f32>> = (0..70)
            .map(|_| (0..width).map(|_| next()).collect())
            .collect();
        let id_rank: Vec<u32> = (0..5000u32).rev().collect();
        let cflat: Vec<f32> = corpus.concat();
        let qflat: Vec<f32> = queries.concat();
        let dims = [4, 8, 16];
        let got = rank_all(
            &Matrix {
                rows: 70,
                width,
                values: &qflat,
            },
            &Matrix {
                rows: 5000,
                width,
                values: &cflat,
            },
            &dims,
            &id_rank,
            10,
        );
        for (qi, q) in queries.iter().enumerate() {
            for (j, &d) in dims.iter().enumerate() {
                assert_eq!(
                    got[qi][j],
                    naive(q, &corpus, d, &id_rank, 10),
                    "query {qi} dim {d}"
                );
            }
        }
    }
}
