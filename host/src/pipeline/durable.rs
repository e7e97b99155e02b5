//! Opening what a checkpointed pipeline needs before its first event: the
//! Kafka consumers (their groups' offsets decide which checkpoint is
//! restored), the checkpoint, the Kafka producers, and the sources placed
//! where the checkpoint says.

use super::checkpointer::Checkpointer;
use super::restore::{self, StartFrom};
use super::step::Step;
use super::worker::SinkSlot;
use crate::checkpoint::{Checkpoint, CheckpointStore, Position};
use crate::config::{PipelineSpec, SinkSpecKind, SourceSpecKind};
use crate::kafka::{KafkaConsumer, KafkaProducer, KafkaSink, KafkaSource, RevokeGate, committed_positions};
use crate::metrics::Metrics;
use crate::sources::Source;
use anyhow::Context;
use std::sync::Arc;
use std::time::Instant;

/// The durable side of a pipeline being started.
pub struct Durable {
    consumers: Vec<(usize, Arc<KafkaConsumer>)>,
    store: Option<CheckpointStore>,
    restored: Option<Checkpoint>,
    /// The transactional producer every Kafka sink shares, under exactly-once.
    producer: Option<Arc<KafkaProducer>>,
    exactly_once: bool,
    from: StartFrom,
    started: Instant,
    /// Where a Kafka rebalance waits for the worker's checkpoint.
    pub gate: Arc<RevokeGate>,
}

impl Durable {
    /// Opens the consumers and the checkpoint folder and picks the
    /// checkpoint to restore.
    pub fn open(spec: &PipelineSpec, from: StartFrom, instance: &str, metrics: &Metrics) -> anyhow::Result<Self> {
        let started = Instant::now();
        let durability = metrics.durability();
        let gate = Arc::new(RevokeGate::default());
        let mut consumers = Vec::new();
        for (i, s) in spec.sources.iter().enumerate() {
            if let SourceSpecKind::Kafka(k) = &s.kind {
                let c = KafkaConsumer::open(&s.name, k, instance, gate.clone(), durability.clone())
                    .with_context(|| format!("source `{}`: cannot create the Kafka consumer", s.name))?;
                consumers.push((i, c));
            }
        }
        let exactly_once = spec.checkpoint.as_ref().is_some_and(|c| c.exactly_once);
        let first_kafka_sink = spec.sinks.iter().find_map(|s| match &s.kind {
            SinkSpecKind::Kafka(k) => Some((s, k)),
            _ => None,
        });
        let mut store = match &spec.checkpoint {
            Some(c) => Some(
                CheckpointStore::open(&c.dir, c.keep)
                    .with_context(|| format!("cannot open the checkpoint folder `{}`", c.dir.display()))?,
            ),
            None => None,
        };
        // The transactional producer first: starting it fences a killed
        // run's producer and aborts its open transaction, whose pending
        // offset commits would otherwise hide the group's committed offsets.
        let producer = match first_kafka_sink {
            Some((s, k)) if exactly_once => {
                let id = format!("weir-{}-{instance}", spec.name);
                Some(
                    KafkaProducer::open(&format!("sink {}", s.name), k, Some(&id), durability.clone()).with_context(
                        || format!("sink `{}`: cannot start the transactional producer `{id}`", s.name),
                    )?,
                )
            }
            _ => None,
        };
        let all: Vec<_> = consumers.iter().map(|(_, c)| c.clone()).collect();
        let restored = match &mut store {
            Some(st) => restore::choose(st, &spec.name, &all, producer.is_some(), from, &durability)
                .context("cannot restore a checkpoint")?,
            None => None,
        };
        Ok(Durable { consumers, store, restored, producer, exactly_once, from, started, gate })
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

    /// Opens a sink; Kafka sinks share the transactional producer.
    pub fn open_sink(
        &mut self,
        s: &crate::config::SinkSpec,
        metrics: &Metrics,
    ) -> anyhow::Result<Box<dyn crate::sinks::Sink>> {
        let SinkSpecKind::Kafka(k) = &s.kind else { return Ok(crate::sinks::open(s)?) };
        let client = format!("sink {}", s.name);
        let producer = match &self.producer {
            Some(p) => p.clone(), // the transactional one, shared
            None => KafkaProducer::open(&client, k, None, metrics.durability())
                .with_context(|| format!("sink `{}`: cannot create the Kafka producer", s.name))?,
        };
        Ok(Box::new(KafkaSink::new(producer, k, s.metadata)))
    }

    /// Opens the source at index `i`, placed where the checkpoint says.
    pub fn open_source(
        &self,
        spec: &PipelineSpec,
        i: usize,
        dead: &Arc<crate::dead_letter::DeadLetters>,
        metrics: &Metrics,
    ) -> anyhow::Result<crate::sources::Opened> {
        let s = &spec.sources[i];
        let position = self.restored.as_ref().and_then(|c| c.sources.get(&s.name));
        if let SourceSpecKind::Kafka(k) = &s.kind {
            let consumer = self.consumers.iter().find(|(j, _)| *j == i).expect("opened above").1.clone();
            let start = match self.from {
                StartFrom::Replay(start) => start,
                StartFrom::Checkpoint => k.start,
            };
            consumer
                .plan_starts(
                    committed_positions(position, &k.topic),
                    self.from == StartFrom::Checkpoint,
                    self.exactly_once,
                    start,
                )
                .with_context(|| format!("topic `{}` on {}", k.topic, k.brokers))?;
            consumer.subscribe()?;
            let source: Box<dyn Source> = Box::new(KafkaSource::new(consumer, i as u16, s, k.stop_at_end));
            return Ok((source, None));
        }
        let (mut source, http) = crate::sources::open(s, i as u16, dead, &metrics.source(&s.name))?;
        if let Some(p) = position {
            source.resume(p)?;
            tracing::info!(source = %s.name, position = ?p, "source resumes from the checkpoint");
        }
        Ok((source, http))
    }

    /// The checkpoint coordinator for the worker, if the pipeline checkpoints.
    pub fn checkpointer(self, spec: &PipelineSpec, metrics: &Metrics) -> Option<Checkpointer> {
        let (store, c) = (self.store?, spec.checkpoint.as_ref()?);
        Some(Checkpointer {
            store,
            interval: c.interval,
            pipeline: spec.name.clone(),
            source_names: spec.sources.iter().map(|s| s.name.clone()).collect(),
            // Kafka positions start empty: each batch brings its source's
            // partitions read so far (never those of other group members).
            positions: self
                .restored
                .as_ref()
                .map(|c| {
                    c.sources
                        .iter()
                        .filter(|(_, p)| !matches!(p, Position::Kafka { .. }))
                        .map(|(n, p)| (n.clone(), p.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            producer: self.producer,
            consumers: self.consumers.into_iter().map(|(_, c)| c).collect(),
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
