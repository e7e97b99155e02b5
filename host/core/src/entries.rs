//! State as entries (key bytes → value bytes), and the [`Changes`] to them
//! between two checkpoints: what makes a checkpoint incremental.
//!
//! A step that keeps its state as entries reports, at each checkpoint, only
//! the entries put or removed since the one before ([`crate::step::Step::changes`]);
//! the checkpoint store keeps a chain of such changes on a whole state and
//! folds them together ([`Changes::apply`]) to restore. What a key or value
//! means is the step's business: here they are bytes, ordered bytewise.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A state as entries, ordered by key.
pub type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// The first bytes of [`encode`]d entries: a step's `restore` tells them
/// from the older whole-snapshot formats by these (long enough that no
/// older snapshot begins with them by chance).
pub const MAGIC: &[u8; 16] = b"WEIR ENTRIES v1\n";

/// What changed in a state since the last checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The whole state: everything held before is dropped first.
    pub whole: bool,
    /// Key ranges `[from, to)` removed (windows that closed for good).
    pub removed_ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// Keys removed.
    pub removed: Vec<Vec<u8>>,
    /// Entries put (new or changed), applied after the removals.
    pub put: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Changes {
    /// A whole state.
    pub fn whole(put: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        Changes { whole: true, put, ..Changes::default() }
    }

    /// Applies these changes to `state`.
    pub fn apply(self, state: &mut Entries) {
        if self.whole {
            state.clear();
        }
        for (from, to) in &self.removed_ranges {
            if from < to {
                let mut doomed = state.split_off(from);
                state.append(&mut doomed.split_off(to));
            }
        }
        for k in &self.removed {
            state.remove(k);
        }
        state.extend(self.put);
    }
}

/// Entries as bytes, the form a step's `restore` gets them in.
pub fn encode(state: &Entries) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(postcard::to_stdvec(state).expect("entries serialize"));
    out
}

/// Entries from [`encode`]d bytes; `None` when the bytes are in another
/// format (a step's whole snapshot).
pub fn decode(bytes: &[u8]) -> Option<Result<Entries, String>> {
    let body = bytes.strip_prefix(MAGIC.as_slice())?;
    Some(postcard::from_bytes(body).map_err(|e| format!("state entries are unreadable: {e}")))
}

/// An `i64` as 8 bytes that order as the numbers do (sign bit flipped, big
/// endian): for keys ordered by time.
pub fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`ordered_i64`].
pub fn from_ordered_i64(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = Changes> {
        let key = proptest::collection::vec(0u8..4, 0..3);
        (
            any::<bool>(),
            proptest::collection::vec((key.clone(), key.clone()), 0..2),
            proptest::collection::vec(key.clone(), 0..3),
            proptest::collection::vec((key, proptest::collection::vec(any::<u8>(), 0..3)), 0..5),
        )
            .prop_map(|(whole, removed_ranges, removed, put)| Changes { whole, removed_ranges, removed, put })
    }

    proptest! {
        #[test]
        fn applying_changes_is_removing_then_putting(
            start in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..3), proptest::collection::vec(any::<u8>(), 0..3), 0..6),
            c in op(),
        ) {
            let mut applied = start.clone();
            c.clone().apply(&mut applied);
            let mut expected = if c.whole { Entries::new() } else { start };
            expected.retain(|k, _| !c.removed.contains(k) && !c.removed_ranges.iter().any(|(f, t)| f <= k && k < t));
            expected.extend(c.put.iter().cloned());
            prop_assert_eq!(applied, expected);
        }

        #[test]
        fn ordered_i64_orders_as_the_numbers(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(a.cmp(&b), ordered_i64(a).cmp(&ordered_i64(b)));
            prop_assert_eq!(from_ordered_i64(ordered_i64(a)), a);
        }
    }

    #[test]
    fn entries_round_trip_and_other_formats_are_told_apart() {
        let state: Entries = [(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), vec![])].into();
        assert_eq!(decode(&encode(&state)).unwrap().unwrap(), state);
        assert!(decode(&[1, 2, 3]).is_none(), "a whole snapshot is not entries");
        assert!(decode(b"WEIR ENTRIES v1\n\xff\xff").unwrap().is_err());
    }
}
