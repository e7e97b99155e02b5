//! The checkpoint coordinator. It runs on the worker thread between
//! batches — every point between two batches is a batch boundary — so a
//! checkpoint needs no barrier: flush the sinks, snapshot the steps, write
//! the file, commit the Kafka transaction.
//!
//! The order makes a crash at any moment safe. With Kafka on both sides the
//! checkpoint file is written first and the transaction (outputs + consumed
//! offsets) commits after; on restart the group's committed offsets say
//! which checkpoint's transaction committed (see `restore`). With no Kafka
//! source to arbitrate, the transaction commits first and the file follows:
//! a crash in between repeats an epoch's outputs rather than losing them.

use super::step::Step;
use super::worker::SinkSlot;
use crate::checkpoint::{Checkpoint, CheckpointStore, Position};
use crate::kafka::{KafkaConsumer, KafkaProducer};
use crate::metrics::DurabilityMetrics;
use crate::sources::now_ms;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Checkpointer {
    pub(super) store: CheckpointStore,
    pub(super) interval: Duration,
    pub(super) pipeline: String,
    /// Source names by index.
    pub(super) source_names: Vec<String>,
    pub(super) positions: BTreeMap<String, Position>,
    /// The transactional producer, under exactly-once.
    pub(super) producer: Option<Arc<KafkaProducer>>,
    pub(super) consumers: Vec<Arc<KafkaConsumer>>,
    pub(super) metrics: DurabilityMetrics,
    /// Set when a checkpoint was restored: the first new one reports the
    /// time since start as the recovery time.
    pub(super) recovering_since: Option<Instant>,
    pub(super) last: Instant,
    pub(super) dirty: bool,
}

impl Checkpointer {
    /// Records a source's position after a batch was handled.
    pub fn note(&mut self, position: Option<(u16, Position)>) {
        if let Some((i, p)) = position
            && let Some(name) = self.source_names.get(i as usize)
        {
            self.positions.insert(name.clone(), p);
        }
        self.dirty = true;
    }

    /// A rebalance takes `revoked` partitions away: checkpoint now (their
    /// offsets commit), then stop committing offsets for them — their new
    /// owner does.
    pub fn revoke(
        &mut self,
        revoked: Vec<(String, Vec<i32>)>,
        steps: &[Box<dyn Step>],
        sinks: &mut [SinkSlot],
    ) -> std::io::Result<()> {
        self.take(steps, sinks)?;
        for (source, partitions) in revoked {
            if let Some(Position::Kafka { offsets, .. }) = self.positions.get_mut(&source) {
                for p in partitions {
                    offsets.remove(&p);
                }
            }
        }
        Ok(())
    }

    /// Whether a checkpoint is due.
    pub fn due(&self) -> bool {
        self.dirty && self.last.elapsed() >= self.interval
    }

    /// Takes a checkpoint. An error means the pipeline must stop: what was
    /// written since the last checkpoint is not committed, and the next run
    /// resumes from it.
    pub fn take(&mut self, steps: &[Box<dyn Step>], sinks: &mut [SinkSlot]) -> std::io::Result<()> {
        let started = Instant::now();
        let result = self.take_inner(steps, sinks);
        match &result {
            Ok(bytes) => {
                let took = started.elapsed();
                tracing::debug!(
                    epoch = self.store.next_epoch() - 1,
                    bytes,
                    ms = took.as_secs_f64() * 1e3,
                    "checkpoint taken"
                );
                self.metrics.checkpoint_seconds.observe(took.as_secs_f64());
                self.metrics.checkpoint_bytes.set(*bytes as i64);
                self.metrics.checkpoint_epoch.set(self.store.next_epoch() as i64 - 1);
                self.metrics.checkpoint_last_success.set(now_ms() as f64 / 1000.0);
                self.metrics.checkpoints.with_label_values(&["ok"]).inc();
                if let Some(since) = self.recovering_since.take() {
                    let secs = since.elapsed().as_secs_f64();
                    self.metrics.recovery_seconds.set(secs);
                    tracing::info!(seconds = secs, "recovered: first checkpoint after the restore");
                }
            }
            Err(e) => {
                self.metrics.checkpoints.with_label_values(&["failed"]).inc();
                tracing::error!("checkpoint {} failed: {e}", self.store.next_epoch());
            }
        }
        self.last = Instant::now();
        self.dirty = false;
        result.map(|_| ())
    }

    fn take_inner(&mut self, steps: &[Box<dyn Step>], sinks: &mut [SinkSlot]) -> std::io::Result<u64> {
        for slot in sinks.iter_mut() {
            slot.sink.flush()?;
        }
        let checkpoint = Checkpoint {
            epoch: self.store.next_epoch(),
            pipeline: self.pipeline.clone(),
            created_ms: now_ms(),
            sources: self.positions.clone(),
            steps: steps.iter().filter_map(|s| s.snapshot().map(|b| (s.name().to_string(), b))).collect(),
        };
        let epoch = checkpoint.epoch;
        let bytes = match &self.producer {
            Some(producer) if !self.consumers.is_empty() => {
                let bytes = self.store.write(&checkpoint)?;
                producer.commit(&self.offsets()?).map_err(|e| {
                    std::io::Error::other(format!(
                        "kafka: transaction of checkpoint {epoch} aborted: {e}; the next run resumes from the last committed checkpoint"
                    ))
                })?;
                bytes
            }
            Some(producer) => {
                producer.commit(&[]).map_err(|e| {
                    std::io::Error::other(format!("kafka: transaction of checkpoint {epoch} aborted: {e}"))
                })?;
                self.store.write(&checkpoint)?
            }
            None => {
                let bytes = self.store.write(&checkpoint)?;
                for c in &self.consumers {
                    if let Some(Position::Kafka { offsets, .. }) = self.positions.get(&c.source) {
                        c.commit(offsets).map_err(|e| std::io::Error::other(format!("kafka: commit offsets: {e}")))?;
                    }
                }
                bytes
            }
        };
        Ok(bytes)
    }

    /// Each Kafka source's positions with its group, for the transaction.
    fn offsets(&self) -> std::io::Result<Vec<(rdkafka::TopicPartitionList, rdkafka::consumer::ConsumerGroupMetadata)>> {
        let mut out = Vec::new();
        for c in &self.consumers {
            let Some(Position::Kafka { offsets, .. }) = self.positions.get(&c.source) else { continue };
            let group = c
                .group_metadata()
                .ok_or_else(|| std::io::Error::other(format!("kafka: source `{}` has no group metadata", c.source)))?;
            let tpl = c.offsets_list(offsets).map_err(|e| std::io::Error::other(format!("kafka: {e}")))?;
            out.push((tpl, group));
        }
        Ok(out)
    }
}
