//! Opening what a checkpointed pipeline needs before its first event: the
//! connectors' sessions (a Kafka consumer group's committed offsets decide
//! which checkpoint is restored), the checkpoint, and the sources placed
//! where the checkpoint says.

use super::checkpointer::Checkpointer;
use super::restore;
use super::worker::SinkSlot;
use crate::checkpoint::{Checkpoint, CheckpointStore};
use anyhow::Context;
use std::sync::Arc;
use std::time::Instant;
use weir_config::{PipelineSpec, SinkSpec};
use weir_connectors::{SessionContext, Sessions, SourceContext};
use weir_core::checkpoint::{Coordinator, Gate};
use weir_core::dead_letter::DeadLetters;
use weir_core::metrics::Metrics;
use weir_core::position::{Position, StartFrom};
use weir_core::sink::Sink;
use weir_core::source::Opened;
use weir_core::step::Step;

/// The durable side of a pipeline being started.
pub struct Durable {
    sessions: Sessions,
    coordinators: Vec<Box<dyn Coordinator>>,
    store: Option<CheckpointStore>,
    restored: Option<Checkpoint>,
    started: Instant,
    /// Where a source giving up partitions waits for the worker's checkpoint.
    pub gate: Arc<Gate>,
}

impl Durable {
    /// Opens the connectors' sessions and the checkpoint folder and picks
    /// the checkpoint to restore.
    pub fn open(spec: &PipelineSpec, from: StartFrom, instance: &str, metrics: &Metrics) -> anyhow::Result<Self> {
        let started = Instant::now();
        let gate = Arc::new(Gate::default());
        let cx = SessionContext { spec, instance, gate: &gate, metrics, from };
        let mut sessions = Sessions::open(&cx)?;
        let coordinators = sessions.coordinators();
        let mut store = match &spec.checkpoint {
            Some(c) => Some(
                CheckpointStore::open(&c.dir, c.keep)
                    .with_context(|| format!("cannot open the checkpoint folder `{}`", c.dir.display()))?,
            ),
            None => None,
        };
        let restored = match &mut store {
            Some(st) => restore::choose(st, &spec.name, &coordinators, from, &metrics.durability())
                .context("cannot restore a checkpoint")?,
            None => None,
        };
        Ok(Durable { sessions, coordinators, store, restored, started, gate })
    }

    /// Puts each step's state back from the restored checkpoint.
    pub fn restore_steps(&self, steps: &mut [Box<dyn Step>]) -> anyhow::Result<()> {
        let Some(c) = &self.restored else { return Ok(()) };
        for step in steps.iter_mut() {
            if let Some(state) = c.steps.get(step.name()) {
                step.restore(state).with_context(|| {
                    format!(
                        "step `{}`: cannot restore its state from checkpoint {} (a changed step? `weir run --from earliest` starts afresh)",
                        step.name(),
                        c.epoch
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Opens a sink through its connector's session.
    pub fn open_sink(&mut self, s: &SinkSpec, metrics: &Metrics) -> anyhow::Result<Box<dyn Sink>> {
        self.sessions.open_sink(s, metrics)
    }

    /// Cuts each sink back to where the restored checkpoint says (the
    /// restarted run writes what followed again).
    pub fn restore_sinks(&self, sinks: &mut [SinkSlot]) -> anyhow::Result<()> {
        let Some(c) = &self.restored else { return Ok(()) };
        for slot in sinks {
            if let Some(p) = c.sinks.get(&slot.name) {
                slot.sink
                    .resume(p)
                    .with_context(|| format!("sink `{}`: cannot go back to the checkpoint", slot.name))?;
            }
        }
        Ok(())
    }

    /// Cuts the dead-letter output back to where the restored checkpoint says.
    pub fn restore_dead_letters(&self, dead: &DeadLetters) -> anyhow::Result<()> {
        if let Some(p) = self.restored.as_ref().and_then(|c| c.dead_letter.as_ref()) {
            dead.resume(p).with_context(|| format!("cannot cut `{}` back to the checkpoint", dead.path().display()))?;
        }
        Ok(())
    }

    /// Opens the source at index `i`, placed where the checkpoint says.
    pub fn open_source(
        &mut self,
        spec: &PipelineSpec,
        i: usize,
        dead: &Arc<DeadLetters>,
        metrics: &Metrics,
    ) -> anyhow::Result<Opened> {
        let s = &spec.sources[i];
        let restored = self.restored.as_ref().and_then(|c| c.sources.get(&s.name));
        let cx = SourceContext { spec: s, index: i as u16, dead, metrics, restored };
        self.sessions.open_source(&cx)
    }

    /// The checkpoint coordinator for the worker, if the pipeline checkpoints.
    pub fn checkpointer(self, spec: &PipelineSpec, metrics: &Metrics, dead: Arc<DeadLetters>) -> Option<Checkpointer> {
        let (store, c) = (self.store?, spec.checkpoint.as_ref()?);
        Some(Checkpointer {
            dead,
            store,
            interval: c.interval,
            pipeline: spec.name.clone(),
            source_names: spec.sources.iter().map(|s| s.name.clone()).collect(),
            // Positions in partitioned logs start empty: each batch brings its
            // source's partitions read so far (never those of other members
            // of its group).
            positions: self
                .restored
                .as_ref()
                .map(|c| {
                    c.sources
                        .iter()
                        .filter(|(_, p)| !matches!(p, Position::Partitioned { .. }))
                        .map(|(n, p)| (n.clone(), p.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            coordinators: self.coordinators,
            metrics: metrics.durability(),
            recovering_since: self.restored.is_some().then_some(self.started),
            last: Instant::now(),
            dirty: false,
        })
    }
}

/// Sink slots built with [`Durable::open_sink`].
pub fn open_sinks(spec: &PipelineSpec, durable: &mut Durable, metrics: &Metrics) -> anyhow::Result<Vec<SinkSlot>> {
    let mut sinks = Vec::new();
    for s in &spec.sinks {
        let sink = durable.open_sink(s, metrics).with_context(|| format!("cannot open sink `{}`", s.name))?;
        sinks.push(SinkSlot { name: s.name.clone(), from: s.from.clone(), sink, events: metrics.sink(&s.name) });
    }
    Ok(sinks)
}
