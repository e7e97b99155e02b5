//! A batch of events in the same flat layout as the plugin contract: one
//! buffer of payloads, their end offsets, event times, and where each came from.

use std::sync::Arc;

/// Where an event entered the pipeline; dead-letter records carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Origin {
    /// Index of the source in the pipeline file.
    pub source: u16,
    /// 1-based line number in the input file (0 when there are no lines).
    pub line: u64,
    /// Byte offset of the event in the input (or its sequence number).
    pub offset: u64,
    /// The partition of the input it came from (a Kafka partition; 0 for
    /// inputs without partitions). Event-time progress is tracked per
    /// partition.
    pub partition: u32,
}

/// A batch of events. Event `i` is `payloads[ends[i-1]..ends[i]]`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    pub payloads: Vec<u8>,
    pub ends: Vec<u32>,
    pub timestamps: Vec<i64>,
    pub origins: Vec<Origin>,
    /// Field values read while the batch was decoded at ingestion, for a
    /// query step right after the source, so that each event is parsed once.
    pub columns: Option<Columns>,
    /// The plugin versions that processed every event of this batch, as
    /// (step, sha256), in step order; sinks with `metadata` write them.
    pub versions: Vec<(Arc<str>, Arc<str>)>,
    /// The pipeline's watermark around each event, when the runtime
    /// computed it where the events entered (see [`Watermarks`]).
    pub watermarks: Option<Watermarks>,
}

/// The watermark of the pipeline's input around each event of a batch,
/// computed in arrival order over every event of every source before the
/// events are split among shards: a shard that sees only its own keys still
/// closes windows at the same event time as one that sees them all.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Watermarks {
    /// Before each event: the watermark it is judged late against.
    pub before: Vec<i64>,
    /// After each event.
    pub after: Vec<i64>,
    /// After the last event of the whole batch (of which a shard sees a part).
    pub end: i64,
}

/// Values of named fields, `fields.len()` cells per event, in event order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Columns {
    pub fields: Arc<[String]>,
    pub cells: Vec<Cell>,
    /// Strings that held escapes, decoded; [`Cell::Escaped`] indexes them.
    pub escaped: Vec<String>,
}

/// One field's value in one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// Null, or absent.
    Null,
    Bool(bool),
    Num(f64),
    /// A string without escapes: bytes `start..end` of the event's payload.
    Str {
        start: u32,
        end: u32,
    },
    Escaped(u32),
    /// An array or an object.
    Nested,
}

impl Batch {
    pub fn with_capacity(events: usize, bytes: usize) -> Self {
        Batch {
            payloads: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(events),
            timestamps: Vec::with_capacity(events),
            origins: Vec::with_capacity(events),
            columns: None,
            versions: Vec::new(),
            watermarks: None,
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn clear(&mut self) {
        self.payloads.clear();
        self.ends.clear();
        self.timestamps.clear();
        self.origins.clear();
        self.columns = None;
        self.versions.clear();
        self.watermarks = None;
    }

    /// Payload of event `i`.
    pub fn payload(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.payloads[start..self.ends[i] as usize]
    }

    /// Appends one event.
    pub fn push(&mut self, payload: &[u8], timestamp: i64, origin: Origin) {
        self.payloads.extend_from_slice(payload);
        self.commit(timestamp, origin);
    }

    /// Records an event whose payload was already appended to `payloads`.
    pub fn commit(&mut self, timestamp: i64, origin: Origin) {
        self.ends.push(self.payloads.len() as u32);
        self.timestamps.push(timestamp);
        self.origins.push(origin);
    }

    /// Iterates over (payload, timestamp, origin).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], i64, Origin)> + '_ {
        (0..self.len()).map(move |i| (self.payload(i), self.timestamps[i], self.origins[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_the_flat_layout() {
        let mut b = Batch::default();
        b.push(br#"{"a":1}"#, 10, Origin { source: 0, line: 1, offset: 0, partition: 0 });
        b.push(b"", 11, Origin::default());
        b.push(br#"{"b":2}"#, 12, Origin { source: 1, line: 3, offset: 9, partition: 0 });
        let got: Vec<_> = b.iter().map(|(p, t, o)| (p.to_vec(), t, o.line)).collect();
        assert_eq!(got, vec![(br#"{"a":1}"#.to_vec(), 10, 1), (vec![], 11, 0), (br#"{"b":2}"#.to_vec(), 12, 3)]);
        b.clear();
        assert!(b.is_empty());
    }
}
