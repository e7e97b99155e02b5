//! `weir:plugin/host`, the interface every plugin imports: logging and
//! custom metrics. Its view of a store is [`HostApi`]; [`add_to_linker`]
//! links it, as wasmtime's own host interfaces do.

use super::bindings::weir::plugin::host;
use super::instance::StoreData;
use std::collections::HashMap;
use wasmtime::component::{HasSelf, Linker};
use weir_core::metrics::events::{CapabilityDenied, InternalEvent};
use weir_core::metrics::{MAX_PLUGIN_METRIC_NAMES, PluginApiMetrics};

/// Links `weir:plugin/host` to each store's [`HostApi`].
pub fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    host::add_to_linker::<StoreData, HasSelf<HostApi>>(linker, |s| &mut s.api)
}

/// Per-instance state behind the host API.
pub struct HostApi {
    step: String,
    metrics: PluginApiMetrics,
    counters: HashMap<String, prometheus::IntCounter>,
    gauges: HashMap<String, prometheus::Gauge>,
    warned_names: bool,
    /// `log` lines follow stdout's rules: rate, length, no control characters.
    lines: super::stdio::LineLimiter,
}

impl HostApi {
    pub fn new(step: String, metrics: PluginApiMetrics, limits: &weir_config::Limits) -> Self {
        let lines = super::stdio::LineLimiter::new(metrics.sandbox.log.clone(), limits);
        HostApi { step, metrics, counters: HashMap::new(), gauges: HashMap::new(), warned_names: false, lines }
    }

    fn allow_new_name(&mut self) -> bool {
        if self.counters.len() + self.gauges.len() < MAX_PLUGIN_METRIC_NAMES {
            return true;
        }
        if !self.warned_names {
            self.warned_names = true;
            tracing::warn!(step = %self.step, "plugin uses more than {MAX_PLUGIN_METRIC_NAMES} metric names; ignoring new ones");
        }
        false
    }
}

impl HostApi {
    /// The plugin tried to open a socket (`kind`: tcp or udp); refused.
    pub fn denied_network(&mut self, kind: &str) {
        let (counter, step) = (&self.metrics.sandbox.denied_network, &*self.step);
        let attempt = "open a network socket";
        CapabilityDenied { counter, step, capability: "network", attempt, detail: kind }.emit();
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl host::Host for HostApi {
    fn log(&mut self, level: host::Level, message: String) {
        let Some(suppressed) = self.lines.admit() else { return };
        let (step, message) = (&self.step, super::stdio::clean(&message));
        match level {
            host::Level::Trace => tracing::trace!(target: "weir::plugin", step, suppressed, "{message}"),
            host::Level::Debug => tracing::debug!(target: "weir::plugin", step, suppressed, "{message}"),
            host::Level::Info => tracing::info!(target: "weir::plugin", step, suppressed, "{message}"),
            host::Level::Warn => tracing::warn!(target: "weir::plugin", step, suppressed, "{message}"),
            host::Level::Error => tracing::error!(target: "weir::plugin", step, suppressed, "{message}"),
        }
    }

    fn counter_add(&mut self, name: String, value: u64) {
        let api = self;
        if let Some(c) = api.counters.get(&name) {
            c.inc_by(value);
        } else if valid_name(&name) && api.allow_new_name() {
            let c = api.metrics.counter(&name);
            c.inc_by(value);
            api.counters.insert(name, c);
        }
    }

    fn gauge_set(&mut self, name: String, value: f64) {
        let api = self;
        if let Some(g) = api.gauges.get(&name) {
            g.set(value);
        } else if valid_name(&name) && api.allow_new_name() {
            let g = api.metrics.gauge(&name);
            g.set(value);
            api.gauges.insert(name, g);
        }
    }
}
