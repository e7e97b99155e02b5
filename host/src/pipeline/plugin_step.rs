//! A step that runs a plugin component on each batch.

use super::step::{Outputs, Step};
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::event::Batch;
use crate::metrics::StepMetrics;
use crate::plugin::{Outcomes, PluginInstance};
use std::time::Instant;

pub struct PluginStep {
    name: String,
    instance: PluginInstance,
    metrics: StepMetrics,
}

impl PluginStep {
    pub fn new(name: String, instance: PluginInstance, metrics: StepMetrics) -> Self {
        PluginStep { name, instance, metrics }
    }
}

impl Step for PluginStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, mut batch: Batch, dead: &DeadLetters) -> std::io::Result<Outputs> {
        let n = batch.len();
        self.metrics.events_in.inc_by(n as u64);
        self.metrics.batch_events.observe(n as f64);
        let started = Instant::now();
        let result = self.instance.process(&mut batch.payloads, &mut batch.ends, &mut batch.timestamps);
        self.metrics.call_seconds.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(outcomes) => self.route(outcomes, &batch, dead),
            Err(failure) => {
                let reason = failure.kind.reason();
                self.metrics.restarted(reason);
                tracing::warn!(step = %self.name, reason, error = %failure.message, events = n, "plugin call failed; its batch goes to the dead-letter output");
                dead.send_all((0..n).map(|i| DeadLetter {
                    reason,
                    detail: &failure.message,
                    step: Some(&self.name),
                    origin: batch.origins[i],
                    original: batch.payload(i),
                }))?;
                Ok(Outputs::default())
            }
        }
    }
}

impl PluginStep {
    /// Turns the plugin's outcomes into output batches and dead letters.
    fn route(&self, outcomes: Outcomes, input: &Batch, dead: &DeadLetters) -> std::io::Result<Outputs> {
        if !outcomes.rejected.is_empty() {
            self.metrics.rejected.inc_by(outcomes.rejected.len() as u64);
            dead.send_all(outcomes.rejected.iter().map(|r| DeadLetter {
                reason: "rejected",
                detail: &r.reason,
                step: Some(&self.name),
                origin: input.origins[r.input as usize],
                original: input.payload(r.input as usize),
            }))?;
        }
        let e = outcomes.emitted;
        let main_port = outcomes.outputs.iter().position(|o| o == "out").map(|p| p as u16);
        let inherit = |b: &mut Batch, i: usize| {
            let from = e.inputs[i] as usize;
            b.timestamps.push(input.timestamps[from]);
            b.origins.push(input.origins[from]);
        };
        let mut out = Outputs::default();
        if e.ports.iter().all(|&p| Some(p) == main_port) {
            // The common case: everything goes to the main output; reuse the buffers.
            let mut main = Batch {
                payloads: Vec::new(),
                ends: Vec::new(),
                timestamps: Vec::with_capacity(e.ends.len()),
                origins: Vec::with_capacity(e.ends.len()),
            };
            for i in 0..e.ends.len() {
                inherit(&mut main, i);
            }
            main.payloads = e.payloads;
            main.ends = e.ends;
            self.metrics.main_out.inc_by(main.len() as u64);
            out.main = main;
            return Ok(out);
        }
        let mut by_port: Vec<Batch> = vec![Batch::default(); outcomes.outputs.len()];
        for i in 0..e.ends.len() {
            let start = if i == 0 { 0 } else { e.ends[i - 1] as usize };
            let b = &mut by_port[e.ports[i] as usize];
            b.payloads.extend_from_slice(&e.payloads[start..e.ends[i] as usize]);
            b.ends.push(b.payloads.len() as u32);
            inherit(b, i);
        }
        for (name, batch) in outcomes.outputs.into_iter().zip(by_port) {
            if batch.is_empty() {
                continue;
            }
            self.metrics.out(&name).inc_by(batch.len() as u64);
            if name == "out" {
                out.main = batch;
            } else {
                out.named.push((name, batch));
            }
        }
        Ok(out)
    }
}
