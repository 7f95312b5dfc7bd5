//! Pooling of token embeddings into one vector per text, and L2 normalisation, as sentence-transformers
//! defines them (`sentence_transformers.models.Pooling` and `Normalize`).
//!
//! Works on one row at a time over plain slices so that the caller decides where the output lives;
//! allocates nothing.

use std::path::Path;

use crate::error::{EncoderError, Result};

/// How token embeddings become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The first token's embedding (`[CLS]` / `<s>`), as bge-m3 uses.
    Cls,
    /// Mean over tokens with attention mask 1.
    Mean,
    /// Per-dimension max over tokens with attention mask 1.
    Max,
    /// The last token with attention mask 1.
    LastToken,
}

impl Pooling {
    /// Parses sentence-transformers' names (`cls`, `cls_token`, `mean`, `mean_tokens`, `max`,
    /// `max_tokens`, `lasttoken`); anything else is an error naming the config file.
    pub fn parse(mode: &str, path: &Path) -> Result<Self> {
        match mode.to_ascii_lowercase().as_str() {
            "cls" | "cls_token" => Ok(Self::Cls),
            "mean" | "mean_tokens" => Ok(Self::Mean),
            "max" | "max_tokens" => Ok(Self::Max),
            "lasttoken" | "last_token" => Ok(Self::LastToken),
            _ => Err(EncoderError::UnknownPooling {
                path: path.to_path_buf(),
                mode: mode.to_string(),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cls => "cls",
            Self::Mean => "mean",
            Self::Max => "max",
            Self::LastToken => "lasttoken",
        }
    }

    /// Pools one row. `tokens` is `seq_len × hidden` row-major, `mask` has `seq_len` entries with the
    /// real tokens first (right padding), `out` has `hidden` entries.
    pub fn pool_row(self, tokens: &[f32], mask: &[i64], hidden: usize, out: &mut [f32]) {
        let real = mask.iter().take_while(|&&m| m != 0).count();
        match self {
            Self::Cls => out.copy_from_slice(&tokens[..hidden]),
            Self::LastToken => {
                let last = real.saturating_sub(1);
                out.copy_from_slice(&tokens[last * hidden..(last + 1) * hidden]);
            }
            Self::Mean => {
                out.fill(0.0);
                for t in tokens.chunks_exact(hidden).take(real) {
                    out.iter_mut().zip(t).for_each(|(o, v)| *o += v);
                }
                // sentence-transformers clamps the token count at 1e-9 to avoid dividing by zero.
                let n = (real as f32).max(1e-9);
                out.iter_mut().for_each(|o| *o /= n);
            }
            Self::Max => {
                // sentence-transformers sets masked positions to -1e9 before the max.
                out.fill(-1e9);
                for t in tokens.chunks_exact(hidden).take(real) {
                    out.iter_mut().zip(t).for_each(|(o, &v)| *o = o.max(v));
                }
            }
        }
    }
}

/// Divides `v` by its L2 norm, as `torch.nn.functional.normalize` does (norm floored at 1e-12).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKENS: [f32; 6] = [1.0, 2.0, 3.0, -4.0, 100.0, 100.0];

    fn pooled(p: Pooling, mask: &[i64]) -> Vec<f32> {
        let mut out = vec![0.0; 2];
        p.pool_row(&TOKENS, mask, 2, &mut out);
        out
    }

    #[test]
    fn pooling_ignores_padding() {
        let mask = [1, 1, 0];
        assert_eq!(pooled(Pooling::Cls, &mask), vec![1.0, 2.0]);
        assert_eq!(pooled(Pooling::Mean, &mask), vec![2.0, -1.0]);
        assert_eq!(pooled(Pooling::Max, &mask), vec![3.0, 2.0]);
        assert_eq!(pooled(Pooling::LastToken, &mask), vec![3.0, -4.0]);
        assert_eq!(pooled(Pooling::Max, &[1, 1, 1]), vec![100.0, 100.0]);
    }

    #[test]
    fn parse_rejects_unknown_modes() {
        assert_eq!(
            Pooling::parse("cls_token", Path::new("x")).unwrap(),
            Pooling::Cls
        );
        let err =
            Pooling::parse("weightedmean_tokens", Path::new("1_Pooling/config.json")).unwrap_err();
        assert!(err.to_string().contains("weightedmean_tokens"));
    }

    #[test]
    fn normalize_gives_unit_norm_and_keeps_zero() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0, 0.0];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }
}
