//! weir-core: the ground every other Weir crate stands on. It may depend on
//! no other Weir crate, and on nothing that knows a connector, a plugin
//! engine or a query by name.
//!
//! - [`event`]: batches in the flat layout, decoding at ingestion (one JSON
//!   parse per event), JSON Schema checks.
//! - [`source`], [`step`], [`sink`]: the traits the data path is built
//!   from; implementations live above (connectors, query, runtime).
//! - [`position`]: where a source stands, as a checkpoint records it.
//! - [`checkpoint`]: what a connector adds to a checkpoint (a
//!   [`checkpoint::Coordinator`]) and the gate through which a source asks
//!   the worker for one.
//! - [`ingest`]: the request side of a push source, as the server calls it.
//! - [`entries`]: state as ordered entries and the changes between two
//!   checkpoints (incremental checkpoints).
//! - [`dead_letter`]: the dead-letter output.
//! - [`metrics`]: every metric family and the pre-resolved handles the hot
//!   path counts with; families of upper crates register through
//!   [`metrics::Family`].
//! - [`error`]: one error type with a domain and a retry hint.
//! - [`keys`]: key groups, the unit state is split and moved by across shards.
//! - [`rate`]: the token bucket that bounds log lines and audit samples.
//! - [`at_rest`]: encryption at rest (AES-256-GCM) of checkpoints, dead
//!   letters and file sinks, with the keyring that rotates keys.

pub mod at_rest;
pub mod checkpoint;
pub mod dead_letter;
pub mod entries;
pub mod error;
pub mod event;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod position;
pub mod rate;
pub mod sink;
pub mod source;
pub mod step;

/// Wall-clock time, epoch milliseconds: the event time of events whose
/// source names no timestamp field.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
