//! Session windows: a key's events each within `timeout` of the one
//! before, for at most `max` after the first. A session is
//! `[first, min(last + timeout, first + max)]`; it fires when the watermark
//! passes that end. A late event may extend, start or merge sessions: the
//! changed ones are emitted as corrections, and a session merged into an
//! earlier one is retracted. A late event is refused when its own
//! one-event session, or the session it lands in, is already closed; a
//! closed session is never reopened (as in Flink), so such an event
//! starts a new session if it is still in time for one.
//!
//! Each key keeps the events of its open sessions and splits them into
//! sessions again whenever they change.

use super::{Aggregates, Ctx, Input, Key, Placed, Row, RowKind, expired, fired};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

type Hasher = foldhash::fast::RandomState;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyState {
    /// Event times, ascending (ties in arrival order).
    ts: Vec<i64>,
    /// Argument values, `stride` per event, in the order of `ts`.
    args: Vec<Option<f64>>,
    /// Sessions emitted and still open to late events: start → (end, values).
    emitted: BTreeMap<i64, (i64, Vec<Option<f64>>)>,
    /// When this key next needs attention (in `Session::due`).
    due: Option<i64>,
}

/// One session: events `lo..hi` of a key.
#[derive(Debug, Clone, Copy)]
struct Span {
    lo: usize,
    hi: usize,
    start: i64,
    end: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    timeout: i64,
    max: Option<i64>,
    stride: usize,
    keys: HashMap<Key, KeyState, Hasher>,
    /// (time, key): the key has a session to fire or to close once the
    /// watermark passes the time.
    due: BTreeSet<(i64, Key)>,
}

impl Session {
    /// Keeps only the keys `keep` accepts.
    pub fn retain(&mut self, keep: &dyn Fn(&[u8]) -> bool) {
        self.keys.retain(|k, _| keep(k));
        self.due.retain(|(_, k)| keep(k));
    }

    /// Adds the keys of `other` (which holds none of this one's).
    pub fn absorb(&mut self, other: Session) {
        self.stride = self.stride.max(other.stride);
        self.keys.extend(other.keys);
        self.due.extend(other.due);
    }

    pub fn new(timeout: i64, max: Option<i64>) -> Self {
        Session { timeout, max, stride: 0, keys: HashMap::default(), due: BTreeSet::new() }
    }

    pub fn open(&self) -> usize {
        self.keys.len()
    }

    fn spans(&self, ts: &[i64]) -> Vec<Span> {
        let mut spans = Vec::new();
        let mut lo = 0;
        while lo < ts.len() {
            let (start, mut last, mut hi) = (ts[lo], ts[lo], lo + 1);
            while hi < ts.len()
                && ts[hi] - last <= self.timeout
                && self.max.is_none_or(|m| ts[hi].saturating_sub(start) < m)
            {
                last = ts[hi];
                hi += 1;
            }
            let mut end = last.saturating_add(self.timeout);
            if let Some(m) = self.max {
                end = end.min(start.saturating_add(m));
            }
            spans.push(Span { lo, hi, start, end });
            lo = hi;
        }
        spans
    }

    fn values(&self, aggs: &Aggregates, ks: &KeyState, s: Span) -> Vec<Option<f64>> {
        let stride = self.stride;
        aggs.over(super::rows(&ks.args, stride, s.lo, s.hi))
    }

    /// Drops the sessions of `key` that no late event can change any more.
    fn close_expired(&mut self, key: &[u8], lateness: i64, w: i64) {
        let Some(ks) = self.keys.get(key) else { return };
        let spans = self.spans(&ks.ts);
        let closed = spans.iter().take_while(|s| expired(s.end, lateness, w)).last().copied();
        if let Some(last) = closed {
            let stride = self.stride;
            let ks = self.keys.get_mut(key).expect("present above");
            ks.ts.drain(..last.hi);
            ks.args.drain(..last.hi * stride);
            ks.emitted.retain(|start, _| *start > last.start);
        }
    }

    /// Emits what changed among the fired sessions of `key` and schedules it again.
    fn settle(&mut self, aggs: &Aggregates, lateness: i64, w: i64, key: &[u8], kind: RowKind, out: &mut Vec<Row>) {
        let Some(ks) = self.keys.get(key) else { return };
        let spans = self.spans(&ks.ts);
        let mut rows = Vec::new();
        for s in spans.iter().filter(|s| fired(s.end, w)) {
            let values = self.values(aggs, ks, *s);
            let previous = ks.emitted.get(&s.start);
            if previous.is_some_and(|(end, v)| *end == s.end && *v == values) {
                continue;
            }
            let kind = if previous.is_some() { RowKind::Correction } else { kind };
            let previous = previous.map(|(_, v)| v.clone());
            rows.push(Row { key: key.into(), start: s.start, end: s.end, values, kind, previous });
        }
        let ks = self.keys.get_mut(key).expect("present above");
        // Emitted sessions that no longer start a session were merged away.
        let starts: BTreeSet<i64> = spans.iter().map(|s| s.start).collect();
        let gone: Vec<i64> = ks.emitted.keys().filter(|s| !starts.contains(s)).copied().collect();
        for start in gone {
            let (end, values) = ks.emitted.remove(&start).expect("listed above");
            out.push(Row { key: key.into(), start, end, values, kind: RowKind::Retraction, previous: None });
        }
        for row in rows {
            if !expired(row.end, lateness, w) {
                ks.emitted.insert(row.start, (row.end, row.values.clone()));
            }
            out.push(row);
        }
    }

    /// Puts `key` in `due` at the time it next needs attention: the end of
    /// its first session still to fire, or the close of a fired one. A key
    /// with nothing left is dropped.
    fn schedule(&mut self, lateness: i64, w: i64, key: &[u8]) {
        let Some(ks) = self.keys.get_mut(key) else { return };
        if let Some(old) = ks.due.take() {
            self.due.remove(&(old, Key::from(key)));
        }
        let ks = &self.keys[key];
        let next = self
            .spans(&ks.ts)
            .iter()
            .filter(|s| !expired(s.end, lateness, w))
            .map(|s| if fired(s.end, w) { s.end.saturating_add(lateness) } else { s.end })
            .min();
        match next {
            Some(t) => {
                self.keys.get_mut(key).expect("present above").due = Some(t);
                self.due.insert((t, key.into()));
            }
            None => {
                self.keys.remove(key);
            }
        }
    }

    pub fn insert(&mut self, c: Ctx<'_>, e: Input<'_>, out: &mut Vec<Row>) -> Placed {
        let (Ctx { aggs, lateness, w }, Input { key, t, args }) = (c, e);
        // As in Flink: a late event whose own one-event session would already
        // be closed is refused before it can merge with anything.
        let alone = t.saturating_add(self.max.map_or(self.timeout, |m| m.min(self.timeout)));
        if expired(alone, lateness, w) {
            return Placed::Late;
        }
        self.stride = args.len();
        self.close_expired(key, lateness, w);
        let stride = self.stride;
        let ks = match self.keys.get_mut(key) {
            Some(ks) => ks,
            None => self.keys.entry(key.into()).or_insert_with(|| KeyState {
                ts: Vec::new(),
                args: Vec::new(),
                emitted: BTreeMap::new(),
                due: None,
            }),
        };
        let at = ks.ts.partition_point(|&x| x <= t);
        ks.ts.insert(at, t);
        ks.args.splice(at * stride..at * stride, args.iter().copied());
        if !fired(t, w) {
            self.settle(aggs, lateness, w, key, RowKind::Final, out);
            self.schedule(lateness, w, key);
            return Placed::Accepted;
        }
        // A late event that makes a session starting earlier, which is
        // already closed, is refused too.
        let spans = self.spans(&self.keys[key].ts);
        let own = spans.iter().find(|s| s.lo <= at && at < s.hi).expect("every event is in a session");
        if expired(own.end, lateness, w) {
            let ks = self.keys.get_mut(key).expect("present above");
            ks.ts.remove(at);
            ks.args.drain(at * stride..(at + 1) * stride);
            if ks.ts.is_empty() && ks.due.is_none() {
                self.keys.remove(key);
            }
            return Placed::Late;
        }
        self.settle(aggs, lateness, w, key, RowKind::Correction, out);
        self.schedule(lateness, w, key);
        Placed::Accepted
    }

    pub fn advance(&mut self, aggs: &Aggregates, lateness: i64, w: i64, out: &mut Vec<Row>) {
        while let Some((t, _)) = self.due.first()
            && fired(*t, w)
        {
            let (_, key) = self.due.pop_first().expect("checked above");
            if let Some(ks) = self.keys.get_mut(&key) {
                ks.due = None;
            }
            self.settle(aggs, lateness, w, &key, RowKind::Final, out);
            self.close_expired(&key, lateness, w);
            self.schedule(lateness, w, &key);
        }
    }
}
