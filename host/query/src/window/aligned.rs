//! State of epoch-aligned windows (tumbling and hopping): one set of
//! running aggregates per window and key, updated as events arrive, so
//! memory grows with windows × keys, never with events.

use super::tumbling::end_of;
use super::{Acc, Aggregates, Ctx, Input, Key, Placed, Row, RowKind, expired, fired};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use weir_core::entries::{self, Changes};

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
    /// Changed since the last checkpoint's [`Aligned::changes`].
    #[serde(skip)]
    dirty: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aligned {
    assign: Assigner,
    /// Open windows by end, then key.
    windows: BTreeMap<i64, HashMap<Key, Slot, Hasher>>,
    /// The (end, key) of each slot that became dirty since the last
    /// [`Aligned::changes`]: what an incremental checkpoint writes.
    #[serde(skip)]
    changed: Vec<(i64, Key)>,
    /// The latest end of the windows dropped since the last changes (every
    /// window ending at or before it is gone).
    #[serde(skip)]
    dropped_to: Option<i64>,
    /// Whether changes are tracked: from the first [`Aligned::changes`]
    /// on, so that a pipeline without incremental checkpoints keeps no list.
    #[serde(skip)]
    tracking: bool,
}

/// The first byte of a slot's entry key; the end and the group key follow.
const SLOT: u8 = 1;

impl Aligned {
    pub fn new(assign: Assigner) -> Self {
        Aligned { assign, windows: BTreeMap::new(), changed: Vec::new(), dropped_to: None, tracking: false }
    }

    /// The slots changed since the last call (`whole`, or the first call:
    /// every slot, and `out` marked whole) as entries under `prefix`, and
    /// the range of the windows dropped.
    pub fn changes(&mut self, prefix: &[u8], whole: bool, out: &mut Changes) {
        let entry = |end: i64, key: &[u8], slot: &Slot| {
            let mut k = Vec::with_capacity(prefix.len() + 9 + key.len());
            k.extend_from_slice(prefix);
            k.push(SLOT);
            k.extend_from_slice(&entries::ordered_i64(end));
            k.extend_from_slice(key);
            (k, postcard::to_stdvec(slot).expect("a window slot serializes"))
        };
        // Untracked until now (new or restored): all of it, marked so.
        let tracked = std::mem::replace(&mut self.tracking, true);
        let whole = whole || !tracked;
        out.whole |= whole;
        if whole {
            self.changed.clear();
            self.dropped_to = None;
            for (&end, by_key) in &mut self.windows {
                for (key, slot) in by_key.iter_mut() {
                    slot.dirty = false;
                    out.put.push(entry(end, key, slot));
                }
            }
            return;
        }
        if let Some(end) = self.dropped_to.take() {
            let mut from = prefix.to_vec();
            from.push(SLOT);
            let mut to = from.clone();
            match end.checked_add(1) {
                Some(next) => to.extend_from_slice(&entries::ordered_i64(next)),
                None => *to.last_mut().expect("SLOT pushed") += 1,
            }
            out.removed_ranges.push((from, to));
        }
        for (end, key) in self.changed.drain(..) {
            if let Some(slot) = self.windows.get_mut(&end).and_then(|w| w.get_mut(&key))
                && std::mem::take(&mut slot.dirty)
            {
                out.put.push(entry(end, &key, slot));
            }
        }
    }

    /// The state [`Aligned::changes`] entries under `prefix` add up to.
    pub fn from_entries(assign: Assigner, prefix: &[u8], state: &entries::Entries) -> Result<Self, String> {
        let mut a = Aligned::new(assign);
        let mut from = prefix.to_vec();
        from.push(SLOT);
        for (k, v) in state.range(from.clone()..).take_while(|(k, _)| k.starts_with(&from)) {
            let rest = &k[from.len()..];
            if rest.len() < 8 {
                return Err("a window slot's key is too short".into());
            }
            let end = entries::from_ordered_i64(rest[..8].try_into().expect("8 bytes"));
            let slot: Slot = postcard::from_bytes(v).map_err(|e| format!("a window slot is unreadable: {e}"))?;
            a.windows.entry(end).or_default().insert(rest[8..].into(), slot);
        }
        Ok(a)
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
                None => {
                    by_key.entry(key.into()).or_insert_with(|| Slot { accs: aggs.start(), emitted: None, dirty: false })
                }
            };
            aggs.add(&mut slot.accs, args);
            if self.tracking && !slot.dirty {
                slot.dirty = true;
                self.changed.push((end, key.into()));
            }
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
                    if self.tracking && !slot.dirty {
                        slot.dirty = true;
                        self.changed.push((end, key.clone()));
                    }
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
            if self.tracking {
                self.dropped_to = Some(*entry.key());
            }
            entry.remove();
        }
    }
}
