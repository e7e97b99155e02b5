//! A naive model of the window operators for the property tests: it keeps
//! every accepted event forever and recomputes each window from scratch,
//! following the rules in `window/mod.rs` as literally as possible.

use super::{Aggregates, Key, Placed, Row, RowKind, WindowKind, WindowSpec, expired, fired};
use std::collections::{BTreeMap, BTreeSet};

/// Values of a window.
type Values = Vec<Option<f64>>;

pub struct Reference {
    spec: WindowSpec,
    w: i64,
    /// Accepted events: key, time, arguments; in arrival order.
    events: Vec<(Key, i64, Vec<Option<f64>>)>,
    /// Everything emitted, by (key, start): end and values.
    emitted: BTreeMap<(Key, i64), (i64, Values)>,
    /// Sliding: change points not yet fired.
    pending: BTreeSet<(i64, Key)>,
}

impl Reference {
    pub fn new(spec: WindowSpec) -> Self {
        Reference { spec, w: i64::MIN, events: Vec::new(), emitted: BTreeMap::new(), pending: BTreeSet::new() }
    }

    fn lateness(&self) -> i64 {
        self.spec.lateness
    }

    /// Values of the window `(start, end]` of `key` over all accepted events
    /// (sessions: `[start, end]`).
    fn values(&self, key: &[u8], start: i64, end: i64) -> Option<Vec<Option<f64>>> {
        let rows: Vec<&[Option<f64>]> = self
            .events
            .iter()
            .filter(|(k, t, _)| &**k == key && *t > start && *t <= end)
            .map(|(_, _, a)| a.as_slice())
            .collect();
        (!rows.is_empty()).then(|| self.spec.aggregates.over(rows.into_iter()))
    }

    /// All aligned windows (start, end] holding `t`, by brute force.
    fn aligned(&self, t: i64) -> Vec<(i64, i64)> {
        let (size, hop) = match self.spec.kind {
            WindowKind::Tumbling { size } => (size, size),
            WindowKind::Hopping { size, hop } => (size, hop),
            _ => unreachable!(),
        };
        let mut end = (t - size).div_euclid(hop) * hop;
        let mut out = Vec::new();
        while end < t + size + hop {
            if end - size < t && t <= end {
                out.push((end - size, end));
            }
            end += hop;
        }
        out
    }

    /// Sessions of `key` over all accepted events: (start, end, values).
    fn sessions(&self, key: &[u8]) -> Vec<(i64, i64, Vec<Option<f64>>)> {
        let WindowKind::Session { timeout, max } = self.spec.kind else { unreachable!() };
        let mut evs: Vec<(i64, &[Option<f64>])> =
            self.events.iter().filter(|(k, ..)| &**k == key).map(|(_, t, a)| (*t, a.as_slice())).collect();
        evs.sort_by_key(|(t, _)| *t);
        type Open<'a> = (i64, i64, i64, Vec<&'a [Option<f64>]>); // start, last, end, members
        let mut out: Vec<Open> = Vec::new();
        for (t, a) in evs {
            match out.last_mut() {
                Some((start, last, end, members)) if t - *last <= timeout && max.is_none_or(|m| t - *start < m) => {
                    *last = t;
                    *end = (t + timeout).min(max.map_or(i64::MAX, |m| *start + m));
                    members.push(a);
                }
                _ => out.push((t, t, (t + timeout).min(max.map_or(i64::MAX, |m| t + m)), vec![a])),
            }
        }
        out.into_iter().map(|(s, _, e, m)| (s, e, self.spec.aggregates.over(m.into_iter()))).collect()
    }

    /// Forgets the events and results of the closed sessions of `key`.
    fn close_sessions(&mut self, key: &[u8]) {
        let (w, lateness) = (self.w, self.lateness());
        let sessions = self.sessions(key);
        let keep_from = sessions.iter().find(|(_, e, _)| !expired(*e, lateness, w)).map_or(i64::MAX, |(s, ..)| *s);
        self.events.retain(|(k, t, _)| !(&**k == key && *t < keep_from));
        self.emitted.retain(|(k, s), _| !(&**k == key && *s < keep_from));
    }

    fn row(&mut self, key: &[u8], start: i64, end: i64, values: Vec<Option<f64>>, kind: RowKind) -> Row {
        let previous = self.emitted.insert((key.into(), start), (end, values.clone())).map(|(_, v)| v);
        let kind = if kind == RowKind::Final && previous.is_some() { RowKind::Correction } else { kind };
        Row { key: key.into(), start, end, values, kind, previous }
    }

    pub fn insert(&mut self, key: &[u8], t: i64, args: &[Option<f64>], out: &mut Vec<Row>) -> Placed {
        let (w, lateness) = (self.w, self.lateness());
        let first = out.len();
        match self.spec.kind {
            WindowKind::Tumbling { .. } | WindowKind::Hopping { .. } => {
                let open: Vec<_> = self.aligned(t).into_iter().filter(|(_, e)| !expired(*e, lateness, w)).collect();
                if open.is_empty() {
                    return Placed::Late;
                }
                self.events.push((key.into(), t, args.to_vec()));
                for (s, e) in open.into_iter().filter(|(_, e)| fired(*e, w)) {
                    let values = self.values(key, s, e).unwrap();
                    let row = self.row(key, s, e, values, RowKind::Correction);
                    out.push(row);
                }
            }
            WindowKind::Sliding { size } => {
                if t + size + lateness <= w {
                    return Placed::Late;
                }
                self.events.push((key.into(), t, args.to_vec()));
                for p in [t, t + size] {
                    if !fired(p, w) {
                        self.pending.insert((p, key.into()));
                    }
                }
                if fired(t, w) {
                    let mut points: BTreeSet<i64> = self
                        .emitted
                        .keys()
                        .filter(|(k, _)| &**k == key)
                        .map(|(_, s)| s + size)
                        .filter(|p| *p >= t && *p < t + size && fired(*p, w) && !expired(*p, lateness, w))
                        .collect();
                    if !expired(t, lateness, w) {
                        points.insert(t);
                    }
                    for p in points {
                        let values = self.values(key, p - size, p).unwrap();
                        let row = self.row(key, p - size, p, values, RowKind::Correction);
                        out.push(row);
                    }
                }
            }
            WindowKind::Session { timeout, max } => {
                if expired(t + max.map_or(timeout, |m| m.min(timeout)), lateness, w) {
                    return Placed::Late;
                }
                self.close_sessions(key);
                self.events.push((key.into(), t, args.to_vec()));
                let after = self.sessions(key);
                let own = after.iter().rev().find(|(s, ..)| *s <= t).unwrap();
                if fired(t, w) && expired(own.1, lateness, w) {
                    self.events.pop();
                    return Placed::Late;
                }
                let starts: BTreeSet<i64> = after.iter().map(|(s, ..)| *s).collect();
                let gone: Vec<(i64, i64, Vec<Option<f64>>)> = self
                    .emitted
                    .iter()
                    .filter(|((k, s), _)| &**k == key && !starts.contains(s))
                    .map(|((_, s), (e, v))| (*s, *e, v.clone()))
                    .collect();
                for (s, e, values) in gone {
                    self.emitted.remove(&(key.into(), s));
                    out.push(Row {
                        key: key.into(),
                        start: s,
                        end: e,
                        values,
                        kind: RowKind::Retraction,
                        previous: None,
                    });
                }
                self.settle_sessions(key, &after, RowKind::Correction, out);
            }
        }
        out[first..].sort_by(|a, b| (a.end, a.start, &a.key, a.kind).cmp(&(b.end, b.start, &b.key, b.kind)));
        Placed::Accepted
    }

    fn settle_sessions(
        &mut self,
        key: &[u8],
        sessions: &[(i64, i64, Vec<Option<f64>>)],
        kind: RowKind,
        out: &mut Vec<Row>,
    ) {
        let w = self.w;
        for (s, e, values) in sessions.iter().filter(|(_, e, _)| fired(*e, w)).cloned() {
            if self.emitted.get(&(key.into(), s)) == Some(&(e, values.clone())) {
                continue;
            }
            let row = self.row(key, s, e, values, kind);
            out.push(row);
        }
    }

    pub fn advance(&mut self, w: i64, out: &mut Vec<Row>) {
        if w <= self.w {
            return;
        }
        let old = std::mem::replace(&mut self.w, w);
        let first = out.len();
        let keys: BTreeSet<Key> = self.events.iter().map(|(k, ..)| k.clone()).collect();
        match self.spec.kind {
            WindowKind::Tumbling { .. } | WindowKind::Hopping { .. } => {
                let mut windows = BTreeSet::new();
                for (k, t, _) in &self.events {
                    for (s, e) in self.aligned(*t) {
                        if e >= old && e < w {
                            windows.insert((k.clone(), s, e));
                        }
                    }
                }
                for (k, s, e) in windows {
                    let values = self.values(&k, s, e).unwrap();
                    let row = self.row(&k, s, e, values, RowKind::Final);
                    out.push(row);
                }
            }
            WindowKind::Sliding { size } => {
                while let Some((p, _)) = self.pending.first()
                    && fired(*p, w)
                {
                    let (p, k) = self.pending.pop_first().unwrap();
                    if let Some(values) = self.values(&k, p - size, p) {
                        let row = self.row(&k, p - size, p, values, RowKind::Final);
                        out.push(row);
                    }
                }
            }
            WindowKind::Session { .. } => {
                for k in keys {
                    let sessions = self.sessions(&k);
                    self.settle_sessions(&k, &sessions, RowKind::Final, out);
                    self.close_sessions(&k);
                }
            }
        }
        out[first..].sort_by(|a, b| (a.end, a.start, &a.key, a.kind).cmp(&(b.end, b.start, &b.key, b.kind)));
    }
}

/// The aggregates a reference and an operator share.
pub fn aggregates(funcs: Vec<(super::AggFunc, usize)>) -> Aggregates {
    Aggregates { funcs }
}
