//! The keyed data path after the router: shards run the steps, the sink
//! stage writes their outputs and takes checkpoints.
//!
//! Each shard owns the steps of its key groups — their windows, their
//! plugin instances and keyed state — and processes its batches in order.
//! What a shard's steps put out goes, with the sinks that take it, through
//! a bounded channel to the one sink stage, which owns the sinks (a file
//! is written by one thread; a Kafka transaction has one producer).

use crossbeam_channel::{Receiver, Select, Sender};
use prometheus::IntCounter;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use weir_config::Route;
use weir_core::dead_letter::DeadLetters;
use weir_core::event::{Batch, Watermarks};
use weir_core::position::Position;
use weir_core::sink::Sink;
use weir_core::step::{Outputs, Step};

/// A sink with the route it takes and its counter.
pub struct SinkSlot {
    pub name: String,
    pub from: Route,
    pub sink: Box<dyn Sink>,
    pub events: IntCounter,
}

/// A checkpoint's cut: the sources' positions after the last batch before
/// it, and the router's own state (its watermarks).
#[derive(Debug)]
pub struct Cut {
    pub positions: BTreeMap<String, Position>,
    pub router_state: Option<Vec<u8>>,
    /// Only flush the sinks (a pipeline without checkpoints, at its end).
    pub flush_only: bool,
    /// Steps hand over their changes as entries (`incremental = true`);
    /// otherwise their own whole snapshots.
    pub incremental: bool,
    /// With `incremental`, the changes are the whole state (the first
    /// checkpoint of a run).
    pub whole: bool,
    /// Answer the router only once the checkpoint is written (and
    /// committed): at the end of input, and before partitions move.
    /// Otherwise it answers once the checkpoint is handed to its writer.
    pub wait: bool,
}

/// What the router sends a shard.
pub enum ToShard {
    Batch(Batch),
    /// Snapshot the steps: every batch before the cut has been sent.
    Barrier(Arc<Cut>),
    /// No batch for a while.
    Idle,
    /// The input ended; release what the steps hold if `release`.
    Finish {
        release: bool,
    },
}

/// What a shard sends the sink stage.
pub enum FromShard {
    /// A batch for the sinks at these indices.
    Out(Vec<usize>, Batch),
    /// The shard's steps' states at the cut (state key → bytes), and when
    /// the shard began taking them and how long that took.
    Barrier(Arc<Cut>, Vec<(String, StepState)>, Instant, std::time::Duration),
}

/// A step's state at a cut.
#[derive(Debug)]
pub enum StepState {
    /// A whole snapshot in the step's own format ([`Step::snapshot`]).
    Whole(Vec<u8>),
    /// Its entries changed since the last cut, or all ([`Step::changes`]).
    Changes(weir_core::entries::Changes),
}

/// Sets the pipeline's stop flag if the thread it lives on panics, so
/// that the sources stop and every other thread winds down.
pub struct StopOnPanic(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The key a step's state is stored under in a checkpoint: its name with
/// one shard, else its name and its shard among how many.
pub fn state_key(step: &str, shard: u16, parallelism: u16) -> String {
    if parallelism <= 1 { step.to_string() } else { format!("{step}#{shard}/{parallelism}") }
}

/// The checkpoint key of the router's watermarks.
pub const ROUTER_STATE: &str = "#watermarks";
/// The checkpoint key of (shards, key groups) the checkpoint was taken with.
pub const SHARDS_STATE: &str = "#shards";

/// One shard: its steps, and where their outputs go.
pub struct Shard {
    pub index: u16,
    pub parallelism: u16,
    pub steps: Vec<Box<dyn Step>>,
    /// Each sink's index and route.
    pub routes: Vec<Route>,
    pub out: Sender<FromShard>,
    pub metrics: ShardMetrics,
}

/// Per-shard counters: what the skew between shards shows in.
#[derive(Clone)]
pub struct ShardMetrics {
    pub events: IntCounter,
    pub busy: prometheus::Counter,
    pub queue: prometheus::IntGauge,
}

impl Shard {
    /// Runs until the router hangs up. An `Err` is the host's failure.
    pub fn run(mut self, rx: Receiver<ToShard>, dead: &DeadLetters) -> std::io::Result<()> {
        while let Ok(msg) = rx.recv() {
            self.metrics.queue.set(rx.len() as i64);
            let started = Instant::now();
            match msg {
                ToShard::Batch(batch) => {
                    self.metrics.events.inc_by(batch.len() as u64);
                    let end = batch.watermarks.as_ref().map(|w| w.end);
                    if self.steps.is_empty() {
                        self.deliver(|r| *r == Route::Sources, batch)?;
                    } else {
                        if self.takes_any(|r| *r == Route::Sources) {
                            self.deliver(|r| *r == Route::Sources, batch.clone())?;
                        }
                        self.run_from(0, batch, dead)?;
                    }
                    if let Some(end) = end {
                        self.watermark(end, dead)?;
                    }
                }
                ToShard::Barrier(cut) => {
                    let snapshot = Instant::now();
                    let states = if cut.flush_only {
                        Vec::new()
                    } else {
                        let (index, parallelism) = (self.index, self.parallelism);
                        self.steps
                            .iter_mut()
                            .filter_map(|s| {
                                let changes = if cut.incremental { s.changes(cut.whole) } else { None };
                                let state = match changes {
                                    Some(c) => StepState::Changes(c),
                                    None => StepState::Whole(s.snapshot()?),
                                };
                                Some((state_key(s.name(), index, parallelism), state))
                            })
                            .collect()
                    };
                    if self.out.send(FromShard::Barrier(cut, states, snapshot, snapshot.elapsed())).is_err() {
                        return Ok(()); // the sink stage is gone; its error is reported there
                    }
                }
                ToShard::Idle => {
                    for s in &mut self.steps {
                        s.idle();
                    }
                }
                ToShard::Finish { release } => {
                    for i in (0..self.steps.len()).filter(|_| release) {
                        let out = self.steps[i].finish(dead)?;
                        let main = self.emit(i, out, None)?;
                        self.run_from(i + 1, main, dead)?;
                    }
                }
            }
            self.metrics.busy.inc_by(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Tells each step in turn where the pipeline's watermark is; what
    /// fires flows through the steps after it.
    fn watermark(&mut self, end: i64, dead: &DeadLetters) -> std::io::Result<()> {
        for i in 0..self.steps.len() {
            let out = self.steps[i].watermark(end, dead)?;
            if out.main.is_empty() && out.named.is_empty() {
                continue;
            }
            let main = self.emit(i, out, Some(end))?;
            self.run_from(i + 1, main, dead)?;
        }
        Ok(())
    }

    fn run_from(&mut self, first: usize, mut batch: Batch, dead: &DeadLetters) -> std::io::Result<()> {
        for i in first..self.steps.len() {
            if batch.is_empty() {
                return Ok(());
            }
            let watermarks = batch.watermarks.as_ref().map(|w| w.end);
            let out = self.steps[i].process(batch, dead)?;
            batch = self.emit(i, out, watermarks)?;
        }
        Ok(())
    }

    /// Sends a step's named outputs and its main output to the sinks that
    /// take them, and returns the main output for the next step.
    fn emit(&mut self, step: usize, out: Outputs, end: Option<i64>) -> std::io::Result<Batch> {
        for (name, batch) in out.named {
            self.deliver(|r| is_output(r, step, &name), batch)?;
        }
        let mut main = out.main;
        // The next step still closes windows where the input's watermark
        // stands, even if this step's outputs carry none.
        if let (Some(end), None) = (end, &main.watermarks) {
            main.watermarks = Some(Watermarks { before: Vec::new(), after: Vec::new(), end });
        }
        if step + 1 < self.steps.len() {
            if !main.is_empty() && self.takes_any(|r| is_output(r, step, "out")) {
                self.deliver(|r| is_output(r, step, "out"), main.clone())?;
            }
            Ok(main)
        } else {
            self.deliver(|r| is_output(r, step, "out"), main)?;
            Ok(Batch::default())
        }
    }

    fn takes_any(&self, takes: impl Fn(&Route) -> bool) -> bool {
        self.routes.iter().any(takes)
    }

    /// Hands `batch` to the sink stage for the sinks whose route `takes` it.
    fn deliver(&mut self, takes: impl Fn(&Route) -> bool, mut batch: Batch) -> std::io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let sinks: Vec<usize> = self.routes.iter().enumerate().filter(|(_, r)| takes(r)).map(|(i, _)| i).collect();
        if sinks.is_empty() {
            return Ok(());
        }
        batch.watermarks = None;
        batch.columns = None;
        if self.out.send(FromShard::Out(sinks, batch)).is_err() {
            return Err(std::io::Error::other("the sink stage stopped"));
        }
        Ok(())
    }
}

/// Whether `route` takes output `name` of step `step`.
fn is_output(route: &Route, step: usize, name: &str) -> bool {
    matches!(route, Route::Step { step: s, output } if *s == step && output == name)
}

/// The sink stage: writes what the shards send, and takes a checkpoint
/// once every shard's barrier has arrived.
pub struct SinkStage {
    pub sinks: Vec<SinkSlot>,
    /// (shards, key groups), recorded in every checkpoint.
    pub shape: (u16, u16),
    pub checkpointer: Option<super::checkpointer::Checkpointer>,
    /// Tells the router a cut is taken (or flushed), so it goes on.
    pub done: Sender<()>,
    /// `weir_checkpoint_stall_seconds`.
    pub stall: prometheus::Histogram,
}

/// How often an idle sink stage lets its sinks flush (file sinks'
/// `flush_interval` is at least this fine).
const SINK_TICK: std::time::Duration = std::time::Duration::from_millis(100);

impl SinkStage {
    /// Runs until every shard has hung up.
    pub fn run(mut self, shards: Vec<Receiver<FromShard>>) -> std::io::Result<()> {
        let mut open = vec![true; shards.len()];
        // Shards whose barrier arrived: what they send next is after the
        // cut, and waits until every shard's barrier has arrived.
        let mut aligned = vec![false; shards.len()];
        let mut arrived = 0;
        let mut states = BTreeMap::new();
        // When the first shard of this cut stopped to snapshot, and the
        // longest snapshot.
        let mut first = Instant::now();
        let mut longest = std::time::Duration::ZERO;
        let mut ticked = std::time::Instant::now();
        while open.iter().any(|o| *o) {
            let mut select = Select::new();
            let live: Vec<usize> = (0..shards.len()).filter(|i| open[*i] && !aligned[*i]).collect();
            for &i in &live {
                select.recv(&shards[i]);
            }
            // Every sink writes out what has waited longer than its flush
            // interval, whether events arrive (for other sinks) or not.
            let now = std::time::Instant::now();
            if now.duration_since(ticked) >= SINK_TICK {
                ticked = now;
                for slot in &mut self.sinks {
                    slot.sink.tick(now)?;
                }
                // A checkpoint that failed to be written stops the pipeline
                // now, not at a next cut that a quiet input may never bring.
                if let Some(c) = &mut self.checkpointer {
                    c.poll()?;
                }
            }
            let Ok(op) = select.select_timeout(SINK_TICK) else { continue };
            let i = live[op.index()];
            let msg = match op.recv(&shards[i]) {
                Ok(msg) => msg,
                Err(_) => {
                    open[i] = false;
                    // A shard gone while a cut waits for its barrier: the
                    // cut can never complete (the shard failed; its error
                    // is reported where it failed).
                    if arrived > 0 {
                        return Err(std::io::Error::other(format!("shard {i} stopped during a checkpoint")));
                    }
                    continue;
                }
            };
            match msg {
                FromShard::Out(sinks, batch) => {
                    for s in sinks {
                        let slot = &mut self.sinks[s];
                        let n = slot.sink.write(&batch, None)?;
                        slot.events.inc_by(n as u64);
                    }
                }
                FromShard::Barrier(cut, shard_states, began, snapshot) => {
                    if let Some(gone) = open.iter().position(|o| !o) {
                        return Err(std::io::Error::other(format!("shard {gone} stopped before a checkpoint")));
                    }
                    if arrived == 0 {
                        first = began;
                        longest = std::time::Duration::ZERO;
                    }
                    first = first.min(began);
                    states.extend(shard_states);
                    longest = longest.max(snapshot);
                    aligned[i] = true;
                    arrived += 1;
                    if arrived == shards.len() {
                        arrived = 0;
                        aligned.iter_mut().for_each(|a| *a = false);
                        self.cut(&cut, std::mem::take(&mut states))?;
                        if !cut.flush_only {
                            // Outputs stopped when the first shard stopped
                            // to snapshot, and go on now: the checkpoint is
                            // handed over (or, with a connector that commits
                            // with it, written and committed).
                            let stall = first.elapsed().as_secs_f64();
                            self.stall.observe(stall);
                            tracing::debug!(
                                ms = stall * 1e3,
                                snapshot_ms = longest.as_secs_f64() * 1e3,
                                "checkpoint stall"
                            );
                        }
                        if self.done.send(()).is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        // The last cut waited for its write; a failure of one before it
        // that nothing waited for is reported here.
        match &mut self.checkpointer {
            Some(c) => c.wait(),
            None => Ok(()),
        }
    }

    fn cut(&mut self, cut: &Cut, mut states: BTreeMap<String, StepState>) -> std::io::Result<()> {
        match &mut self.checkpointer {
            Some(c) if !cut.flush_only => {
                if let Some(r) = &cut.router_state {
                    states.insert(ROUTER_STATE.to_string(), StepState::Whole(r.clone()));
                }
                let shape = postcard::to_stdvec(&self.shape).expect("two numbers serialize");
                states.insert(SHARDS_STATE.to_string(), StepState::Whole(shape));
                c.take(&cut.positions, states, &mut self.sinks, cut.wait)
            }
            _ => {
                for slot in &mut self.sinks {
                    slot.sink.flush()?;
                }
                Ok(())
            }
        }
    }
}

/// The shard metric families (`weir_shard_*`), labelled by shard index:
/// at most `max_parallelism` values.
#[derive(Clone)]
pub struct ShardFamilies {
    events: prometheus::IntCounterVec,
    busy: prometheus::CounterVec,
    queue: prometheus::IntGaugeVec,
}

impl weir_core::metrics::Families for ShardFamilies {
    fn register(r: &prometheus::Registry) -> Self {
        let opts = prometheus::Opts::new;
        let events = prometheus::IntCounterVec::new(
            opts("weir_shard_events_total", "Events a shard received from the router (a hot key shows as skew)."),
            &["shard"],
        )
        .expect("valid metric");
        let busy = prometheus::CounterVec::new(
            opts("weir_shard_busy_seconds_total", "Time a shard spent processing, seconds."),
            &["shard"],
        )
        .expect("valid metric");
        let queue = prometheus::IntGaugeVec::new(
            opts("weir_shard_queue_batches", "Batches waiting in a shard's input queue."),
            &["shard"],
        )
        .expect("valid metric");
        r.register(Box::new(events.clone())).expect("metric registered once");
        r.register(Box::new(busy.clone())).expect("metric registered once");
        r.register(Box::new(queue.clone())).expect("metric registered once");
        ShardFamilies { events, busy, queue }
    }
}

impl ShardFamilies {
    pub fn shard(&self, index: u16) -> ShardMetrics {
        let label = index.to_string();
        ShardMetrics {
            events: self.events.with_label_values(&[&label]),
            busy: self.busy.with_label_values(&[&label]),
            queue: self.queue.with_label_values(&[&label]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stage() -> (SinkStage, Receiver<()>) {
        let (done, done_rx) = crossbeam_channel::bounded(1);
        let stall = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("stall", "test")).unwrap();
        (SinkStage { sinks: Vec::new(), shape: (2, 128), checkpointer: None, done, stall }, done_rx)
    }

    fn cut() -> Arc<Cut> {
        Arc::new(Cut {
            positions: BTreeMap::new(),
            router_state: None,
            flush_only: true,
            incremental: false,
            whole: false,
            wait: true,
        })
    }

    /// Records what it is given: each write's first payload, and "flush".
    struct Log(Arc<std::sync::Mutex<Vec<String>>>);

    impl Sink for Log {
        fn write(&mut self, batch: &Batch, _: Option<&[u32]>) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(String::from_utf8_lossy(batch.payload(0)).into_owned());
            Ok(batch.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.lock().unwrap().push("flush".into());
            Ok(())
        }
    }

    fn out(payload: &str) -> FromShard {
        let mut batch = Batch::default();
        batch.push(payload.as_bytes(), 0, weir_core::event::Origin::default());
        FromShard::Out(vec![0], batch)
    }

    #[test]
    fn what_a_shard_sends_after_its_barrier_waits_until_every_barrier_has_arrived() {
        let (mut stage, done) = stage();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let events = prometheus::IntCounter::new("events", "test").unwrap();
        stage.sinks.push(SinkSlot { name: "s".into(), from: Route::Sources, sink: Box::new(Log(log.clone())), events });
        let (a, a_rx) = crossbeam_channel::unbounded();
        let (b, b_rx) = crossbeam_channel::unbounded();
        // Shard 0 is ahead: its barrier and an output after the cut are
        // queued before shard 1 has sent what it put out before the cut.
        a.send(FromShard::Barrier(cut(), Vec::new(), Instant::now(), Duration::ZERO)).unwrap();
        a.send(out("a-after")).unwrap();
        b.send(out("b-before")).unwrap();
        b.send(FromShard::Barrier(cut(), Vec::new(), Instant::now(), Duration::ZERO)).unwrap();
        drop((a, b));
        stage.run(vec![a_rx, b_rx]).unwrap();
        assert_eq!(*log.lock().unwrap(), ["b-before", "flush", "a-after"], "the cut falls between before and after");
        assert!(done.try_recv().is_ok(), "the router is told");
    }

    #[test]
    fn a_cut_completes_once_every_shard_sent_its_barrier() {
        let (stage, done) = stage();
        let (a, a_rx) = crossbeam_channel::unbounded();
        let (b, b_rx) = crossbeam_channel::unbounded();
        a.send(FromShard::Barrier(cut(), Vec::new(), Instant::now(), Duration::ZERO)).unwrap();
        b.send(FromShard::Barrier(cut(), Vec::new(), Instant::now(), Duration::ZERO)).unwrap();
        drop((a, b));
        stage.run(vec![a_rx, b_rx]).unwrap();
        assert!(done.try_recv().is_ok(), "the router is told");
    }

    #[test]
    fn a_shard_gone_during_a_cut_fails_the_stage_instead_of_hanging() {
        let (stage, done) = stage();
        let (a, a_rx) = crossbeam_channel::unbounded();
        let (b, b_rx) = crossbeam_channel::unbounded::<FromShard>();
        a.send(FromShard::Barrier(cut(), Vec::new(), Instant::now(), Duration::ZERO)).unwrap();
        drop(b); // shard 1 failed before its barrier
        let err = stage.run(vec![a_rx, b_rx]).unwrap_err();
        assert!(err.to_string().contains("during a checkpoint") || err.to_string().contains("before a checkpoint"));
        assert!(done.try_recv().is_err(), "no cut was reported written");
        drop(a);
    }
}
