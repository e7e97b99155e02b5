//! Choosing the checkpoint a run resumes from.
//!
//! Damaged checkpoints are skipped with a loud log line. A connector that
//! commits with checkpoints (Kafka under exactly-once) says which one its
//! system committed last ([`Coordinator::choose`]); newer ones are removed.

use crate::checkpoint::{Checkpoint, CheckpointStore};
use weir_core::checkpoint::{Committed, Coordinator};
use weir_core::metrics::DurabilityMetrics;
use weir_core::metrics::events::{CheckpointCorrupt, InternalEvent};
use weir_core::position::StartFrom;

/// Picks and returns the checkpoint to restore, removing newer ones.
pub fn choose(
    store: &mut CheckpointStore,
    pipeline: &str,
    coordinators: &[Box<dyn Coordinator>],
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
            Err(e) => CheckpointCorrupt { metrics, path: &loaded.path, error: &e }.emit(),
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
    let candidates: Vec<_> = valid.iter().map(|c| &c.sources).collect();
    let mut chosen = 0;
    for c in coordinators {
        match c.choose(&candidates)? {
            Committed::Unknown => continue,
            Committed::At(0) => chosen = 0,
            Committed::At(i) => {
                tracing::info!(
                    "checkpoint {} was written but its transaction did not commit: resuming from checkpoint {}",
                    newest.epoch,
                    valid[i].epoch
                );
                chosen = i;
            }
            Committed::Nowhere => tracing::error!(
                "NO CHECKPOINT MATCHES the committed offsets of the consumer groups: resuming from checkpoint {}; \
                 results since it may be written again",
                newest.epoch
            ),
        }
        break;
    }
    let checkpoint = valid.swap_remove(chosen);
    store.discard_after(checkpoint.epoch)?;
    tracing::info!(epoch = checkpoint.epoch, "restoring checkpoint");
    Ok(Some(checkpoint))
}
