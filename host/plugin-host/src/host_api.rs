//! The host interface plugins import: logging and custom metrics.

use super::bindings::weir::plugin::{host, models, types};
use super::instance::StoreData;
use std::collections::HashMap;
use weir_core::metrics::events::{CapabilityDenied, InternalEvent};
use weir_core::metrics::{MAX_PLUGIN_METRIC_NAMES, PluginApiMetrics};
use weir_models::{Tensor, TensorData};

/// Per-instance state behind the host API.
pub struct HostApi {
    step: String,
    metrics: PluginApiMetrics,
    counters: HashMap<String, prometheus::IntCounter>,
    gauges: HashMap<String, prometheus::Gauge>,
    warned_names: bool,
}

impl HostApi {
    pub fn new(step: String, metrics: PluginApiMetrics) -> Self {
        HostApi { step, metrics, counters: HashMap::new(), gauges: HashMap::new(), warned_names: false }
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

impl types::Host for StoreData {}

impl host::Host for StoreData {
    fn log(&mut self, level: host::Level, message: String) {
        let step = &self.api.step;
        match level {
            host::Level::Trace => tracing::trace!(target: "weir::plugin", step, "{message}"),
            host::Level::Debug => tracing::debug!(target: "weir::plugin", step, "{message}"),
            host::Level::Info => tracing::info!(target: "weir::plugin", step, "{message}"),
            host::Level::Warn => tracing::warn!(target: "weir::plugin", step, "{message}"),
            host::Level::Error => tracing::error!(target: "weir::plugin", step, "{message}"),
        }
    }

    fn counter_add(&mut self, name: String, value: u64) {
        let api = &mut self.api;
        if let Some(c) = api.counters.get(&name) {
            c.inc_by(value);
        } else if valid_name(&name) && api.allow_new_name() {
            let c = api.metrics.counter(&name);
            c.inc_by(value);
            api.counters.insert(name, c);
        }
    }

    fn gauge_set(&mut self, name: String, value: f64) {
        let api = &mut self.api;
        if let Some(g) = api.gauges.get(&name) {
            g.set(value);
        } else if valid_name(&name) && api.allow_new_name() {
            let g = api.metrics.gauge(&name);
            g.set(value);
            api.gauges.insert(name, g);
        }
    }
}

impl models::Host for StoreData {
    fn infer(&mut self, model: String, inputs: Vec<models::Tensor>) -> Result<models::Inference, String> {
        let inputs = inputs
            .into_iter()
            .map(|t| Tensor {
                name: t.name,
                shape: t.shape,
                data: match t.data {
                    models::TensorData::Float32(v) => TensorData::Float32(v),
                    models::TensorData::Int64(v) => TensorData::Int64(v),
                },
            })
            .collect();
        let inference = self.models.infer(&model, inputs)?;
        let outputs = inference
            .outputs
            .into_iter()
            .map(|t| models::Tensor {
                name: t.name,
                shape: t.shape,
                data: match t.data {
                    TensorData::Float32(v) => models::TensorData::Float32(v),
                    TensorData::Int64(v) => models::TensorData::Int64(v),
                },
            })
            .collect();
        Ok(models::Inference { outputs, version: inference.version })
    }
}
