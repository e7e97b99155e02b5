//! Event-time windows: tumbling, hopping, sliding and session, grouped by
//! key, with watermarks, allowed lateness and corrections.
//!
//! Time is integer epoch milliseconds. As in Azure Stream Analytics, a
//! window `(start, end]` holds the events with `start < t <= end`.
//!
//! The watermark `W` is the earliest event time still on time: an event
//! with `t >= W` is on time, one with `t < W` is late. A window fires (its
//! row is emitted) once `W > end`. It stays open for `lateness` more: until
//! `W > end + lateness` a late event still updates it and its row is emitted
//! again as a [`RowKind::Correction`]. A late event that no open window
//! takes is refused ([`Placed::Late`]); the caller sends it to the late
//! output. `finish` is the final watermark: every window fires.
//!
//! Whatever the batching, the output depends only on the order of events
//! and watermarks, so a replay gives the same rows.

mod aggregate;
mod aligned;
mod hopping;
mod session;
mod sliding;
mod tumbling;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub use aggregate::{Acc, AggFunc, Aggregates};

use serde::{Deserialize, Serialize};
use weir_core::entries::{Changes, Entries};

/// Group keys, encoded as bytes (see `query::key`); compared bytewise.
pub type Key = Box<[u8]>;

/// The kind of window and its sizes, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKind {
    /// Fixed, contiguous windows `(k·size, (k+1)·size]`.
    Tumbling { size: i64 },
    /// Windows of `size` every `hop`: `(k·hop − size, k·hop]`.
    Hopping { size: i64, hop: i64 },
    /// A window `(T − size, T]` at every time `T` an event enters
    /// (`T = t`) or leaves (`T = t + size`) it, when not empty.
    Sliding { size: i64 },
    /// Events of a key closer than `timeout` to the previous one, for at
    /// most `max` since the first: `[first, min(last + timeout, first + max)]`.
    Session { timeout: i64, max: Option<i64> },
}

/// What a window operator computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// Allowed lateness in milliseconds (0: none).
    pub lateness: i64,
    pub aggregates: Aggregates,
}

/// Why a row is emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RowKind {
    /// The window's first result, when the watermark passes its end.
    Final,
    /// A late event changed a window that had fired; `previous` holds the
    /// values emitted before, when there were any.
    Correction,
    /// A window that had fired no longer exists (two sessions merged);
    /// `values` are the ones emitted before.
    Retraction,
}

/// One result of one window for one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: Key,
    pub start: i64,
    pub end: i64,
    pub values: Vec<Option<f64>>,
    pub kind: RowKind,
    pub previous: Option<Vec<Option<f64>>>,
}

/// Whether an event was taken by a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    Accepted,
    Late,
}

/// A window operator: its spec, its watermark and its state.
#[derive(Debug, Clone)]
pub struct Windows {
    spec: WindowSpec,
    watermark: i64,
    state: State,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum State {
    Aligned(aligned::Aligned),
    Sliding(sliding::Sliding),
    Session(session::Session),
}

/// Entry tags under a [`Windows::changes`] prefix (aligned slots use 1).
const META: u8 = 0;
const WHOLE: u8 = 2;

/// The bytes of a snapshot start with this version.
const SNAPSHOT_VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot<'a> {
    spec: std::borrow::Cow<'a, WindowSpec>,
    watermark: i64,
    state: std::borrow::Cow<'a, State>,
}

/// A snapshot that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("window snapshot is unreadable: {0}")]
    Corrupt(String),
    #[error("window snapshot was taken for another window spec ({0:?})")]
    OtherSpec(WindowSpec),
}

impl Windows {
    pub fn new(spec: WindowSpec) -> Self {
        let state = match spec.kind {
            WindowKind::Tumbling { size } => State::Aligned(aligned::Aligned::new(tumbling::assigner(size))),
            WindowKind::Hopping { size, hop } => State::Aligned(aligned::Aligned::new(hopping::assigner(size, hop))),
            WindowKind::Sliding { size } => State::Sliding(sliding::Sliding::new(size)),
            WindowKind::Session { timeout, max } => State::Session(session::Session::new(timeout, max)),
        };
        Windows { spec, watermark: i64::MIN, state }
    }

    pub fn spec(&self) -> &WindowSpec {
        &self.spec
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Adds one event. Corrections it causes are appended to `out`.
    pub fn insert(&mut self, key: &[u8], t: i64, args: &[Option<f64>], out: &mut Vec<Row>) -> Placed {
        let first = out.len();
        let w = self.watermark;
        let (aggs, lateness) = (&self.spec.aggregates, self.spec.lateness);
        let (c, e) = (Ctx { aggs, lateness, w }, Input { key, t, args });
        let placed = match &mut self.state {
            State::Aligned(s) => s.insert(c, e, out),
            State::Sliding(s) => s.insert(c, e, out),
            State::Session(s) => s.insert(c, e, out),
        };
        sort_rows(&mut out[first..]);
        placed
    }

    /// Moves the watermark to `w` (never back) and appends the rows of the
    /// windows that fire, ordered by end, start and key.
    pub fn advance(&mut self, w: i64, out: &mut Vec<Row>) {
        if w <= self.watermark {
            return;
        }
        let old = std::mem::replace(&mut self.watermark, w);
        let first = out.len();
        let (aggs, lateness) = (&self.spec.aggregates, self.spec.lateness);
        match &mut self.state {
            State::Aligned(s) => s.advance(aggs, lateness, old, w, out),
            State::Sliding(s) => s.advance(aggs, lateness, w, out),
            State::Session(s) => s.advance(aggs, lateness, w, out),
        }
        sort_rows(&mut out[first..]);
    }

    /// End of input: every window fires.
    pub fn finish(&mut self, out: &mut Vec<Row>) {
        self.advance(i64::MAX, out);
    }

    /// Windows (or, for sliding and session windows, keys) holding state.
    pub fn open(&self) -> usize {
        match &self.state {
            State::Aligned(s) => s.open(),
            State::Sliding(s) => s.open(),
            State::Session(s) => s.open(),
        }
    }

    /// Keeps only the keys `keep` accepts (a rescale: the others belong to
    /// another shard now).
    pub fn retain_keys(&mut self, keep: &dyn Fn(&[u8]) -> bool) {
        match &mut self.state {
            State::Aligned(s) => s.retain(keep),
            State::Sliding(s) => s.retain(keep),
            State::Session(s) => s.retain(keep),
        }
    }

    /// Takes in the state of `other`, an operator of the same spec holding
    /// other keys (a rescale). Every shard's watermark is the pipeline's,
    /// so the later one is kept.
    pub fn absorb(&mut self, other: Windows) {
        self.watermark = self.watermark.max(other.watermark);
        match (&mut self.state, other.state) {
            (State::Aligned(a), State::Aligned(b)) => a.absorb(b),
            (State::Sliding(a), State::Sliding(b)) => a.absorb(b),
            (State::Session(a), State::Session(b)) => a.absorb(b),
            _ => unreachable!("operators of one spec have one kind of state"),
        }
    }

    /// The whole state as bytes, for a checkpoint.
    pub fn snapshot(&self) -> Vec<u8> {
        let snap = Snapshot {
            spec: std::borrow::Cow::Borrowed(&self.spec),
            watermark: self.watermark,
            state: std::borrow::Cow::Borrowed(&self.state),
        };
        let mut bytes = vec![SNAPSHOT_VERSION];
        bytes.extend(postcard::to_stdvec(&snap).expect("window state serializes"));
        bytes
    }

    /// What changed since the last call (`whole`: everything) as entries
    /// under `prefix`, for an incremental checkpoint: the spec and
    /// watermark each time, and for tumbling and hopping windows the
    /// (window, key) slots changed and the range of the windows closed for
    /// good. Sliding and session windows are written whole each time.
    pub fn changes(&mut self, prefix: &[u8], whole: bool, out: &mut Changes) {
        let key = |tag: u8| [prefix, &[tag]].concat();
        let meta = postcard::to_stdvec(&(&self.spec, self.watermark)).expect("window meta serializes");
        out.put.push((key(META), meta));
        match &mut self.state {
            State::Aligned(s) => s.changes(prefix, whole, out),
            other => out.put.push((key(WHOLE), postcard::to_stdvec(other).expect("window state serializes"))),
        }
    }

    /// An operator for `spec` in the state [`Windows::changes`] under
    /// `prefix` add up to.
    pub fn from_entries(spec: WindowSpec, prefix: &[u8], state: &Entries) -> Result<Self, RestoreError> {
        let corrupt = |e: String| RestoreError::Corrupt(e);
        let key = |tag: u8| [prefix, &[tag]].concat();
        let Some(meta) = state.get(&key(META)) else {
            return Ok(Windows::new(spec)); // the step had no windows yet
        };
        let (theirs, watermark): (WindowSpec, i64) =
            postcard::from_bytes(meta).map_err(|e| corrupt(format!("window meta: {e}")))?;
        if theirs != spec {
            return Err(RestoreError::OtherSpec(theirs));
        }
        let kind = spec.kind;
        let mut w = Windows::new(spec);
        w.watermark = watermark;
        w.state = match (&w.state, state.get(&key(WHOLE))) {
            (State::Aligned(_), _) => {
                let assign = match kind {
                    WindowKind::Tumbling { size } => tumbling::assigner(size),
                    WindowKind::Hopping { size, hop } => hopping::assigner(size, hop),
                    _ => unreachable!("aligned windows are tumbling or hopping"),
                };
                State::Aligned(aligned::Aligned::from_entries(assign, prefix, state).map_err(corrupt)?)
            }
            (_, Some(bytes)) => postcard::from_bytes(bytes).map_err(|e| corrupt(format!("window state: {e}")))?,
            (_, None) => return Err(corrupt("window state missing".into())),
        };
        Ok(w)
    }

    /// An operator for `spec` in the state a [`Windows::snapshot`] recorded.
    pub fn restore(spec: WindowSpec, bytes: &[u8]) -> Result<Self, RestoreError> {
        let body = match bytes.split_first() {
            Some((&SNAPSHOT_VERSION, body)) => body,
            Some((v, _)) => return Err(RestoreError::Corrupt(format!("unknown version {v}"))),
            None => return Err(RestoreError::Corrupt("empty".into())),
        };
        let snap: Snapshot<'static> = postcard::from_bytes(body).map_err(|e| RestoreError::Corrupt(e.to_string()))?;
        if *snap.spec != spec {
            return Err(RestoreError::OtherSpec(snap.spec.into_owned()));
        }
        Ok(Windows { spec, watermark: snap.watermark, state: snap.state.into_owned() })
    }
}

fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| (a.end, a.start, &a.key, a.kind).cmp(&(b.end, b.start, &b.key, b.kind)));
}

/// What every insert needs besides the event.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    aggs: &'a Aggregates,
    lateness: i64,
    /// The watermark before the event.
    w: i64,
}

/// One event as the window operators see it.
#[derive(Clone, Copy)]
struct Input<'a> {
    key: &'a [u8],
    t: i64,
    args: &'a [Option<f64>],
}

/// Argument rows `lo..hi` of events stored `stride` values apart (a
/// stride of 0, for `COUNT(*)` alone, still gives one empty row per event).
fn rows(args: &[Option<f64>], stride: usize, lo: usize, hi: usize) -> impl Iterator<Item = &[Option<f64>]> {
    (lo..hi).map(move |i| &args[i * stride..(i + 1) * stride])
}

/// Whether a window ending at `end` has fired under watermark `w`.
#[inline]
fn fired(end: i64, w: i64) -> bool {
    end < w
}

/// Whether a window ending at `end` is closed for good under watermark `w`.
#[inline]
fn expired(end: i64, lateness: i64, w: i64) -> bool {
    end.saturating_add(lateness) < w
}
