//! The worker: runs the steps in order on each batch and hands every output
//! to the sinks that take it.

use super::step::{Outputs, Step};
use crate::config::Route;
use crate::dead_letter::DeadLetters;
use crate::event::Batch;
use prometheus::IntCounter;

/// A sink with the route it takes and its counter.
pub struct SinkSlot {
    pub name: String,
    pub from: Route,
    pub sink: Box<dyn crate::sinks::Sink>,
    pub events: IntCounter,
}

pub struct Worker {
    steps: Vec<Box<dyn Step>>,
    sinks: Vec<SinkSlot>,
}

impl Worker {
    pub fn new(steps: Vec<Box<dyn Step>>, sinks: Vec<SinkSlot>) -> Self {
        Worker { steps, sinks }
    }

    /// Runs one batch from the sources through every step.
    pub fn handle(&mut self, batch: Batch, dead: &DeadLetters) -> std::io::Result<()> {
        self.deliver(|r| *r == Route::Sources, &batch)?;
        self.run_from(0, batch, dead)
    }

    /// No batch for a while: lets the steps do what waits for a boundary.
    pub fn idle(&mut self) {
        for s in &mut self.steps {
            s.idle();
        }
    }

    /// End of input: each step in turn releases what it holds, which flows
    /// through the steps after it.
    pub fn finish(&mut self, dead: &DeadLetters) -> std::io::Result<()> {
        for i in 0..self.steps.len() {
            let out = self.steps[i].finish(dead)?;
            let main = self.emit(i, out)?;
            self.run_from(i + 1, main, dead)?;
        }
        for slot in &mut self.sinks {
            slot.sink.flush()?;
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
