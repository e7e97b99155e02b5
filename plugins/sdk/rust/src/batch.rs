//! Input batches: a view of the flat layout as events.

use crate::bindings::weir::plugin::types;
use serde::Deserialize;

/// A batch of input events, in order.
pub struct Batch {
    inner: types::Batch,
}

impl Batch {
    pub(crate) fn from_wit(inner: types::Batch) -> Self {
        Batch { inner }
    }

    /// Builds a batch from payloads and event times (for plugin unit tests).
    pub fn from_events<'a>(events: impl IntoIterator<Item = (&'a [u8], i64)>) -> Self {
        let mut inner = types::Batch { payloads: Vec::new(), ends: Vec::new(), timestamps: Vec::new() };
        for (payload, ts) in events {
            inner.payloads.extend_from_slice(payload);
            inner.ends.push(inner.payloads.len() as u32);
            inner.timestamps.push(ts);
        }
        Batch { inner }
    }

    /// Number of events in the batch.
    pub fn len(&self) -> usize {
        self.inner.ends.len()
    }

    /// Whether the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.inner.ends.is_empty()
    }

    /// Total payload bytes in the batch.
    pub fn payload_bytes(&self) -> usize {
        self.inner.payloads.len()
    }

    /// The event at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<Event<'_>> {
        let end = *self.inner.ends.get(index)? as usize;
        let start = if index == 0 { 0 } else { self.inner.ends[index - 1] as usize };
        Some(Event {
            index: index as u32,
            payload: &self.inner.payloads[start..end],
            timestamp_ms: self.inner.timestamps[index],
        })
    }

    /// The events of the batch, in order.
    #[inline]
    pub fn iter(&self) -> Events<'_> {
        Events { batch: self, next: 0, start: 0 }
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = Event<'a>;
    type IntoIter = Events<'a>;
    fn into_iter(self) -> Events<'a> {
        self.iter()
    }
}

/// Iterator over the events of a [`Batch`].
pub struct Events<'a> {
    batch: &'a Batch,
    next: usize,
    start: usize,
}

impl<'a> Iterator for Events<'a> {
    type Item = Event<'a>;

    #[inline]
    fn next(&mut self) -> Option<Event<'a>> {
        let b = &self.batch.inner;
        let end = *b.ends.get(self.next)? as usize;
        let payload = b.payloads.get(self.start..end).expect("batch end offsets are in order and in bounds");
        let event = Event { index: self.next as u32, payload, timestamp_ms: b.timestamps[self.next] };
        self.next += 1;
        self.start = end;
        Some(event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batch.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Events<'_> {}

/// One input event: a JSON object, borrowed from the batch buffer.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    index: u32,
    payload: &'a [u8],
    timestamp_ms: i64,
}

impl<'a> Event<'a> {
    /// Position of the event in its batch.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The raw JSON bytes.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Event time, milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// Decodes the payload into `T`; strings may borrow from the batch.
    pub fn json<T: Deserialize<'a>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.payload)
    }
}
