//! Internal events, as Vector has them: one type per occurrence the runtime
//! reports, whose [`InternalEvent::emit`] writes the log line and updates
//! the metric together, on handles resolved before the hot path (so the
//! cost stays an atomic add or two). A metric and its log line cannot drift
//! apart, and `grep 'impl InternalEvent'` lists everything Weir reports.
//!
//! Plain counts that log nothing (events in and out of a step, bytes read)
//! are added on their handles directly; crates above this one define events
//! for their own families (e.g. the Kafka connector's).

use super::{DurabilityMetrics, PluginMetrics};
use prometheus::IntCounter;

/// One occurrence: its log line and its metric, emitted together.
pub trait InternalEvent {
    fn emit(self);
}

/// A checkpoint was written (and committed).
pub struct CheckpointTaken<'a> {
    pub metrics: &'a DurabilityMetrics,
    pub epoch: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Wall-clock time, seconds since 1970.
    pub at: f64,
}

impl InternalEvent for CheckpointTaken<'_> {
    fn emit(self) {
        tracing::debug!(epoch = self.epoch, bytes = self.bytes, ms = self.seconds * 1e3, "checkpoint taken");
        let m = self.metrics;
        m.checkpoint_seconds.observe(self.seconds);
        m.checkpoint_bytes.set(self.bytes as i64);
        m.checkpoint_epoch.set(self.epoch as i64);
        m.checkpoint_last_success.set(self.at);
        m.checkpoints.with_label_values(&["ok"]).inc();
    }
}

/// A checkpoint could not be taken; the pipeline stops.
pub struct CheckpointFailed<'a> {
    pub metrics: &'a DurabilityMetrics,
    pub epoch: u64,
    pub error: &'a std::io::Error,
}

impl InternalEvent for CheckpointFailed<'_> {
    fn emit(self) {
        tracing::error!("checkpoint {} failed: {}", self.epoch, self.error);
        self.metrics.checkpoints.with_label_values(&["failed"]).inc();
    }
}

/// A checkpoint file found at start is damaged and skipped.
pub struct CheckpointCorrupt<'a> {
    pub metrics: &'a DurabilityMetrics,
    pub path: &'a std::path::Path,
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for CheckpointCorrupt<'_> {
    fn emit(self) {
        tracing::error!(
            "CHECKPOINT DAMAGED: {} ({}); it is skipped and an earlier checkpoint is used",
            self.path.display(),
            self.error
        );
        self.metrics.checkpoints.with_label_values(&["corrupt"]).inc();
    }
}

/// The first checkpoint after a restore: the pipeline has recovered.
pub struct Recovered<'a> {
    pub metrics: &'a DurabilityMetrics,
    pub seconds: f64,
}

impl InternalEvent for Recovered<'_> {
    fn emit(self) {
        tracing::info!(seconds = self.seconds, "recovered: first checkpoint after the restore");
        self.metrics.recovery_seconds.set(self.seconds);
    }
}

/// An event went to the dead-letter output.
pub struct DeadLettered<'a> {
    /// `weir_dead_letter_events_total` of its reason.
    pub counter: &'a IntCounter,
    pub reason: &'a str,
    pub step: Option<&'a str>,
}

impl InternalEvent for DeadLettered<'_> {
    fn emit(self) {
        tracing::debug!(reason = self.reason, step = self.step.unwrap_or(""), "dead letter");
        self.counter.inc();
    }
}

/// A plugin call failed; its instance is replaced.
pub struct PluginCallFailed<'a> {
    pub metrics: &'a PluginMetrics,
    pub step: &'a str,
    pub reason: &'a str,
    pub error: &'a str,
    pub events: usize,
}

impl InternalEvent for PluginCallFailed<'_> {
    fn emit(self) {
        tracing::warn!(step = %self.step, reason = self.reason, error = %self.error, events = self.events, "plugin call failed");
        self.metrics.restarted(self.reason);
    }
}

/// A step's circuit breaker changed state.
pub enum Circuit<'a> {
    /// After `failed_batches` consecutive failures; batches skip the plugin.
    Opened { metrics: &'a PluginMetrics, step: &'a str, failed_batches: u32, cool_down: std::time::Duration },
    /// The cool-down is over: the next batch tries the plugin.
    HalfOpen { metrics: &'a PluginMetrics, step: &'a str },
    /// The trial batch passed (or a new version starts).
    Closed { metrics: &'a PluginMetrics, step: &'a str, trial_passed: bool },
}

impl InternalEvent for Circuit<'_> {
    fn emit(self) {
        match self {
            Circuit::Opened { metrics, step, failed_batches, cool_down } => {
                tracing::error!(
                    step = %step,
                    failed_batches,
                    cool_down = ?cool_down,
                    "circuit open: batches skip the plugin until the cool-down is over"
                );
                metrics.circuit_state.set(1);
                metrics.circuit_opens.inc();
            }
            Circuit::HalfOpen { metrics, step } => {
                tracing::info!(step = %step, "circuit half-open: the next batch tries the plugin");
                metrics.circuit_state.set(2);
            }
            Circuit::Closed { metrics, step, trial_passed } => {
                if trial_passed {
                    tracing::info!(step = %step, "circuit closed: the plugin processed its trial batch");
                }
                metrics.circuit_state.set(0);
            }
        }
    }
}

/// What became of a new plugin version offered to a step.
pub enum Deploy<'a> {
    /// It serves now (on probation).
    Activated { metrics: &'a PluginMetrics, step: &'a str, digest: &'a str },
    /// It did not compile, link or init; the old version serves on.
    Rejected { counter: &'a IntCounter, step: &'a str, error: &'a str },
    /// It failed during probation; `restored` serves again.
    RolledBack { metrics: &'a PluginMetrics, step: &'a str, failed: &'a str, restored: &'a str, error: &'a str },
}

impl InternalEvent for Deploy<'_> {
    fn emit(self) {
        match self {
            Deploy::Activated { metrics, step, digest } => {
                tracing::info!(step = %step, %digest, "plugin version swapped in");
                metrics.deploy_activated.inc();
            }
            Deploy::Rejected { counter, step, error } => {
                tracing::error!(step = %step, %error, "new plugin version rejected; the old one serves on");
                counter.inc();
            }
            Deploy::RolledBack { metrics, step, failed, restored, error } => {
                tracing::error!(
                    step = %step,
                    %failed,
                    %restored,
                    %error,
                    "new plugin version failed on probation; rolled back, and its batch goes to the previous version"
                );
                metrics.deploy_rolled_back.inc();
            }
        }
    }
}

/// A plugin tried to use a capability it was not granted.
pub struct CapabilityDenied<'a> {
    /// `weir_plugin_denied_total` of the capability.
    pub counter: &'a IntCounter,
    pub step: &'a str,
    pub capability: &'a str,
    /// What it tried, e.g. "open a network socket".
    pub attempt: &'a str,
    /// Details of the attempt, e.g. "tcp".
    pub detail: &'a str,
}

impl InternalEvent for CapabilityDenied<'_> {
    fn emit(self) {
        tracing::warn!(step = %self.step, capability = self.capability, detail = self.detail, "plugin tried to {}; denied", self.attempt);
        self.counter.inc();
    }
}

/// A model file changed: the new version serves, or the old one serves on.
pub enum ModelReload<'a> {
    Swapped { metrics: &'a super::ModelMetrics, model: &'a str, from: &'a str, to: &'a str },
    Failed { metrics: &'a super::ModelMetrics, model: &'a str, path: &'a std::path::Path, error: &'a str },
}

impl InternalEvent for ModelReload<'_> {
    fn emit(self) {
        match self {
            ModelReload::Swapped { metrics, model, from, to } => {
                tracing::info!(model = %model, from = %from, to = %to, "model reloaded");
                metrics.swapped(model, from, to);
            }
            ModelReload::Failed { metrics, model, path, error } => {
                tracing::error!(model = %model, path = %path.display(), error = %error,
                    "MODEL RELOAD FAILED; the previous version keeps serving");
                metrics.reload_failed(model);
            }
        }
    }
}
