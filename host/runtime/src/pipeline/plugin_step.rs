//! A step that runs a plugin component on each batch, swaps in new versions
//! at batch boundaries, rolls back a version that fails on probation, and
//! guards the plugin with a circuit breaker.
//!
//! A failed call fails one event, not its batch: the batch is halved and
//! each half tried again (on a fresh instance: a failed call replaces it),
//! down to the events that fail alone — the poison events, dead-lettered
//! with the failure. The rest are processed once, in order; the writes of
//! failed calls to keyed state are dropped with them. The circuit breaker
//! counts poison events.

use super::circuit::Circuit;
use crate::deploy::StepControl;
use std::sync::Arc;
use std::time::Instant;
use weir_config::CircuitSpec;
use weir_core::dead_letter::{DeadLetter, DeadLetters};
use weir_core::event::Batch;
use weir_core::metrics::events::{Deploy, InternalEvent, PluginCallFailed};
use weir_core::metrics::{Metrics, PluginMetrics, StepMetrics};
use weir_core::step::{Outputs, Step};
use weir_plugin_host::{CallFailure, FailureKind, InstanceSettings, KeyedState, Outcomes, PluginInstance};

/// How a plugin step is guarded and swapped.
pub struct PluginStepOptions {
    pub circuit: CircuitSpec,
    /// Processes batches while the circuit is open.
    pub fallback: Option<PluginInstance>,
    pub probation_batches: u32,
    /// Named outputs the plugin may emit to besides "out".
    pub outputs: Vec<String>,
}

impl Default for PluginStepOptions {
    fn default() -> Self {
        PluginStepOptions {
            circuit: CircuitSpec { failures: 5, cool_down: std::time::Duration::from_secs(30), fallback: None },
            fallback: None,
            probation_batches: 16,
            outputs: Vec::new(),
        }
    }
}

pub struct PluginStep {
    name: Arc<str>,
    instance: PluginInstance,
    /// (step, digest) of the version that runs, for output metadata.
    version: (Arc<str>, Arc<str>),
    /// The version before a swap, kept until the new one passes probation.
    previous: Option<Previous>,
    fallback: Option<PluginInstance>,
    control: Arc<StepControl>,
    circuit: Circuit,
    metrics: StepMetrics,
    plugin: PluginMetrics,
    /// When a swap at a batch boundary began, until its first batch is done.
    swap_started: Option<Instant>,
    /// A new version has not processed a batch yet.
    first_pending: bool,
    /// The step's keyed state, shared by every instance and version.
    state: Option<Arc<KeyedState>>,
    /// Named outputs it may emit to besides "out"; events to others are
    /// dead-lettered, so plugin-chosen names never become metric labels.
    outputs: Vec<String>,
}

struct Previous {
    instance: PluginInstance,
    batches_left: u32,
}

impl PluginStep {
    /// The step, and the control through which new versions reach it.
    pub fn new(
        instance: PluginInstance,
        settings: InstanceSettings,
        metrics: &Metrics,
        opts: PluginStepOptions,
    ) -> (Self, Arc<StepControl>) {
        let name: Arc<str> = settings.step.as_str().into();
        let state = settings.state.clone();
        let mut plugin = metrics.plugin(&name);
        let control = StepControl::new(&instance, settings, opts.probation_batches, plugin.deploy_rejected.clone());
        plugin.set_version(instance.digest());
        let circuit = Circuit::new(&opts.circuit, name.clone(), control.circuit_cell());
        let step = PluginStep {
            state,
            version: (name.clone(), instance.digest().into()),
            metrics: metrics.step(&name),
            name,
            instance,
            previous: None,
            fallback: opts.fallback,
            circuit,
            control: control.clone(),
            plugin,
            swap_started: None,
            first_pending: false,
            outputs: opts.outputs,
        };
        (step, control)
    }

    /// Swaps in a version waiting in the control, if there is one.
    fn take_swap(&mut self) -> bool {
        let Some(pending) = self.control.take_pending() else { return false };
        let (new, taken) = pending.take();
        let old = std::mem::replace(&mut self.instance, new);
        let probation = self.control.probation_batches;
        let retired = if probation > 0 {
            self.previous.replace(Previous { instance: old, batches_left: probation }).map(|p| p.instance)
        } else {
            Some(old)
        };
        if let Some(r) = retired {
            retire(r);
        }
        self.on_version_change();
        self.control.activated(self.instance.digest());
        if probation == 0 {
            self.control.proven(self.instance.digest());
        }
        Deploy::Activated { metrics: &self.plugin, step: &self.name, digest: self.instance.digest() }.emit();
        self.circuit.reset(&self.plugin);
        self.first_pending = true;
        taken.done();
        true
    }

    fn on_version_change(&mut self) {
        self.plugin.set_version(self.instance.digest());
        self.version = (self.name.clone(), self.instance.digest().into());
    }

    /// The new version failed on probation: the previous one serves again.
    fn roll_back(&mut self, failure: &CallFailure) {
        let Some(prev) = self.previous.take() else { return };
        let failed = std::mem::replace(&mut self.instance, prev.instance);
        let error = format!("{}: {}", failure.kind.reason(), failure.message);
        self.control.rolled_back(failed.digest(), self.instance.digest(), &error);
        let (step, restored) = (&*self.name, self.instance.digest());
        Deploy::RolledBack { metrics: &self.plugin, step, failed: failed.digest(), restored, error: &error }.emit();
        retire(failed);
        self.on_version_change();
    }

    fn call(&mut self, batch: &mut Batch) -> Result<Outcomes, CallFailure> {
        let started = Instant::now();
        let result = self.instance.process(&mut batch.payloads, &mut batch.ends, &mut batch.timestamps);
        self.plugin.call_seconds.observe(started.elapsed().as_secs_f64());
        if let Err(f) = &result {
            let (step, reason, events) = (&*self.name, f.kind.reason(), batch.len());
            PluginCallFailed { metrics: &self.plugin, step, reason, error: &f.message, events }.emit();
        }
        result
    }

    /// Probation and swap bookkeeping after a batch on the current version.
    fn after_call(&mut self, ok: bool) {
        let stall = self.swap_started.take().map(|t| t.elapsed());
        if let Some(d) = stall {
            self.plugin.swap_seconds.observe(d.as_secs_f64());
        }
        if std::mem::take(&mut self.first_pending) {
            self.control.first_batch(self.instance.digest(), stall);
        }
        if !ok {
            return;
        }
        if let Some(prev) = &mut self.previous {
            prev.batches_left = prev.batches_left.saturating_sub(1);
            if prev.batches_left == 0 {
                let prev = self.previous.take().expect("checked");
                retire(prev.instance);
                self.control.proven(self.instance.digest());
            }
        }
    }

    /// The circuit is open: the fallback plugin takes the batch, or the
    /// dead-letter output does.
    fn bypass(&mut self, mut batch: Batch, dead: &DeadLetters, now: Instant) -> std::io::Result<Outputs> {
        let Some(fallback) = &mut self.fallback else {
            let detail = format!(
                "the step's circuit is open after repeated failed batches; the plugin is tried again in {:.1}s",
                self.circuit.retry_in(now).as_secs_f64()
            );
            self.dead_letter_all(&batch, dead, "circuit-open", &detail)?;
            return Ok(Outputs::default());
        };
        match fallback.process(&mut batch.payloads, &mut batch.ends, &mut batch.timestamps) {
            Ok(outcomes) => {
                self.plugin.fallback_events.inc_by(batch.len() as u64);
                let version = (self.name.clone(), fallback.digest().into());
                self.route(outcomes, batch, dead, version)
            }
            Err(f) => {
                let detail = format!("fallback plugin: {}", f.message);
                self.dead_letter_all(&batch, dead, f.kind.reason(), &detail)?;
                Ok(Outputs::default())
            }
        }
    }

    fn dead_letter_all(&self, batch: &Batch, dead: &DeadLetters, reason: &str, detail: &str) -> std::io::Result<()> {
        dead.send_all((0..batch.len()).map(|i| DeadLetter {
            reason,
            detail,
            step: Some(&self.name),
            origin: batch.origins[i],
            original: batch.payload(i),
        }))
    }
}

/// Drops an instance off the worker thread: freeing a Store's memory can
/// take a while, and the event flow should not wait for it.
fn retire(instance: PluginInstance) {
    let _ = std::thread::Builder::new().name("retire".into()).spawn(move || drop(instance));
}

impl Step for PluginStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        self.state.as_ref()?.snapshot()
    }

    fn changes(&mut self, whole: bool) -> Option<weir_core::entries::Changes> {
        Some(self.state.as_ref()?.changes(whole))
    }

    fn restore(&mut self, state: &[u8]) -> anyhow::Result<()> {
        match &self.state {
            Some(s) => s.restore(state),
            None => Ok(()),
        }
    }

    fn restore_rescaled(&mut self, states: &[&[u8]], mine: &weir_core::keys::KeyFilter) -> anyhow::Result<()> {
        match &self.state {
            Some(s) => s.restore_rescaled(states, mine),
            None => Ok(()),
        }
    }

    fn process(&mut self, mut batch: Batch, dead: &DeadLetters) -> std::io::Result<Outputs> {
        if self.take_swap() {
            self.swap_started = Some(Instant::now());
        }
        let n = batch.len();
        self.metrics.events_in.inc_by(n as u64);
        self.metrics.batch_events.observe(n as f64);
        let now = Instant::now();
        if !self.circuit.admits(now, &self.plugin) {
            return self.bypass(batch, dead, now);
        }
        let mut result = self.call(&mut batch);
        if let Err(failure) = &result
            && self.previous.is_some()
        {
            self.roll_back(failure);
            result = self.call(&mut batch);
        }
        self.after_call(result.is_ok());
        match result {
            Ok(outcomes) => {
                self.circuit.succeeded(&self.plugin);
                let version = self.version.clone();
                self.route(outcomes, batch, dead, version)
            }
            Err(failure) => {
                let mut out = Outputs::default();
                let mut budget = MAX_FAILED_CALLS;
                self.settle(batch, failure, dead, &mut out, &mut budget)?;
                Ok(out)
            }
        }
    }

    fn idle(&mut self) {
        self.take_swap();
    }
}

impl PluginStep {
    /// Events emitted to an output the pipeline file does not declare: dead-lettered, counted under "undeclared".
    fn undeclared(&self, name: &str, batch: &Batch, dead: &DeadLetters) -> std::io::Result<()> {
        self.metrics.out("undeclared").inc_by(batch.len() as u64);
        let mut shown: String = name.chars().take(64).collect();
        if shown.len() < name.len() {
            shown.push('…');
        }
        let detail = format!(
            "the plugin emitted to output `{}`, which the pipeline does not declare: add it to the step's `outputs`, or take it with a sink",
            weir_plugin_host::clean_line(&shown)
        );
        self.dead_letter_all(batch, dead, "plugin-invalid-output", &detail)
    }

    /// A batch whose call failed: halves are tried until each event has
    /// either passed or failed alone (then it is dead-lettered with its
    /// failure, and counts once toward the circuit). Outputs go to `out`
    /// in input order.
    fn settle(
        &mut self,
        batch: Batch,
        failure: CallFailure,
        dead: &DeadLetters,
        out: &mut Outputs,
        budget: &mut u32,
    ) -> std::io::Result<()> {
        // No instance could start: no part of the batch can do better.
        if batch.len() <= 1 || failure.kind == FailureKind::Unavailable {
            self.circuit.failed(Instant::now(), &self.plugin);
            return self.dead_letter_all(&batch, dead, failure.kind.reason(), &failure.message);
        }
        if *budget == 0 {
            // A batch whose events keep failing costs at most
            // MAX_FAILED_CALLS calls: the rest goes to the dead-letter output.
            self.circuit.failed(Instant::now(), &self.plugin);
            let detail =
                format!("{} (not retried alone: the batch already failed {MAX_FAILED_CALLS} calls)", failure.message);
            return self.dead_letter_all(&batch, dead, failure.kind.reason(), &detail);
        }
        let mid = batch.len() / 2;
        for range in [0..mid, mid..batch.len()] {
            let mut half = part(&batch, range);
            let now = Instant::now();
            if !self.circuit.admits(now, &self.plugin) {
                merge(out, self.bypass(half, dead, now)?);
                continue;
            }
            match self.call(&mut half) {
                // A half that passes does not reset the circuit's count: the
                // batch's poison events count together.
                Ok(outcomes) => {
                    let version = self.version.clone();
                    merge(out, self.route(outcomes, half, dead, version)?);
                }
                Err(f) => {
                    *budget = budget.saturating_sub(1);
                    self.settle(half, f, dead, out, budget)?;
                }
            }
        }
        Ok(())
    }

    /// Turns the plugin's outcomes into output batches and dead letters.
    fn route(
        &self,
        outcomes: Outcomes,
        input: Batch,
        dead: &DeadLetters,
        version: (Arc<str>, Arc<str>),
    ) -> std::io::Result<Outputs> {
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
                out.main.versions.push(version);
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
        for (name, mut batch) in outcomes.outputs.into_iter().zip(by_port) {
            if batch.is_empty() {
                continue;
            }
            if name != "out" && !self.outputs.contains(&name) {
                self.undeclared(&name, &batch, dead)?;
                continue;
            }
            batch.versions = input.versions.clone();
            batch.versions.push(version.clone());
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

/// The most calls that may fail while one batch is halved down to its
/// poison events: about two per poison event in a batch of 1,024, for
/// eight of them. A plugin that fails on most events is cut short here
/// (and by its circuit), not retried event by event.
const MAX_FAILED_CALLS: u32 = 24;

/// Events `range` of `batch`, with its version trail (the cells read at
/// ingestion and the watermarks stay behind: the worker carries the input's
/// watermark on).
fn part(batch: &Batch, range: std::ops::Range<usize>) -> Batch {
    let mut p = Batch::with_capacity(range.len(), 0);
    for i in range {
        p.push(batch.payload(i), batch.timestamps[i], batch.origins[i]);
    }
    p.versions = batch.versions.clone();
    p
}

/// Appends the outputs of a later part of a batch to those of the earlier.
fn merge(into: &mut Outputs, from: Outputs) {
    append(&mut into.main, from.main);
    for (name, batch) in from.named {
        match into.named.iter_mut().find(|(n, _)| *n == name) {
            Some((_, b)) => append(b, batch),
            None => into.named.push((name, batch)),
        }
    }
}

fn append(into: &mut Batch, from: Batch) {
    if into.is_empty() {
        *into = from;
        into.columns = None;
        into.watermarks = None;
        return;
    }
    for (payload, t, origin) in from.iter() {
        into.push(payload, t, origin);
    }
}
