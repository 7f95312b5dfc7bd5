//! Matryoshka dimensions: the `Dim` newtype and the validated list of dims an encoder produces.
//!
//! A Matryoshka prefix is the first `d` values of the full embedding, L2-renormalised. This module owns
//! which `d` are allowed; it does no arithmetic on vectors (see `matryoshka`).

use crate::error::{EncoderError, Result};

/// One embedding width: the number of leading values kept from the full vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dim(pub u32);

impl Dim {
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `dims` widest first, each once: the order every column list, ladder and dataset uses (the widest is
/// the full vector, the others its prefixes).
pub fn widest_first(dims: impl IntoIterator<Item = Dim>) -> Vec<Dim> {
    let mut dims: Vec<Dim> = dims.into_iter().collect();
    dims.sort_unstable_by(|a, b| b.cmp(a));
    dims.dedup();
    dims
}

/// The Matryoshka ladder used by the production model family (bge-m3 fine-tunes with 1024 dims).
pub const BGE_M3_LADDER: [u32; 6] = [1024, 768, 512, 256, 128, 64];

/// The dims a model is configured to serve, largest first; the first is always the full width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatryoshkaDims {
    dims: Vec<Dim>,
}

impl MatryoshkaDims {
    /// The default ladder for a model whose embeddings have `full` values: the bge-m3 ladder for 1024,
    /// otherwise the full width alone.
    pub fn default_for(full: u32) -> Self {
        if full == 1024 {
            Self {
                dims: BGE_M3_LADDER.iter().map(|&d| Dim(d)).collect(),
            }
        } else {
            Self {
                dims: vec![Dim(full)],
            }
        }
    }

    /// The full width plus the listed dims, each checked against it; sorted largest first, deduplicated.
    pub fn with_listed(full: u32, listed: &[u32]) -> Result<Self> {
        let checked = listed
            .iter()
            .map(|&d| check_dim(d, full))
            .collect::<Result<Vec<Dim>>>()?;
        Ok(Self {
            dims: widest_first(std::iter::once(Dim(full)).chain(checked)),
        })
    }

    pub fn full(&self) -> Dim {
        self.dims[0]
    }

    pub fn as_slice(&self) -> &[Dim] {
        &self.dims
    }

    pub fn contains(&self, d: Dim) -> bool {
        self.dims.contains(&d)
    }

    /// `d` if the model serves it, else an error listing the allowed dims.
    pub fn require(&self, d: u32) -> Result<Dim> {
        let dim = check_dim(d, self.full().0)?;
        if self.contains(dim) {
            Ok(dim)
        } else {
            Err(EncoderError::UnsupportedDim {
                requested: d,
                allowed: self.dims.iter().map(|d| d.0).collect(),
            })
        }
    }
}

/// `d` as a `Dim` if it is a valid prefix of a `full`-wide vector.
pub fn check_dim(d: u32, full: u32) -> Result<Dim> {
    if d == 0 {
        return Err(EncoderError::ZeroDim);
    }
    if d > full {
        return Err(EncoderError::DimTooLarge { requested: d, full });
    }
    Ok(Dim(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bge_m3_width_gets_the_full_ladder() {
        let dims = MatryoshkaDims::default_for(1024);
        let got: Vec<u32> = dims.as_slice().iter().map(|d| d.0).collect();
        assert_eq!(got, vec![1024, 768, 512, 256, 128, 64]);
        assert_eq!(MatryoshkaDims::default_for(384).as_slice(), &[Dim(384)]);
    }

    #[test]
    fn listed_dims_are_sorted_deduplicated_and_checked() {
        let dims = MatryoshkaDims::with_listed(384, &[64, 128, 64, 384]).unwrap();
        assert_eq!(dims.as_slice(), &[Dim(384), Dim(128), Dim(64)]);
        assert!(matches!(
            MatryoshkaDims::with_listed(384, &[512]),
            Err(EncoderError::DimTooLarge {
                requested: 512,
                full: 384
            })
        ));
        assert!(matches!(
            MatryoshkaDims::with_listed(384, &[0]),
            Err(EncoderError::ZeroDim)
        ));
    }

    #[test]
    fn require_names_the_allowed_dims() {
        let dims = MatryoshkaDims::default_for(1024);
        assert_eq!(dims.require(256).unwrap(), Dim(256));
        let err = dims.require(300).unwrap_err().to_string();
        assert!(
            err.contains("300") && err.contains("[1024, 768, 512, 256, 128, 64]"),
            "{err}"
        );
    }
}
