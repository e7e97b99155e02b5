//! Metrics of plugin steps: calls and restarts by version, which version
//! serves, deployments, the circuit breaker, and the sandbox (captured
//! output, denied capabilities).

use super::counter;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct PluginFamilies {
    call_seconds: HistogramVec,
    restarts: IntCounterVec,
    version: IntGaugeVec,
    deploys: IntCounterVec,
    swap_seconds: HistogramVec,
    circuit_state: IntGaugeVec,
    circuit_opens: IntCounterVec,
    fallback_events: IntCounterVec,
    output_lines: IntCounterVec,
    output_dropped: IntCounterVec,
    denied: IntCounterVec,
    state_bytes: IntGaugeVec,
    state_keys: IntGaugeVec,
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    super::histogram(r, name, help, labels, prometheus::exponential_buckets(1e-6, 4.0, 12).expect("valid buckets"))
}

impl PluginFamilies {
    pub(super) fn register(r: &Registry) -> Self {
        PluginFamilies {
            call_seconds: histogram(
                r,
                "weir_plugin_call_duration_seconds",
                "Duration of one plugin call (one batch), by plugin version (sha256).",
                &["step", "version"],
            ),
            restarts: counter(
                r,
                "weir_plugin_instance_restarts_total",
                "Plugin instances recreated after a failed call, by reason and plugin version.",
                &["step", "version", "reason"],
            ),
            version: gauge(
                r,
                "weir_plugin_version_info",
                "1 for the plugin version (sha256) a step runs now.",
                &["step", "version"],
            ),
            deploys: counter(
                r,
                "weir_plugin_deploys_total",
                "New plugin versions offered to a step, by result: activated, rejected (did not compile, \
                 link or init), rolled-back (failed during probation).",
                &["step", "result"],
            ),
            swap_seconds: histogram(
                r,
                "weir_plugin_swap_duration_seconds",
                "Time the event flow of a step stood still for a version swap: the swap and the first \
                 batch on the new version.",
                &["step"],
            ),
            circuit_state: gauge(
                r,
                "weir_plugin_circuit_state",
                "Circuit breaker of a plugin step: 0 closed, 1 open, 2 half-open.",
                &["step"],
            ),
            circuit_opens: counter(r, "weir_plugin_circuit_opens_total", "Times a step's circuit opened.", &["step"]),
            fallback_events: counter(
                r,
                "weir_plugin_fallback_events_total",
                "Events processed by a step's fallback plugin while its circuit was open.",
                &["step"],
            ),
            output_lines: counter(
                r,
                "weir_plugin_output_lines_total",
                "Lines a plugin wrote to stdout, stderr or the log import (logged under its step, rate-limited).",
                &["step", "stream"],
            ),
            output_dropped: counter(
                r,
                "weir_plugin_output_lines_dropped_total",
                "Plugin output lines not logged because of the rate limit.",
                &["step", "stream"],
            ),
            denied: counter(
                r,
                "weir_plugin_denied_total",
                "Capability uses the sandbox refused, by capability (network).",
                &["step", "capability"],
            ),
            state_bytes: gauge(
                r,
                "weir_plugin_state_bytes",
                "Bytes of keyed state a plugin step holds, all shards (keys, names, values and a fixed cost per entry).",
                &["step"],
            ),
            state_keys: gauge(
                r,
                "weir_plugin_state_keys",
                "Entries (key and name) of keyed state a plugin step holds, all shards.",
                &["step"],
            ),
        }
    }

    pub fn step(&self, step: &str) -> PluginMetrics {
        let m = PluginMetrics {
            step: step.to_string(),
            families: self.clone(),
            version: String::new(),
            call_seconds: self.call_seconds.with_label_values(&[step, ""]),
            deploy_activated: self.deploys.with_label_values(&[step, "activated"]),
            deploy_rejected: self.deploys.with_label_values(&[step, "rejected"]),
            deploy_rolled_back: self.deploys.with_label_values(&[step, "rolled-back"]),
            swap_seconds: self.swap_seconds.with_label_values(&[step]),
            circuit_state: self.circuit_state.with_label_values(&[step]),
            circuit_opens: self.circuit_opens.with_label_values(&[step]),
            fallback_events: self.fallback_events.with_label_values(&[step]),
        };
        let _ = self.call_seconds.remove_label_values(&[step, ""]);
        m
    }

    /// (step, capability, count) of every refused capability use, for the summary.
    pub fn denied(&self) -> Vec<(String, String, u64)> {
        use prometheus::core::Collector;
        let mut out = Vec::new();
        for mf in self.denied.collect() {
            for m in mf.get_metric() {
                let label = |name: &str| {
                    m.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_string()).unwrap_or_default()
                };
                let n = m.get_counter().get_value() as u64;
                if n > 0 {
                    out.push((label("step"), label("capability"), n));
                }
            }
        }
        out.sort();
        out
    }

    pub fn sandbox(&self, step: &str) -> SandboxMetrics {
        let stdio = |stream: &str| StdioMetrics {
            lines: self.output_lines.with_label_values(&[step, stream]),
            dropped: self.output_dropped.with_label_values(&[step, stream]),
        };
        SandboxMetrics {
            stdout: stdio("stdout"),
            stderr: stdio("stderr"),
            log: stdio("log"),
            denied_network: self.denied.with_label_values(&[step, "network"]),
            state_bytes: self.state_bytes.with_label_values(&[step]),
            state_keys: self.state_keys.with_label_values(&[step]),
        }
    }
}

/// Handles for one plugin step; the per-version ones follow [`PluginMetrics::set_version`].
#[derive(Clone)]
pub struct PluginMetrics {
    step: String,
    families: PluginFamilies,
    version: String,
    pub call_seconds: Histogram,
    pub deploy_activated: IntCounter,
    pub deploy_rejected: IntCounter,
    pub deploy_rolled_back: IntCounter,
    pub swap_seconds: Histogram,
    pub circuit_state: IntGauge,
    pub circuit_opens: IntCounter,
    pub fallback_events: IntCounter,
}

impl PluginMetrics {
    /// The step now runs `digest`: the call histogram and restarts are
    /// labelled with it, and `weir_plugin_version_info` shows only it.
    pub fn set_version(&mut self, digest: &str) {
        if !self.version.is_empty() {
            let _ = self.families.version.remove_label_values(&[&self.step, &self.version]);
        }
        self.version = digest.to_string();
        self.families.version.with_label_values(&[&self.step, digest]).set(1);
        self.call_seconds = self.families.call_seconds.with_label_values(&[&self.step, digest]);
    }

    pub fn restarted(&self, reason: &str) {
        self.families.restarts.with_label_values(&[&self.step, &self.version, reason]).inc();
    }
}

/// Handles the sandbox of one step's instances counts with.
#[derive(Clone)]
pub struct SandboxMetrics {
    pub stdout: StdioMetrics,
    pub stderr: StdioMetrics,
    /// Lines through the `log` import.
    pub log: StdioMetrics,
    pub denied_network: IntCounter,
    /// Keyed state held, summed over the step's shards.
    pub state_bytes: IntGauge,
    pub state_keys: IntGauge,
}

/// Counters for one captured stream (stdout or stderr) of one step.
#[derive(Clone)]
pub struct StdioMetrics {
    pub lines: IntCounter,
    pub dropped: IntCounter,
}
