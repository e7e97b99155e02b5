//! Sliding windows, with Azure Stream Analytics semantics: a row at every
//! time `T` the content of `(T − size, T]` changes — when an event enters
//! (`T = t`) or leaves (`T = t + size`) — and only when it is not empty.
//!
//! Each key keeps its events (time and argument values) for as long as an
//! open window can hold them, and computes a row from them when it fires.

use super::{Aggregates, Ctx, Input, Key, Placed, Row, RowKind, expired, fired};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

type Hasher = foldhash::fast::RandomState;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyState {
    /// Event times, ascending (ties in arrival order).
    ts: Vec<i64>,
    /// Argument values, `stride` per event, in the order of `ts`.
    args: Vec<Option<f64>>,
    /// Fired windows still open to late events, by `T`, with the values emitted.
    emitted: BTreeMap<i64, Vec<Option<f64>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sliding {
    size: i64,
    stride: usize,
    keys: HashMap<Key, KeyState, Hasher>,
    /// Change points that have not fired yet.
    pending: BTreeSet<(i64, Key)>,
    /// Watermark of the last sweep of expired state.
    swept: i64,
}

impl Sliding {
    /// Keeps only the keys `keep` accepts.
    pub fn retain(&mut self, keep: &dyn Fn(&[u8]) -> bool) {
        self.keys.retain(|k, _| keep(k));
        self.pending.retain(|(_, k)| keep(k));
    }

    /// Adds the keys of `other` (which holds none of this one's).
    pub fn absorb(&mut self, other: Sliding) {
        self.stride = self.stride.max(other.stride);
        self.swept = self.swept.min(other.swept);
        self.keys.extend(other.keys);
        self.pending.extend(other.pending);
    }
}

impl KeyState {
    fn values(&self, aggs: &Aggregates, stride: usize, size: i64, point: i64) -> Option<Vec<Option<f64>>> {
        let lo = self.ts.partition_point(|&t| t <= point.saturating_sub(size));
        let hi = self.ts.partition_point(|&t| t <= point);
        (lo < hi).then(|| aggs.over(super::rows(&self.args, stride, lo, hi)))
    }
}

impl Sliding {
    pub fn new(size: i64) -> Self {
        Sliding { size, stride: 0, keys: HashMap::default(), pending: BTreeSet::new(), swept: i64::MIN }
    }

    pub fn open(&self) -> usize {
        self.keys.len()
    }

    pub fn insert(&mut self, c: Ctx<'_>, e: Input<'_>, out: &mut Vec<Row>) -> Placed {
        let (Ctx { aggs, lateness, w }, Input { key, t, args }) = (c, e);
        let size = self.size;
        // The windows holding the event are T in [t, t + size): is one still open?
        if t.saturating_add(size).saturating_add(lateness) <= w {
            return Placed::Late;
        }
        self.stride = args.len();
        let ks = match self.keys.get_mut(key) {
            Some(ks) => ks,
            None => self.keys.entry(key.into()).or_default(),
        };
        let at = ks.ts.partition_point(|&x| x <= t);
        ks.ts.insert(at, t);
        let stride = self.stride;
        ks.args.splice(at * stride..at * stride, args.iter().copied());

        let exit = t.saturating_add(size);
        if !fired(exit, w) {
            self.pending.insert((exit, key.into()));
        }
        if !fired(t, w) {
            self.pending.insert((t, key.into()));
            return Placed::Accepted;
        }
        // A late event: every fired window still open that holds it changes,
        // its own entry point included.
        let mut points: Vec<i64> =
            ks.emitted.range(t.max(w.saturating_sub(lateness))..exit.min(w)).map(|(p, _)| *p).collect();
        if !expired(t, lateness, w) && !ks.emitted.contains_key(&t) {
            points.push(t);
        }
        for point in points {
            let values = ks.values(aggs, stride, size, point).expect("the window holds the new event");
            let previous = ks.emitted.insert(point, values.clone());
            let (start, end) = (point.saturating_sub(size), point);
            out.push(Row { key: key.into(), start, end, values, kind: RowKind::Correction, previous });
        }
        Placed::Accepted
    }

    pub fn advance(&mut self, aggs: &Aggregates, lateness: i64, w: i64, out: &mut Vec<Row>) {
        let (size, stride) = (self.size, self.stride);
        while let Some((point, _)) = self.pending.first()
            && fired(*point, w)
        {
            let (point, key) = self.pending.pop_first().expect("checked above");
            let Some(ks) = self.keys.get_mut(&key) else { continue };
            if let Some(values) = ks.values(aggs, stride, size, point) {
                if !expired(point, lateness, w) {
                    ks.emitted.insert(point, values.clone());
                }
                let start = point.saturating_sub(size);
                out.push(Row { key, start, end: point, values, kind: RowKind::Final, previous: None });
            }
        }
        // Expired state only takes memory (lateness is decided from times,
        // not from what is kept), so it is swept once per window length.
        if w == i64::MAX || w.saturating_sub(self.swept) >= size {
            self.swept = w;
            self.keys.retain(|_, ks| {
                ks.emitted.retain(|p, _| !expired(*p, lateness, w));
                let keep_from = ks.ts.partition_point(|&t| t.saturating_add(size).saturating_add(lateness) <= w);
                ks.ts.drain(..keep_from);
                ks.args.drain(..keep_from * stride);
                !(ks.ts.is_empty() && ks.emitted.is_empty())
            });
        }
    }
}
