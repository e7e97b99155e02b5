//! Key groups. Every key hashes to one of `max_parallelism` key groups, and
//! the groups are dealt to the shards in contiguous ranges (as Flink does):
//! a shard owns all state of its groups, and a restart with another
//! parallelism moves whole groups. The hash is xxh3 of the key's canonical
//! bytes, with no seed, so a key's group is the same in every process.

use crate::event::Cell;
use std::ops::Range;

/// Key groups when `[pipeline] max_parallelism` is not given.
pub const DEFAULT_MAX_PARALLELISM: u16 = 128;
/// The most key groups a pipeline may have.
pub const MAX_KEY_GROUPS: u16 = 32_768;

/// The hash of a key's canonical bytes (see [`canonical`]).
pub fn hash(canonical: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(canonical)
}

/// The key group of a key hash.
pub fn group(hash: u64, max_parallelism: u16) -> u16 {
    (hash % u64::from(max_parallelism.max(1))) as u16
}

/// The shard that owns key group `group`.
pub fn shard_of(group: u16, max_parallelism: u16, parallelism: u16) -> u16 {
    (u32::from(group) * u32::from(parallelism) / u32::from(max_parallelism.max(1))) as u16
}

/// The key groups shard `shard` owns: the inverse of [`shard_of`].
pub fn groups_of(shard: u16, max_parallelism: u16, parallelism: u16) -> Range<u16> {
    let (max, p) = (u32::from(max_parallelism), u32::from(parallelism.max(1)));
    let first = |s: u32| (s * max).div_ceil(p) as u16;
    first(u32::from(shard))..first(u32::from(shard) + 1)
}

/// The keys a shard owns after a rescale: those of its key groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFilter {
    /// The field the keys are the values of (the key field, or the
    /// query's GROUP BY field the events were routed by).
    pub field: String,
    pub groups: Range<u16>,
    pub max_parallelism: u16,
}

impl KeyFilter {
    /// Whether the key with these canonical bytes is in the shard's groups.
    pub fn owns(&self, canonical: &[u8]) -> bool {
        self.groups.contains(&group(hash(canonical), self.max_parallelism))
    }
}

/// A key value's canonical bytes, appended to `out`: a string's text
/// (unescaped), a number as its shortest `f64` form, a boolean as
/// `true`/`false`. Plugin keyed state uses the same bytes, so its entries
/// can be placed in their key groups.
pub fn canonical(cell: &Cell, payload: &[u8], escaped: &[String], out: &mut Vec<u8>) {
    match cell {
        Cell::Str { start, end } => out.extend_from_slice(&payload[*start as usize..*end as usize]),
        Cell::Escaped(i) => out.extend_from_slice(escaped[*i as usize].as_bytes()),
        Cell::Num(n) => out.extend_from_slice(number(*n).as_bytes()),
        Cell::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Cell::Null | Cell::Nested => {}
    }
}

/// A number's canonical text.
pub fn number(n: f64) -> String {
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_group_has_exactly_one_shard_and_the_ranges_tile_the_groups(max in 1u16..=1024, p in 1u16..=64) {
            let p = p.min(max);
            let mut next = 0;
            for shard in 0..p {
                let r = groups_of(shard, max, p);
                prop_assert_eq!(r.start, next, "contiguous");
                prop_assert!(!r.is_empty(), "every shard owns a group when p <= max");
                for g in r.clone() {
                    prop_assert_eq!(shard_of(g, max, p), shard);
                }
                next = r.end;
            }
            prop_assert_eq!(next, max);
        }
    }

    #[test]
    fn the_hash_is_fixed_across_processes_and_versions() {
        // xxh3-64 of "patient-7" with no seed: a change here moves every key's state.
        assert_eq!(hash(b"patient-7"), xxhash_rust::xxh3::xxh3_64_with_seed(b"patient-7", 0));
        assert_eq!(group(hash(b""), 128), (0x2d06800538d394c2u64 % 128) as u16);
        assert_eq!(number(7.0), "7");
        assert_eq!(number(7.5), "7.5");
    }
}
