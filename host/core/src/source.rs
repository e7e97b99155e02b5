//! The source trait: where events enter. Each source runs on its own thread
//! and hands full batches to the pipeline through a bounded channel, so a
//! source that runs ahead is paused by the channel (backpressure), never
//! buffered without bound.

use crate::event::{Batch, FieldPlan};
use crate::ingest::IngestEndpoint;
use crate::position::Position;
use std::sync::Arc;
use std::time::Duration;

/// Whether a source has more to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    More,
    Done,
}

/// How full a source may make one batch: events, and payload bytes. A
/// source stops adding once either is reached (the bytes may be passed by
/// the last event added), so a batch's byte offsets, which are `u32`,
/// cannot wrap: `bytes` is at most [`BatchLimit::MAX_BYTES`] and no event
/// may be larger than `bytes` either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimit {
    pub events: usize,
    pub bytes: usize,
}

impl BatchLimit {
    /// `[pipeline] batch_bytes` by default: 16 MiB.
    pub const DEFAULT_BYTES: usize = 16 << 20;
    /// The most `batch_bytes` may be: 1 GiB.
    pub const MAX_BYTES: usize = 1 << 30;

    /// `events` per batch, with the default byte bound.
    pub fn events(events: usize) -> Self {
        BatchLimit { events, bytes: Self::DEFAULT_BYTES }
    }

    /// Whether `batch` may take no more events.
    pub fn full(&self, batch: &Batch) -> bool {
        batch.len() >= self.events || batch.payloads.len() >= self.bytes
    }
}

/// A source of events. Only [`Source::fill`] is required.
pub trait Source: Send {
    /// Appends events to `batch` until `limit` says it is full, waiting at
    /// most `linger` for them. `Done` means the input is finished (what was
    /// appended still counts). Events may be left undecoded (see
    /// [`Source::field_plan`]).
    fn fill(&mut self, batch: &mut Batch, limit: BatchLimit, linger: Duration) -> std::io::Result<Fill>;

    /// Bytes read so far (files), for progress and `weir_source_bytes_total`.
    fn bytes_read(&self) -> u64 {
        0
    }

    /// For sources whose `fill` leaves events undecoded: the fields to read
    /// when they are decoded. `None`: events come out of `fill` ready.
    fn field_plan(&self) -> Option<Arc<FieldPlan>> {
        None
    }

    /// Called once when the pipeline is told to stop. A source that has
    /// accepted events it must not lose (HTTP) stops taking new ones and
    /// returns true: it is then filled until it says `Done`. Others return
    /// false and are not filled again.
    fn drains_after_stop(&mut self) -> bool {
        false
    }

    /// Where the source is, after the events handed out so far: what a
    /// checkpoint records. `None`: it cannot resume (generator, HTTP).
    fn position(&self) -> Option<Position> {
        None
    }

    /// The partitions the source reads now, when it knows them before their
    /// first events (a Kafka assignment): each holds the pipeline's
    /// watermark back from the start, not only once it has sent something.
    fn partitions(&self) -> Option<Vec<u32>> {
        None
    }

    /// Continues from a position a checkpoint recorded.
    fn resume(&mut self, _position: &Position) -> std::io::Result<()> {
        Ok(())
    }
}

/// An opened source, and for a push source (HTTP) its request side.
pub type Opened = (Box<dyn Source>, Option<Arc<dyn IngestEndpoint>>);
