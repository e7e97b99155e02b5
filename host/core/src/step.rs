//! The step trait: one batch in, named outputs out.

use crate::dead_letter::DeadLetters;
use crate::event::Batch;

/// What a step produced from one batch.
#[derive(Debug, Default)]
pub struct Outputs {
    /// The main output ("out"): it feeds the next step.
    pub main: Batch,
    /// Other outputs by name, for sinks that take them.
    pub named: Vec<(String, Batch)>,
}

/// A processing step. Steps run on one worker thread, batch by batch, in
/// order. Only [`Step::name`] and [`Step::process`] are required; the
/// hooks have no-op defaults, so a stateless step stays small.
pub trait Step: Send {
    fn name(&self) -> &str;

    /// Processes one batch. Events it refuses go to `dead`; an `Err` is a
    /// failure of the host (dead-letter output unwritable), not of the step.
    fn process(&mut self, batch: Batch, dead: &DeadLetters) -> std::io::Result<Outputs>;

    /// Called when no batch has come for a while; a plugin step takes a
    /// pending new version here, so that a swap never waits for events.
    fn idle(&mut self) {}

    /// The pipeline's watermark reached `watermark` (after a batch, also
    /// one that held none of this shard's events): a step that closes
    /// windows on it emits the rows that fire.
    fn watermark(&mut self, _watermark: i64, _dead: &DeadLetters) -> std::io::Result<Outputs> {
        Ok(Outputs::default())
    }

    /// Called once at the end of finite input, after the last batch; steps
    /// that hold events back (windows) release them here.
    fn finish(&mut self, _dead: &DeadLetters) -> std::io::Result<Outputs> {
        Ok(Outputs::default())
    }

    /// The step's state (windows, watermarks) as bytes, for a checkpoint;
    /// `None` for stateless steps.
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }

    /// What changed in the step's state since the last call (`whole`: all
    /// of it), as entries, for an incremental checkpoint; `None` when the
    /// step does not keep its state as entries, and [`Step::snapshot`] is
    /// written whole each time. A step answers the same way at every cut
    /// (an incremental checkpoint without a step's changes holds no state
    /// for it). A step answering `Some` must accept in
    /// [`Step::restore`] (and [`Step::restore_rescaled`]) the
    /// [`crate::entries::encode`]d entries its changes add up to.
    fn changes(&mut self, _whole: bool) -> Option<crate::entries::Changes> {
        None
    }

    /// Puts back the state a [`Step::snapshot`] of the same step recorded.
    fn restore(&mut self, _state: &[u8]) -> anyhow::Result<()> {
        Ok(())
    }

    /// Puts back, from the snapshots this step's copies took in a run with
    /// another number of shards, the state of the keys `mine` owns (a
    /// rescale). A step that keeps state by key implements it.
    fn restore_rescaled(&mut self, states: &[&[u8]], _mine: &crate::keys::KeyFilter) -> anyhow::Result<()> {
        if states.is_empty() {
            return Ok(());
        }
        anyhow::bail!("step `{}` cannot move its state between shard counts", self.name())
    }
}
