//! Checkpoints in two halves. The router decides when one is due and what
//! the sources' positions are at that cut ([`Clock`]); it sends a barrier
//! to every shard after the last batch before the cut and waits. Each
//! shard snapshots its steps when the barrier reaches it; once every
//! shard's barrier has reached the sink stage, nothing after the cut has
//! been read, processed or written anywhere, and the sink stage takes the
//! checkpoint ([`Checkpointer`]): flush the sinks, write the file, and let
//! the connectors that commit with checkpoints (a Kafka transaction) do so,
//! in the order their [`Coordinator`] chooses.

use super::worker::SinkSlot;
use crate::checkpoint::{Checkpoint, CheckpointStore, Position};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir_core::checkpoint::Coordinator;
use weir_core::metrics::DurabilityMetrics;
use weir_core::metrics::events::{CheckpointFailed, CheckpointTaken, InternalEvent, Recovered};
use weir_core::now_ms;

/// The router's half: the sources' positions after the batches handed to
/// the shards so far, and when the next checkpoint is due.
pub struct Clock {
    pub(super) interval: Duration,
    /// Source names by index.
    pub(super) source_names: Vec<String>,
    pub(super) positions: BTreeMap<String, Position>,
    pub(super) last: Instant,
    pub(super) dirty: bool,
    /// `weir_checkpoint_stall_seconds`.
    pub(super) stall: prometheus::Histogram,
}

impl Clock {
    /// Records a source's position after a batch was routed.
    pub fn note(&mut self, position: Option<(u16, Position)>) {
        if let Some((i, p)) = position
            && let Some(name) = self.source_names.get(i as usize)
        {
            self.positions.insert(name.clone(), p);
        }
        self.dirty = true;
    }

    /// Whether a checkpoint is due.
    pub fn due(&self) -> bool {
        self.dirty && self.last.elapsed() >= self.interval
    }

    /// A checkpoint was cut now.
    pub fn cut(&mut self) {
        self.last = Instant::now();
        self.dirty = false;
    }

    /// A source gave `revoked` partitions away (after a checkpoint that
    /// committed them): stop recording them — their new owner does.
    pub fn release(&mut self, revoked: &[(String, Vec<i32>)]) {
        for (source, partitions) in revoked {
            if let Some(p) = self.positions.get_mut(source) {
                p.release(partitions);
            }
        }
    }
}

/// The sink stage's half: writes checkpoints.
pub struct Checkpointer {
    pub(super) store: CheckpointStore,
    pub(super) pipeline: String,
    /// The connectors that commit with checkpoints.
    pub(super) coordinators: Vec<Box<dyn Coordinator>>,
    /// The dead-letter output, whose length each checkpoint records.
    pub(super) dead: std::sync::Arc<weir_core::dead_letter::DeadLetters>,
    pub(super) metrics: DurabilityMetrics,
    /// Set when a checkpoint was restored: the first new one reports the
    /// time since start as the recovery time.
    pub(super) recovering_since: Option<Instant>,
}

impl Checkpointer {
    /// Takes a checkpoint of `positions` and the steps' `states`. An error
    /// means the pipeline must stop: what was written since the last
    /// checkpoint is not committed, and the next run resumes from it.
    pub fn take(
        &mut self,
        positions: &BTreeMap<String, Position>,
        states: BTreeMap<String, Vec<u8>>,
        sinks: &mut [SinkSlot],
    ) -> std::io::Result<()> {
        let started = Instant::now();
        let result = self.take_inner(positions, states, sinks);
        let m = &self.metrics;
        match &result {
            Ok(bytes) => {
                let (epoch, seconds, at) = (self.store.next_epoch() - 1, started.elapsed().as_secs_f64(), now_ms());
                CheckpointTaken { metrics: m, epoch, bytes: *bytes, seconds, at: at as f64 / 1000.0 }.emit();
                if let Some(since) = self.recovering_since.take() {
                    Recovered { metrics: m, seconds: since.elapsed().as_secs_f64() }.emit();
                }
            }
            Err(error) => CheckpointFailed { metrics: m, epoch: self.store.next_epoch(), error }.emit(),
        }
        result.map(|_| ())
    }

    fn take_inner(
        &mut self,
        positions: &BTreeMap<String, Position>,
        states: BTreeMap<String, Vec<u8>>,
        sinks: &mut [SinkSlot],
    ) -> std::io::Result<u64> {
        for slot in sinks.iter_mut() {
            slot.sink.flush()?;
        }
        let checkpoint = Checkpoint {
            epoch: self.store.next_epoch(),
            pipeline: self.pipeline.clone(),
            created_ms: now_ms(),
            sources: positions.clone(),
            steps: states,
            sinks: sinks.iter().filter_map(|s| s.sink.position().map(|p| (s.name.clone(), p))).collect(),
            dead_letter: Some(self.dead.position()?),
        };
        let store = &mut self.store;
        let mut write = || store.write(&checkpoint);
        commit(&mut self.coordinators, checkpoint.epoch, positions, &mut write)
    }
}

/// Lets each coordinator commit around the next, the innermost writing the file.
fn commit(
    coordinators: &mut [Box<dyn Coordinator>],
    epoch: u64,
    positions: &BTreeMap<String, Position>,
    write: &mut dyn FnMut() -> std::io::Result<u64>,
) -> std::io::Result<u64> {
    match coordinators.split_first_mut() {
        None => write(),
        Some((first, rest)) => first.commit(epoch, positions, &mut || commit(rest, epoch, positions, write)),
    }
}
