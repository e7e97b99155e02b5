//! Choosing the checkpoint a run resumes from.
//!
//! Damaged checkpoints are skipped with a loud log line. Under exactly-once
//! with Kafka sources, the checkpoint chosen is the newest whose Kafka
//! positions equal the group's committed offsets: a checkpoint is written
//! just before its transaction commits, so a crash between the two leaves
//! a newest checkpoint whose transaction never committed — its outputs are
//! not visible, and the run must resume from the one before.

use crate::checkpoint::{Checkpoint, CheckpointStore, Position};
use crate::kafka::KafkaConsumer;
use crate::metrics::DurabilityMetrics;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where a run starts (`weir run --from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The last checkpoint (or, without one, the group's offsets, then each
    /// source's `start`).
    #[default]
    Checkpoint,
    /// A replay: checkpoints are set aside, state starts empty, and every
    /// Kafka source starts here instead of at its committed offsets.
    Replay(crate::config::KafkaStart),
}

/// Picks and returns the checkpoint to restore, removing newer ones.
pub fn choose(
    store: &mut CheckpointStore,
    pipeline: &str,
    consumers: &[Arc<KafkaConsumer>],
    transactional: bool,
    from: StartFrom,
    metrics: &DurabilityMetrics,
) -> anyhow::Result<Option<Checkpoint>> {
    if let StartFrom::Replay(start) = from {
        if let Some(aside) = store.set_aside()? {
            tracing::warn!(moved_to = %aside.display(), ?start, "replay: the checkpoints are set aside, state starts empty");
        }
        return Ok(None);
    }
    let mut valid = Vec::new();
    for loaded in store.load_all()? {
        match loaded.checkpoint {
            Ok(c) => valid.push(c),
            Err(e) => {
                metrics.checkpoints.with_label_values(&["corrupt"]).inc();
                tracing::error!(
                    "CHECKPOINT DAMAGED: {} ({e}); it is skipped and an earlier checkpoint is used",
                    loaded.path.display()
                );
            }
        }
    }
    if let Some(other) = valid.iter().find(|c| c.pipeline != pipeline) {
        anyhow::bail!(
            "the checkpoint folder `{}` holds checkpoints of pipeline `{}`, not `{pipeline}`",
            store.dir().display(),
            other.pipeline
        );
    }
    let Some(newest) = valid.first() else { return Ok(None) };
    let chosen = if transactional && !consumers.is_empty() {
        let mut committed = BTreeMap::new();
        for c in consumers {
            let partitions = c.partitions()?;
            committed.insert(c.source.clone(), c.committed(&partitions)?);
        }
        match valid.iter().position(|c| matches_committed(c, consumers, &committed)) {
            Some(0) => 0,
            Some(i) => {
                tracing::info!(
                    "checkpoint {} was written but its transaction did not commit: resuming from checkpoint {}",
                    newest.epoch,
                    valid[i].epoch
                );
                i
            }
            None => {
                tracing::error!(
                    "NO CHECKPOINT MATCHES the committed offsets of the consumer groups: resuming from checkpoint {}; \
                     results since it may be written again",
                    newest.epoch
                );
                0
            }
        }
    } else {
        0
    };
    let checkpoint = valid.swap_remove(chosen);
    store.discard_after(checkpoint.epoch)?;
    tracing::info!(epoch = checkpoint.epoch, "restoring checkpoint");
    Ok(Some(checkpoint))
}

/// Whether every Kafka position in `c` equals the group's committed offset.
fn matches_committed(
    c: &Checkpoint,
    consumers: &[Arc<KafkaConsumer>],
    committed: &BTreeMap<String, BTreeMap<i32, i64>>,
) -> bool {
    consumers.iter().all(|k| {
        let done = &committed[&k.source];
        match c.sources.get(&k.source) {
            Some(Position::Kafka { offsets, .. }) => offsets.iter().all(|(p, o)| done.get(p) == Some(o)),
            _ => done.is_empty(),
        }
    })
}
