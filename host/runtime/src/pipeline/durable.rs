//! Opening what a checkpointed pipeline needs before its first event: the
//! connectors' sessions (a Kafka consumer group's committed offsets decide
//! which checkpoint is restored), the checkpoint, and the sources placed
//! where the checkpoint says.

use super::checkpointer::{Checkpointer, Clock, Store};
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
                    .with_context(|| format!("cannot open the checkpoint folder `{}`", c.dir.display()))?
                    .with_keyring(spec.encryption.clone())
                    .compacting_after(c.compact_after)
                    .accepting_plaintext(spec.accept_plaintext_checkpoints),
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

    /// Puts each shard's steps' state back from the restored checkpoint.
    /// A checkpoint taken with another number of shards (or key groups) is
    /// rescaled: each shard takes, from every old shard's state, the keys
    /// of its key groups. `field` names the key the state is split by.
    pub fn restore_steps(
        &self,
        shards: &mut [Vec<Box<dyn Step>>],
        max_parallelism: u16,
        field: Option<&str>,
    ) -> anyhow::Result<()> {
        let Some(c) = &self.restored else { return Ok(()) };
        let started = Instant::now();
        let parallelism = shards.len() as u16;
        let recorded =
            c.steps.get(super::worker::SHARDS_STATE).and_then(|b| postcard::from_bytes::<(u16, u16)>(b).ok());
        for (index, steps) in shards.iter_mut().enumerate() {
            for step in steps.iter_mut() {
                let name = step.name().to_string();
                let context = || {
                    format!(
                        "step `{name}`: cannot restore its state from checkpoint {} (a changed step? `weir run --from earliest` starts afresh)",
                        c.epoch
                    )
                };
                // This step's states in the checkpoint, by the shard count they were taken with.
                let theirs: Vec<(u16, &Vec<u8>)> = c
                    .steps
                    .iter()
                    .filter_map(|(k, v)| match k.strip_prefix(name.as_str()) {
                        Some("") => Some((1, v)),
                        Some(rest) => rest.strip_prefix('#')?.split_once('/')?.1.parse().ok().map(|p| (p, v)),
                        None => None,
                    })
                    .collect();
                let Some(&(old, _)) = theirs.first() else { continue };
                // One shard holds every key whatever the number of groups.
                let same_groups = recorded.is_none_or(|(_, max)| max == max_parallelism) || parallelism == 1;
                if old == parallelism && same_groups {
                    let key = super::worker::state_key(&name, index as u16, parallelism);
                    if let Some(state) = c.steps.get(&key) {
                        step.restore(state).with_context(context)?;
                    }
                    continue;
                }
                let Some(field) = field else {
                    anyhow::bail!(
                        "step `{name}`: checkpoint {} was taken on {old} shards and this run has no key to split its state by",
                        c.epoch
                    );
                };
                let mine = weir_core::keys::KeyFilter {
                    field: field.to_string(),
                    groups: weir_core::keys::groups_of(index as u16, max_parallelism, parallelism),
                    max_parallelism,
                };
                let states: Vec<&[u8]> = theirs.iter().map(|(_, v)| v.as_slice()).collect();
                step.restore_rescaled(&states, &mine).with_context(context)?;
                if index == 0 {
                    tracing::info!(step = %name, from = old, to = parallelism, "state rescaled by key group");
                }
            }
        }
        tracing::info!(ms = started.elapsed().as_millis() as u64, "steps' state restored");
        Ok(())
    }

    /// Whether the run goes on from a checkpoint.
    pub fn resumed(&self) -> bool {
        self.restored.is_some()
    }

    /// Puts the router's watermarks back from the restored checkpoint.
    pub fn restore_router(&self, watermark: &mut super::router::Watermark) -> anyhow::Result<()> {
        if let Some(bytes) = self.restored.as_ref().and_then(|c| c.steps.get(super::worker::ROUTER_STATE)) {
            watermark.restore(bytes)?;
        }
        Ok(())
    }

    /// Opens a sink through its connector's session.
    pub fn open_sink(&mut self, s: &SinkSpec, metrics: &Metrics) -> anyhow::Result<Box<dyn Sink>> {
        self.sessions.open_sink(s, metrics)
    }

    /// Cuts each sink back to where the restored checkpoint says (the
    /// restarted run writes what followed again).
    /// Returns the names of the sinks that went back.
    pub fn restore_sinks(&self, sinks: &mut [SinkSlot]) -> anyhow::Result<Vec<String>> {
        let Some(c) = &self.restored else { return Ok(Vec::new()) };
        let mut resumed = Vec::new();
        for slot in sinks {
            if let Some(p) = c.sinks.get(&slot.name) {
                slot.sink
                    .resume(p)
                    .with_context(|| format!("sink `{}`: cannot go back to the checkpoint", slot.name))?;
                resumed.push(slot.name.clone());
            }
        }
        Ok(resumed)
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

    /// The checkpoint clock (for the router) and taker (for the sink
    /// stage), if the pipeline checkpoints.
    pub fn checkpointer(
        self,
        spec: &PipelineSpec,
        metrics: &Metrics,
        dead: Arc<DeadLetters>,
    ) -> std::io::Result<Option<(Clock, Checkpointer)>> {
        let (Some(store), Some(c)) = (self.store, spec.checkpoint.as_ref()) else { return Ok(None) };
        let clock = Clock {
            interval: c.interval,
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
            last: Instant::now(),
            dirty: false,
            incremental: c.incremental,
            cut_once: false,
            whole_wanted: store.whole_wanted(),
        };
        let checkpointer = Checkpointer {
            dead,
            store: Store::new(store, !self.coordinators.is_empty(), metrics.durability())?,
            pipeline: spec.name.clone(),
            coordinators: self.coordinators,
            metrics: metrics.durability(),
            recovering_since: self.restored.is_some().then_some(self.started),
            last: None,
        };
        Ok(Some((clock, checkpointer)))
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
