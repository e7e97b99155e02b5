//! What connectors add to checkpoints.
//!
//! A checkpoint is taken by the runtime between two batches: sinks flush,
//! steps snapshot, the file is written. A connector whose external system
//! must commit with it (a Kafka transaction holding the outputs and the
//! consumed offsets) takes part through a [`Coordinator`]; a source that
//! must hand partitions over asks for a checkpoint through the [`Gate`].

use crate::position::Position;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Source name → position, as a checkpoint records them.
pub type Positions = BTreeMap<String, Position>;

/// Which checkpoint an external system says was committed last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The coordinator has no opinion: the newest checkpoint is used.
    Unknown,
    /// This one (an index into the candidates, newest first).
    At(usize),
    /// None of them matches what the system committed.
    Nowhere,
    /// The system has committed nothing: a lone first checkpoint was never
    /// committed (a run killed before its first commit), so the run starts
    /// as a new one would; with more checkpoints, as `Nowhere`.
    Before,
}

/// A connector's part in every checkpoint of a pipeline.
pub trait Coordinator: Send {
    /// Of these checkpoints' source positions (newest first), the one whose
    /// commit the external system recorded.
    fn choose(&self, candidates: &[&Positions]) -> anyhow::Result<Committed>;

    /// Commits checkpoint `epoch`, whose source positions are `positions`.
    /// `write` writes the checkpoint file and returns its size; the
    /// coordinator calls it exactly once, before or after its own commit,
    /// whichever order makes a crash in between safe.
    fn commit(
        &mut self,
        epoch: u64,
        positions: &Positions,
        write: &mut dyn FnMut() -> std::io::Result<u64>,
    ) -> std::io::Result<u64>;
}

/// Between a source giving up partitions and the checkpoint that commits
/// what it read from them. In a rebalance the source stops (in its client's
/// callback) until the worker has handled every batch already sent and
/// taken a checkpoint, so the partitions move with their positions
/// committed; their new owner starts exactly there.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<GateState>,
    cond: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// (source, partitions) waiting for a checkpoint.
    pending: Vec<(String, Vec<i32>)>,
    requested: u64,
    done: u64,
    worker_gone: bool,
}

impl Gate {
    /// Asks for a checkpoint after which `partitions` of `source` are no
    /// longer recorded, and waits for it (at most `timeout`). False if it
    /// did not happen.
    pub fn request_and_wait(&self, source: &str, partitions: Vec<i32>, timeout: Duration) -> bool {
        let mut s = self.state.lock().expect("gate lock");
        if s.worker_gone {
            return true; // the run is over: its last checkpoint was taken (or it failed)
        }
        s.pending.push((source.to_string(), partitions));
        s.requested += 1;
        let want = s.requested;
        let deadline = Instant::now() + timeout;
        while s.done < want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self.cond.wait_timeout(s, left).expect("gate lock").0;
        }
        true
    }

    /// The requests waiting for a checkpoint, if any (the worker calls
    /// this when it has no batch queued).
    pub fn pending(&self) -> Option<Vec<(String, Vec<i32>)>> {
        let mut s = self.state.lock().expect("gate lock");
        (s.requested > s.done).then(|| std::mem::take(&mut s.pending))
    }

    /// The checkpoint for the requests returned by `pending` is taken.
    pub fn complete(&self) {
        let mut s = self.state.lock().expect("gate lock");
        s.done = s.requested;
        self.cond.notify_all();
    }

    /// The worker has ended: nobody will take a checkpoint any more.
    pub fn worker_gone(&self) {
        let mut s = self.state.lock().expect("gate lock");
        s.worker_gone = true;
        s.done = s.requested;
        self.cond.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_request_waits_for_the_checkpoint_and_a_gone_worker_releases_everyone() {
        let gate = Arc::new(Gate::default());
        let g = gate.clone();
        let waiter = std::thread::spawn(move || g.request_and_wait("k", vec![1, 2], Duration::from_secs(30)));
        let pending = loop {
            if let Some(p) = gate.pending() {
                break p;
            }
            std::thread::yield_now();
        };
        assert_eq!(pending, vec![("k".to_string(), vec![1, 2])]);
        gate.complete();
        assert!(waiter.join().unwrap());
        assert!(gate.pending().is_none(), "nothing is left waiting");
        gate.worker_gone();
        assert!(gate.request_and_wait("k", vec![3], Duration::ZERO), "after the worker, nobody waits");
    }
}
