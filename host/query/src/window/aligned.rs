//! State of epoch-aligned windows (tumbling and hopping): one set of
//! running aggregates per window and key, updated as events arrive, so
//! memory grows with windows × keys, never with events.

use super::tumbling::end_of;
use super::{Acc, Aggregates, Ctx, Input, Key, Placed, Row, RowKind, expired, fired};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

type Hasher = foldhash::fast::RandomState;

/// Which windows hold an event: windows `size` long ending on multiples of `hop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assigner {
    pub size: i64,
    pub hop: i64,
}

impl Assigner {
    /// Ends of the windows `(end − size, end]` holding `t`, ascending.
    #[inline]
    pub fn ends(self, t: i64) -> impl Iterator<Item = i64> {
        let first = end_of(t, self.hop);
        let limit = t.saturating_add(self.size);
        // Checked: no time can make this wrap and loop (times are bounded at
        // ingestion, see `TimeRange`, but this holds for any i64).
        (0..)
            .map_while(move |k: i64| k.checked_mul(self.hop).and_then(|o| first.checked_add(o)))
            .take_while(move |end| *end < limit)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Slot {
    accs: Vec<Acc>,
    /// The values last emitted, kept while the window accepts late events.
    emitted: Option<Vec<Option<f64>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aligned {
    assign: Assigner,
    /// Open windows by end, then key.
    windows: BTreeMap<i64, HashMap<Key, Slot, Hasher>>,
}

impl Aligned {
    pub fn new(assign: Assigner) -> Self {
        Aligned { assign, windows: BTreeMap::new() }
    }

    pub fn open(&self) -> usize {
        self.windows.values().map(HashMap::len).sum()
    }

    /// Keeps only the keys `keep` accepts.
    pub fn retain(&mut self, keep: &dyn Fn(&[u8]) -> bool) {
        for by_key in self.windows.values_mut() {
            by_key.retain(|k, _| keep(k));
        }
        self.windows.retain(|_, by_key| !by_key.is_empty());
    }

    /// Adds the keys of `other` (which holds none of this one's).
    pub fn absorb(&mut self, other: Aligned) {
        for (end, by_key) in other.windows {
            self.windows.entry(end).or_default().extend(by_key);
        }
    }

    pub fn insert(&mut self, c: Ctx<'_>, e: Input<'_>, out: &mut Vec<Row>) -> Placed {
        let (Ctx { aggs, lateness, w }, Input { key, t, args }) = (c, e);
        let mut placed = Placed::Late;
        for end in self.assign.ends(t) {
            if expired(end, lateness, w) {
                continue;
            }
            placed = Placed::Accepted;
            let by_key = self.windows.entry(end).or_default();
            let slot = match by_key.get_mut(key) {
                Some(slot) => slot,
                None => by_key.entry(key.into()).or_insert_with(|| Slot { accs: aggs.start(), emitted: None }),
            };
            aggs.add(&mut slot.accs, args);
            if fired(end, w) {
                let values = aggs.finish(&slot.accs);
                let previous = slot.emitted.replace(values.clone());
                let start = end - self.assign.size;
                out.push(Row { key: key.into(), start, end, values, kind: RowKind::Correction, previous });
            }
        }
        placed
    }

    pub fn advance(&mut self, aggs: &Aggregates, lateness: i64, old: i64, w: i64, out: &mut Vec<Row>) {
        let size = self.assign.size;
        // Windows ending in [old, w) fire now; those before `old` fired earlier.
        for (&end, by_key) in self.windows.range_mut(old..w) {
            let keep = !expired(end, lateness, w);
            for (key, slot) in by_key.iter_mut() {
                let values = aggs.finish(&slot.accs);
                if keep {
                    slot.emitted = Some(values.clone());
                }
                out.push(Row {
                    key: key.clone(),
                    start: end - size,
                    end,
                    values,
                    kind: RowKind::Final,
                    previous: None,
                });
            }
        }
        // Drop the windows that can no longer change.
        while let Some(entry) = self.windows.first_entry() {
            if !expired(*entry.key(), lateness, w) {
                break;
            }
            entry.remove();
        }
    }
}
