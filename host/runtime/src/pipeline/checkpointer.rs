//! Checkpoints in two halves. The router decides when one is due and what
//! the sources' positions are at that cut ([`Clock`]); it sends a barrier
//! to every shard after the last batch before the cut and waits until the
//! checkpoint is taken. Each shard snapshots its steps when the barrier
//! reaches it; once every shard's barrier has reached the sink stage,
//! nothing after the cut has been read, processed or written anywhere, and
//! the sink stage takes the checkpoint ([`Checkpointer`]): flush the sinks,
//! record their and the dead letters' lengths, write the file, and let the
//! connectors that commit with checkpoints (a Kafka transaction) do so, in
//! the order their [`Coordinator`] chooses.
//!
//! Without such a connector nothing outside waits on the file, so the sink
//! stage only flushes the sinks and builds the checkpoint, and the router
//! goes on; a writer thread encodes, seals and writes it meanwhile. At most
//! one checkpoint is being written: the next cut waits for it. A write that
//! fails stops the pipeline within a sink tick (the sink stage looks for
//! the writer's answer even when no input comes); outputs written after the
//! last complete checkpoint are rolled back by the restart, as after a
//! crash.

use super::worker::{SinkSlot, StepState};
use crate::checkpoint::{Checkpoint, CheckpointStore, Position};
use crossbeam_channel::{Receiver, Sender};
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
    /// Whether checkpoints write only what changed since the one before.
    pub(super) incremental: bool,
    /// Whether a checkpoint has been cut in this run.
    pub(super) cut_once: bool,
    /// Set by the checkpoint store when the next checkpoint must be whole
    /// (a fold of the chain failed).
    pub(super) whole_wanted: std::sync::Arc<std::sync::atomic::AtomicBool>,
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

    /// Whether the checkpoint being cut writes the steps' whole state (with
    /// incremental checkpoints): the first of a run (the state restored may
    /// have been split anew, and steps begin to track their changes then),
    /// and the next after a failed fold. Asking takes the request.
    pub fn take_whole(&mut self) -> bool {
        let wanted = self.whole_wanted.swap(false, std::sync::atomic::Ordering::AcqRel);
        !self.cut_once || wanted
    }

    /// A checkpoint was cut now.
    pub fn cut(&mut self) {
        self.last = Instant::now();
        self.dirty = false;
        self.cut_once = true;
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
    pub(super) store: Store,
    pub(super) pipeline: String,
    /// The connectors that commit with checkpoints.
    pub(super) coordinators: Vec<Box<dyn Coordinator>>,
    /// The dead-letter output, whose length each checkpoint records.
    pub(super) dead: std::sync::Arc<weir_core::dead_letter::DeadLetters>,
    pub(super) metrics: DurabilityMetrics,
    /// Set when a checkpoint was restored: the first new one reports the
    /// time since start as the recovery time.
    pub(super) recovering_since: Option<Instant>,
    /// The epoch of the checkpoint taken last in this run: an incremental
    /// one changes it.
    pub(super) last: Option<u64>,
}

/// Where checkpoint files are written: here, or by a writer thread.
pub enum Store {
    Here(CheckpointStore),
    Behind(Writer),
}

impl Store {
    /// Writes in the calling thread when `coordinated` (a connector commits
    /// around the write), else in the background.
    pub fn new(store: CheckpointStore, coordinated: bool, metrics: DurabilityMetrics) -> std::io::Result<Self> {
        if coordinated { Ok(Store::Here(store)) } else { Writer::start(store, metrics).map(Store::Behind) }
    }
}

/// A thread that writes checkpoints, one at a time.
pub struct Writer {
    tx: Option<Sender<Job>>,
    /// One answer per job: the file's size or why it was not written.
    answers: Receiver<std::io::Result<u64>>,
    in_flight: bool,
    /// The epoch the next checkpoint gets.
    next: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Job {
    checkpoint: Checkpoint,
    /// When the sink stage began taking it.
    started: Instant,
    recovering_since: Option<Instant>,
}

impl Writer {
    fn start(mut store: CheckpointStore, metrics: DurabilityMetrics) -> std::io::Result<Self> {
        let next = store.next_epoch();
        let (tx, rx) = crossbeam_channel::bounded::<Job>(1);
        let (answer, answers) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new().name("checkpoint-writer".into()).spawn(move || {
            for job in rx {
                let epoch = job.checkpoint.epoch;
                let result = store.write(&job.checkpoint);
                report(&metrics, epoch, job.started, job.recovering_since, &result);
                if answer.send(result).is_err() {
                    return;
                }
            }
        })?;
        Ok(Writer { tx: Some(tx), answers, in_flight: false, next, thread: Some(thread) })
    }

    /// Waits for the checkpoint being written, if any.
    pub fn wait(&mut self) -> std::io::Result<()> {
        if !std::mem::take(&mut self.in_flight) {
            return Ok(());
        }
        self.answers.recv().map_err(|_| stopped())?.map(|_| ())
    }

    /// The answer for the checkpoint being written, if it has come: an
    /// error if the write failed.
    pub fn poll(&mut self) -> std::io::Result<()> {
        if !self.in_flight {
            return Ok(());
        }
        match self.answers.try_recv() {
            Err(crossbeam_channel::TryRecvError::Empty) => Ok(()),
            answer => {
                self.in_flight = false;
                answer.map_err(|_| stopped())?.map(|_| ())
            }
        }
    }

    /// Hands `checkpoint` to the thread, after the one before it is written.
    fn send(&mut self, job: Job) -> std::io::Result<()> {
        self.wait()?;
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        self.next = job.checkpoint.epoch + 1;
        tx.send(job).map_err(|_| stopped())?;
        self.in_flight = true;
        Ok(())
    }
}

/// The writer thread is gone (it panicked, or the writer is being dropped).
fn stopped() -> std::io::Error {
    std::io::Error::other("the checkpoint writer stopped")
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The checkpoint in flight is finished (a half-written one is never
        // seen: it is written to a temporary file and renamed).
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The metrics and log line of a checkpoint written (or not).
fn report(
    m: &DurabilityMetrics,
    epoch: u64,
    started: Instant,
    recovering_since: Option<Instant>,
    result: &std::io::Result<u64>,
) {
    match result {
        Ok(bytes) => {
            let (seconds, at) = (started.elapsed().as_secs_f64(), now_ms());
            CheckpointTaken { metrics: m, epoch, bytes: *bytes, seconds, at: at as f64 / 1000.0 }.emit();
            if let Some(since) = recovering_since {
                Recovered { metrics: m, seconds: since.elapsed().as_secs_f64() }.emit();
            }
        }
        Err(error) => CheckpointFailed { metrics: m, epoch, error }.emit(),
    }
}

impl Checkpointer {
    /// Takes a checkpoint of `positions` and the steps' `states`; with a
    /// writer thread, hands it over and returns once it is built (`wait`:
    /// once it is written). An error means the pipeline must stop: what was
    /// written since the last checkpoint is not committed, and the next run
    /// resumes from it.
    pub fn take(
        &mut self,
        positions: &BTreeMap<String, Position>,
        states: BTreeMap<String, StepState>,
        sinks: &mut [SinkSlot],
        wait: bool,
    ) -> std::io::Result<()> {
        // The one before is written first (its time is not this one's).
        self.wait()?;
        let started = Instant::now();
        let epoch = self.next_epoch();
        let built = self.build(epoch, positions, states, sinks);
        let checkpoint = match built {
            Ok(c) => {
                self.last = Some(epoch);
                c
            }
            Err(error) => {
                CheckpointFailed { metrics: &self.metrics, epoch, error: &error }.emit();
                return Err(error);
            }
        };
        match &mut self.store {
            Store::Here(store) => {
                let mut write = || store.write(&checkpoint);
                let result = commit(&mut self.coordinators, epoch, positions, &mut write);
                report(&self.metrics, epoch, started, self.recovering_since.take(), &result);
                result.map(|_| ())
            }
            Store::Behind(writer) => {
                let job = Job { checkpoint, started, recovering_since: self.recovering_since.take() };
                writer.send(job)?;
                if wait { writer.wait() } else { Ok(()) }
            }
        }
    }

    /// Waits for the checkpoint being written, if any (the pipeline's end).
    pub fn wait(&mut self) -> std::io::Result<()> {
        match &mut self.store {
            Store::Here(_) => Ok(()),
            Store::Behind(writer) => writer.wait(),
        }
    }

    /// Whether the checkpoint being written, if any, failed (without
    /// waiting for it).
    pub fn poll(&mut self) -> std::io::Result<()> {
        match &mut self.store {
            Store::Here(_) => Ok(()),
            Store::Behind(writer) => writer.poll(),
        }
    }

    fn next_epoch(&self) -> u64 {
        match &self.store {
            Store::Here(store) => store.next_epoch(),
            Store::Behind(writer) => writer.next,
        }
    }

    fn build(
        &mut self,
        epoch: u64,
        positions: &BTreeMap<String, Position>,
        states: BTreeMap<String, StepState>,
        sinks: &mut [SinkSlot],
    ) -> std::io::Result<Checkpoint> {
        for slot in sinks.iter_mut() {
            slot.sink.flush()?;
        }
        let (mut steps, mut changes) = (BTreeMap::new(), BTreeMap::new());
        for (key, state) in states {
            match state {
                StepState::Whole(bytes) => steps.insert(key, bytes).map(|_| ()),
                StepState::Changes(c) => changes.insert(key, c).map(|_| ()),
            };
        }
        let incremental = changes.values().any(|c: &weir_core::entries::Changes| !c.whole);
        if incremental && self.last.is_none() {
            // The router cuts the first checkpoint of a run whole.
            return Err(std::io::Error::other("an incremental checkpoint with nothing before it to change"));
        }
        Ok(Checkpoint {
            epoch,
            pipeline: self.pipeline.clone(),
            created_ms: now_ms(),
            sources: positions.clone(),
            steps,
            changes,
            parent: if incremental { self.last } else { None },
            sinks: sinks.iter().filter_map(|s| s.sink.position().map(|p| (s.name.clone(), p))).collect(),
            dead_letter: Some(self.dead.position()?),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(epoch: u64) -> Job {
        let checkpoint = Checkpoint {
            epoch,
            pipeline: "p".into(),
            created_ms: 0,
            sources: BTreeMap::new(),
            steps: BTreeMap::from([("w".to_string(), vec![epoch as u8; 16])]),
            changes: BTreeMap::new(),
            parent: None,
            sinks: BTreeMap::new(),
            dead_letter: None,
        };
        Job { checkpoint, started: Instant::now(), recovering_since: None }
    }

    fn writer(dir: &std::path::Path) -> Writer {
        let store = CheckpointStore::open(dir, 2).unwrap();
        let metrics = weir_core::metrics::Metrics::new("p").durability();
        Writer::start(store, metrics).unwrap()
    }

    #[test]
    fn a_checkpoint_handed_to_the_writer_is_on_disk_once_waited_for_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        for epoch in 1..=3 {
            w.send(job(epoch)).unwrap();
            assert_eq!(w.next, epoch + 1);
        }
        w.wait().unwrap();
        let loaded = CheckpointStore::open(dir.path(), 2).unwrap().load_all().unwrap();
        let epochs: Vec<u64> = loaded.iter().map(|l| l.epoch).collect();
        assert_eq!(epochs, [3, 2], "newest first, `keep` of them");
        assert_eq!(loaded[0].checkpoint.as_ref().unwrap().steps["w"], vec![3u8; 16]);
        assert!(w.wait().is_ok(), "nothing in flight: nothing to wait for");
    }

    #[test]
    fn a_failed_background_write_stops_the_next_cut() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("ckpt");
        let mut w = writer(&folder);
        std::fs::remove_dir_all(&folder).unwrap(); // the disk goes away
        w.send(job(1)).expect("handing over does not wait for the write");
        let err = w.send(job(2)).expect_err("the next cut learns the write failed");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
        drop(w); // and the thread is joined
    }

    #[test]
    fn a_failed_background_write_is_found_without_a_next_cut() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("ckpt");
        let mut w = writer(&folder);
        std::fs::remove_dir_all(&folder).unwrap();
        w.send(job(1)).unwrap();
        // Polled as the sink stage does on each tick, until the answer is in.
        let err = loop {
            match w.poll() {
                Ok(()) if w.in_flight => std::thread::yield_now(),
                Ok(()) => panic!("the failed write was answered as written"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
        assert!(w.poll().is_ok() && w.wait().is_ok(), "the answer is given once");
    }
}
