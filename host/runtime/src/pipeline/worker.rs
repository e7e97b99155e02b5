//! The worker: runs the steps in order on each batch and hands every output
//! to the sinks that take it.

use prometheus::IntCounter;
use weir_config::Route;
use weir_core::dead_letter::DeadLetters;
use weir_core::event::Batch;
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

pub struct Worker {
    steps: Vec<Box<dyn Step>>,
    sinks: Vec<SinkSlot>,
    checkpointer: Option<super::checkpointer::Checkpointer>,
}

impl Worker {
    pub fn new(
        steps: Vec<Box<dyn Step>>,
        sinks: Vec<SinkSlot>,
        checkpointer: Option<super::checkpointer::Checkpointer>,
    ) -> Self {
        Worker { steps, sinks, checkpointer }
    }

    /// Runs one batch from the sources through every step; `position` is
    /// where its source stands after it. A checkpoint follows when one is due.
    pub fn handle(
        &mut self,
        batch: Batch,
        position: Option<(u16, Position)>,
        dead: &DeadLetters,
    ) -> std::io::Result<()> {
        self.deliver(|r| *r == Route::Sources, &batch)?;
        self.run_from(0, batch, dead)?;
        if let Some(c) = &mut self.checkpointer {
            c.note(position);
            if c.due() {
                c.take(&self.steps, &mut self.sinks)?;
            }
        }
        Ok(())
    }

    /// A source is giving partitions away: checkpoint first.
    pub fn revoke(&mut self, revoked: Vec<(String, Vec<i32>)>) -> std::io::Result<()> {
        match &mut self.checkpointer {
            Some(c) => c.revoke(revoked, &self.steps, &mut self.sinks),
            None => Ok(()),
        }
    }

    /// No batch for a while: lets the steps do what waits for a boundary,
    /// and takes a checkpoint if one is due.
    pub fn idle(&mut self) -> std::io::Result<()> {
        for s in &mut self.steps {
            s.idle();
        }
        if let Some(c) = &mut self.checkpointer
            && c.due()
        {
            c.take(&self.steps, &mut self.sinks)?;
        }
        Ok(())
    }

    /// End of input: each step in turn releases what it holds (when
    /// `release`), which flows through the steps after it.
    pub fn finish(&mut self, dead: &DeadLetters, release: bool) -> std::io::Result<()> {
        for i in (0..self.steps.len()).filter(|_| release) {
            let out = self.steps[i].finish(dead)?;
            let main = self.emit(i, out)?;
            self.run_from(i + 1, main, dead)?;
        }
        for slot in &mut self.sinks {
            slot.sink.flush()?;
        }
        // The last checkpoint commits what the end of input released.
        if let Some(c) = &mut self.checkpointer {
            c.note(None);
            c.take(&self.steps, &mut self.sinks)?;
        }
        Ok(())
    }

    fn run_from(&mut self, first: usize, mut batch: Batch, dead: &DeadLetters) -> std::io::Result<()> {
        for i in first..self.steps.len() {
            if batch.is_empty() {
                return Ok(());
            }
            let out = self.steps[i].process(batch, dead)?;
            batch = self.emit(i, out)?;
        }
        Ok(())
    }

    /// Delivers a step's named outputs and its main output to their sinks,
    /// and returns the main output for the next step.
    fn emit(&mut self, step: usize, out: Outputs) -> std::io::Result<Batch> {
        for (name, batch) in &out.named {
            self.deliver(|r| is_output(r, step, name), batch)?;
        }
        self.deliver(|r| is_output(r, step, "out"), &out.main)?;
        Ok(out.main)
    }

    fn deliver(&mut self, takes: impl Fn(&Route) -> bool, batch: &Batch) -> std::io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        for slot in self.sinks.iter_mut().filter(|s| takes(&s.from)) {
            let n = slot.sink.write(batch, None)?;
            slot.events.inc_by(n as u64);
        }
        Ok(())
    }
}

/// Whether `route` takes output `name` of step `step`.
fn is_output(route: &Route, step: usize, name: &str) -> bool {
    matches!(route, Route::Step { step: s, output } if *s == step && output == name)
}
