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
            Ok(outcomes) => self.route(outcomes, batch, dead),
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
    fn route(&self, outcomes: Outcomes, input: Batch, dead: &DeadLetters) -> std::io::Result<Outputs> {
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
        let all_main = e.ports.iter().all(|&p| Some(p) == main_port);
        let mut out = Outputs::default();
        if all_main && e.payloads.is_empty() && e.inputs.len() == input.len() {
            // Every input forwarded unchanged, in order (identity, or a
            // filter that kept everything): the input batch is the output.
            if e.inputs.iter().enumerate().all(|(i, &from)| from as usize == i) {
                self.metrics.main_out.inc_by(input.len() as u64);
                out.main = input;
                // Cells read at ingestion were for a query right after the source.
                out.main.columns = None;
                return Ok(out);
            }
        }
        let mut by_port: Vec<Batch> = vec![Batch::default(); outcomes.outputs.len()];
        let mut start = 0;
        for i in 0..e.ends.len() {
            let end = e.ends[i] as usize;
            let from = e.inputs[i] as usize;
            // An empty payload forwards the input's own bytes.
            let bytes = if end == start { input.payload(from) } else { &e.payloads[start..end] };
            let b = &mut by_port[e.ports[i] as usize];
            b.push(bytes, input.timestamps[from], input.origins[from]);
            start = end;
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
