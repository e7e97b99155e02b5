//! Sources: where events enter. Each runs on its own thread and hands full
//! batches to the pipeline through a bounded channel, so a source that runs
//! ahead is paused by the channel (backpressure), never buffered without bound.

mod file;
mod generator;
mod http;
mod ingest;

pub use file::FileSource;
pub use generator::Generator;
pub use http::{EventError, HttpIngest, HttpSource, Ingested as HttpIngested, split_body};
pub use ingest::{Ingested, Refused, decode_batch};

use crate::config::{SourceSpec, SourceSpecKind};
use crate::event::{Batch, FieldPlan};
use std::sync::Arc;
use std::time::Duration;

/// Whether a source has more to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    More,
    Done,
}

/// A source of events.
pub trait Source: Send {
    /// Appends up to `max` events to `batch`, waiting at most `linger` for
    /// them. `Done` means the input is finished (what was appended still
    /// counts). Events may be left undecoded (see [`Source::field_plan`]).
    fn fill(&mut self, batch: &mut Batch, max: usize, linger: Duration) -> std::io::Result<Fill>;

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
    fn position(&self) -> Option<crate::checkpoint::Position> {
        None
    }

    /// Continues from a position a checkpoint recorded.
    fn resume(&mut self, _position: &crate::checkpoint::Position) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fields a source that leaves decoding to the pipeline reads.
pub(crate) fn field_plan(spec: &SourceSpec) -> Arc<FieldPlan> {
    Arc::new(FieldPlan {
        timestamp_field: spec.timestamp_field.clone(),
        key_field: spec.key_field.clone(),
        columns: None,
        schema: spec.schema.clone(),
    })
}

/// Wall-clock time, epoch milliseconds: the event time of events whose
/// source names no timestamp field.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// An opened source, and for an HTTP source its request side.
pub type Opened = (Box<dyn Source>, Option<Arc<HttpIngest>>);

/// Opens the source described by `spec`; `index` is its place in the pipeline file.
pub fn open(
    spec: &SourceSpec,
    index: u16,
    dead: &Arc<crate::dead_letter::DeadLetters>,
    metrics: &crate::metrics::SourceMetrics,
) -> std::io::Result<Opened> {
    Ok(match &spec.kind {
        SourceSpecKind::File { path } => (Box::new(FileSource::open(path, index, spec)?), None),
        SourceSpecKind::Kafka(_) => unreachable!("Kafka sources are opened with their consumer (pipeline::run)"),
        SourceSpecKind::Generator(g) => (Box::new(Generator::new(*g, index)), None),
        SourceSpecKind::Http { queue, max_body } => {
            let (source, ingest) = HttpSource::new(spec, index, *queue, *max_body, dead.clone(), metrics);
            (Box::new(source), Some(ingest))
        }
    })
}
