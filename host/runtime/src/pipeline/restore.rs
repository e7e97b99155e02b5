//! Choosing the checkpoint a run resumes from.
//!
//! Damaged checkpoints are skipped with a loud log line. A connector that
//! commits with checkpoints (Kafka under exactly-once) says which one its
//! system committed last ([`Coordinator::choose`]); newer ones are removed.

use crate::checkpoint::{Checkpoint, CheckpointStore, Corrupt};
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
    let started = std::time::Instant::now();
    let chains = store.read_chains()?;
    let mut valid = Vec::new();
    for loaded in chains.headers() {
        match loaded.checkpoint {
            Ok(c) => valid.push(c),
            // Skipping it would start the run as if there were no state.
            Err(Corrupt::Locked(why)) => anyhow::bail!(
                "checkpoint `{}` cannot be read: {why}. Give the key it was written with ([encryption] keys_file \
                 or keys_env; old keys stay listed after the new one until no file needs them)",
                loaded.path.display()
            ),
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
            // Only a lone first checkpoint is that case for sure: a group
            // with nothing committed after longer runs had its offsets
            // expired, reset or renamed, and falls to the loud line below.
            Committed::Before if valid.len() == 1 && newest.epoch == 1 => {
                let aside = store.set_aside()?;
                tracing::warn!(
                    moved_to = ?aside,
                    "the first checkpoint's transaction never committed (the consumer groups have committed \
                     nothing): it is set aside and the run starts where a new one would"
                );
                return Ok(None);
            }
            Committed::Before | Committed::Nowhere => tracing::error!(
                "NO CHECKPOINT MATCHES the committed offsets of the consumer groups: resuming from checkpoint {}; \
                 results since it may be written again",
                newest.epoch
            ),
        }
        break;
    }
    // Only the chosen one's state is folded from its chain.
    let epoch = valid[chosen].epoch;
    let checkpoint = chains.load(epoch).map_err(|e| anyhow::anyhow!("checkpoint {epoch} cannot be read: {e}"))?;
    store.discard_after(checkpoint.epoch)?;
    let ms = started.elapsed().as_millis() as u64;
    tracing::info!(epoch = checkpoint.epoch, read_and_folded_ms = ms, "restoring checkpoint");
    Ok(Some(checkpoint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::checkpoint::Positions;
    use weir_core::position::Position;

    /// A coordinator that always gives `answer`.
    struct Says(Committed);

    impl Coordinator for Says {
        fn choose(&self, _: &[&Positions]) -> anyhow::Result<Committed> {
            Ok(self.0)
        }
        fn commit(
            &mut self,
            _: u64,
            _: &Positions,
            write: &mut dyn FnMut() -> std::io::Result<u64>,
        ) -> std::io::Result<u64> {
            write()
        }
    }

    fn store_with_two(dir: &std::path::Path) -> CheckpointStore {
        let mut store = CheckpointStore::open(dir, 3).unwrap();
        for _ in 0..2 {
            let epoch = store.next_epoch();
            let c = Checkpoint {
                epoch,
                pipeline: "p".into(),
                created_ms: 0,
                sources: [("k".to_string(), Position::File { offset: epoch, line: 0 })].into(),
                steps: Default::default(),
                changes: Default::default(),
                parent: None,
                sinks: Default::default(),
                dead_letter: None,
            };
            store.write(&c).unwrap();
        }
        store
    }

    #[test]
    fn the_committed_checkpoint_is_restored_and_none_when_nothing_was_committed() {
        let metrics = weir_core::metrics::Metrics::new("p").durability();
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_with_two(dir.path());
        let said: Vec<Box<dyn Coordinator>> = vec![Box::new(Says(Committed::At(1)))];
        let c = choose(&mut store, "p", &said, StartFrom::Checkpoint, &metrics).unwrap().unwrap();
        assert_eq!(c.epoch, 1, "the older one, whose transaction committed; the newer is removed");
        assert_eq!(store.load_all().unwrap().len(), 1);

        // A run killed before its first transaction committed: resuming from
        // its checkpoint would skip the events whose outputs were aborted.
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_with_two(dir.path());
        let said: Vec<Box<dyn Coordinator>> = vec![Box::new(Says(Committed::Before))];
        let c = choose(&mut store, "p", &said, StartFrom::Checkpoint, &metrics).unwrap().unwrap();
        assert_eq!(c.epoch, 2, "two checkpoints and nothing committed: offsets expired or reset; the newest, loudly");
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_with_two(dir.path());
        std::fs::remove_file(&store.load_all().unwrap()[0].path).unwrap();
        assert!(choose(&mut store, "p", &said, StartFrom::Checkpoint, &metrics).unwrap().is_none());
        assert!(store.load_all().unwrap().is_empty(), "set aside, not used");
        let aside = std::fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
        assert_eq!(aside, 1, "kept in a folder of their own");
    }
}
