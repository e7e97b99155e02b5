//! Kafka's part in checkpoints.
//!
//! The order makes a crash at any moment safe. With Kafka on both sides the
//! checkpoint file is written first and the transaction (outputs + consumed
//! offsets) commits after; on restart the groups' committed offsets say
//! which checkpoint's transaction committed ([`KafkaCoordinator::choose`]):
//! a crash between the two leaves a newest checkpoint whose transaction
//! never committed — its outputs are not visible, and the run must resume
//! from the one before. With no Kafka source to arbitrate, the transaction
//! commits first and the file follows: a crash in between repeats an
//! epoch's outputs rather than losing them. Without a transaction (at-least-
//! once), the file is written and the consumed offsets commit after it.

use super::{KafkaConsumer, KafkaProducer};
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_core::checkpoint::{Committed, Coordinator, Positions};
use weir_core::position::Position;

pub struct KafkaCoordinator {
    /// The transactional producer, under exactly-once.
    producer: Option<Arc<KafkaProducer>>,
    consumers: Vec<Arc<KafkaConsumer>>,
}

impl KafkaCoordinator {
    pub fn new(producer: Option<Arc<KafkaProducer>>, consumers: Vec<Arc<KafkaConsumer>>) -> Self {
        KafkaCoordinator { producer, consumers }
    }

    /// Each Kafka source's positions with its group, for the transaction.
    fn offsets(
        &self,
        positions: &Positions,
    ) -> std::io::Result<Vec<(rdkafka::TopicPartitionList, rdkafka::consumer::ConsumerGroupMetadata)>> {
        let mut out = Vec::new();
        for c in &self.consumers {
            let Some(Position::Partitioned { offsets, .. }) = positions.get(&c.source) else { continue };
            let group = c
                .group_metadata()
                .ok_or_else(|| std::io::Error::other(format!("kafka: source `{}` has no group metadata", c.source)))?;
            let tpl = c.offsets_list(offsets).map_err(|e| std::io::Error::other(format!("kafka: {e}")))?;
            out.push((tpl, group));
        }
        Ok(out)
    }
}

impl Coordinator for KafkaCoordinator {
    /// Under exactly-once with Kafka sources: the newest checkpoint whose
    /// Kafka positions equal the groups' committed offsets.
    fn choose(&self, candidates: &[&Positions]) -> anyhow::Result<Committed> {
        if self.producer.is_none() || self.consumers.is_empty() || candidates.is_empty() {
            return Ok(Committed::Unknown);
        }
        let mut committed = BTreeMap::new();
        for c in &self.consumers {
            let partitions = c.partitions()?;
            committed.insert(c.source.clone(), c.committed(&partitions)?);
        }
        Ok(match candidates.iter().position(|c| matches_committed(c, &self.consumers, &committed)) {
            Some(i) => Committed::At(i),
            // A run killed between writing its first checkpoint and
            // committing its transaction: that checkpoint's outputs were
            // aborted, so resuming from it would lose them.
            None if committed.values().all(BTreeMap::is_empty) => Committed::Before,
            None => Committed::Nowhere,
        })
    }

    fn commit(
        &mut self,
        epoch: u64,
        positions: &Positions,
        write: &mut dyn FnMut() -> std::io::Result<u64>,
    ) -> std::io::Result<u64> {
        match &self.producer {
            Some(producer) if !self.consumers.is_empty() => {
                let bytes = write()?;
                producer.commit(&self.offsets(positions)?).map_err(|e| {
                    std::io::Error::other(format!(
                        "kafka: transaction of checkpoint {epoch} aborted: {e}; the next run resumes from the last committed checkpoint"
                    ))
                })?;
                Ok(bytes)
            }
            Some(producer) => {
                producer.commit(&[]).map_err(|e| {
                    std::io::Error::other(format!("kafka: transaction of checkpoint {epoch} aborted: {e}"))
                })?;
                write()
            }
            None => {
                let bytes = write()?;
                for c in &self.consumers {
                    if let Some(Position::Partitioned { offsets, .. }) = positions.get(&c.source) {
                        c.commit(offsets).map_err(|e| std::io::Error::other(format!("kafka: commit offsets: {e}")))?;
                    }
                }
                Ok(bytes)
            }
        }
    }
}

/// Whether every Kafka position in `c` equals the group's committed offset.
fn matches_committed(
    c: &Positions,
    consumers: &[Arc<KafkaConsumer>],
    committed: &BTreeMap<String, BTreeMap<i32, i64>>,
) -> bool {
    consumers.iter().all(|k| {
        let done = &committed[&k.source];
        match c.get(&k.source) {
            Some(Position::Partitioned { offsets, .. }) => offsets.iter().all(|(p, o)| done.get(p) == Some(o)),
            _ => done.is_empty(),
        }
    })
}
