//! Sharded backfills: `--shard INDEX/COUNT` splits one pipeline's sources among COUNT runs (the pods of
//! a Kubernetes Indexed Job) that append to one dataset. A source belongs to the shard its stable hash
//! picks (file sources: the file's path; SQL sources: the row's id), so every run agrees on the split
//! without talking to the others, and a rerun of a shard (`--resume`) redoes only that shard's part.

use std::fmt;
use std::str::FromStr;

/// One of `count` shards (`index` in `0..count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether the source (or row) named `key` belongs to this shard.
    pub fn owns(&self, key: &str) -> bool {
        self.count <= 1 || stable_hash(key) % u64::from(self.count) == u64::from(self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `INDEX/COUNT`, e.g. `0/4` … `3/4`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// FNV-1a, 64 bits: fixed by its definition, so every run, build and platform splits alike (std's
/// hasher is seeded per process).
fn stable_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_what_is_not_index_of_count() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "1/0", "x/4", "1", "-1/4", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("INDEX/COUNT"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_key_belongs_to_exactly_one_shard_and_the_split_is_even() {
        let shards: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        let mut per_shard = [0usize; 4];
        for i in 0..4000 {
            let key = format!("boe-{i}");
            let owners: Vec<usize> = (0..4).filter(|&s| shards[s].owns(&key)).collect();
            assert_eq!(owners.len(), 1, "{key}: {owners:?}");
            per_shard[owners[0]] += 1;
        }
        assert!(
            per_shard.iter().all(|&n| (850..1150).contains(&n)),
            "{per_shard:?}"
        );
        // The published FNV-1a 64 test vector: the hash does not depend on this build.
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert!(Shard { index: 0, count: 1 }.owns("anything"));
    }
}
