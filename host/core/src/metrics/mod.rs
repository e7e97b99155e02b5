//! Every metric Weir exports, in one place, by Prometheus conventions.
//!
//! Metrics are registered once; the hot path holds pre-resolved handles
//! ([`StepMetrics`], [`SourceMetrics`], ...) so that counting is one atomic add,
//! never a label lookup. Labels are bounded: pipeline, step, source, sink,
//! output and a fixed set of reasons.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

mod durability;
pub mod events;
mod models;
mod plugins;
pub use durability::DurabilityMetrics;
pub use models::{ModelMetrics, VersionMetrics};
pub use plugins::{PluginFamilies, PluginMetrics, SandboxMetrics, StdioMetrics};

/// The registry and metric families of one pipeline.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    source_events: IntCounterVec,
    source_bytes: IntCounterVec,
    step_events_in: IntCounterVec,
    step_events_out: IntCounterVec,
    step_events_rejected: IntCounterVec,
    dead_letter: IntCounterVec,
    plugins: PluginFamilies,
    ingest_requests: IntCounterVec,
    audit_events: IntCounterVec,
    plugin_counter: IntCounterVec,
    plugin_gauge: prometheus::GaugeVec,
    batch_events: HistogramVec,
    sink_events: IntCounterVec,
    up: IntGaugeVec,
    late_events: IntCounterVec,
    window_rows: IntCounterVec,
    windows_open: IntGaugeVec,
    watermark: IntGaugeVec,
    models: ModelMetrics,
    durability: DurabilityMetrics,
    /// Families registered by upper crates ([`Families`]), one per type.
    families: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
    health: Health,
}

/// Conditions readiness depends on besides start-up (a Kafka client that
/// reaches no broker): `/readyz` answers 503 naming each that fails.
#[derive(Clone, Default)]
pub struct Health(Arc<Mutex<std::collections::BTreeMap<String, Arc<std::sync::atomic::AtomicBool>>>>);

impl Health {
    /// The flag of condition `name`, healthy until its owner says otherwise.
    pub fn check(&self, name: &str) -> Arc<std::sync::atomic::AtomicBool> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(name.to_string()).or_insert_with(|| Arc::new(std::sync::atomic::AtomicBool::new(true))).clone()
    }

    /// The conditions that fail now.
    pub fn failing(&self) -> Vec<String> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().filter(|(_, ok)| !ok.load(std::sync::atomic::Ordering::Relaxed)).map(|(n, _)| n.clone()).collect()
    }
}

/// A set of metric families that a crate above this one owns (a
/// connector's, say): registered in a pipeline's registry the first time
/// it is asked for, then shared by every clone of [`Metrics`].
pub trait Families: Clone + Send + Sync + 'static {
    fn register(registry: &Registry) -> Self;
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid metric");
    registry.register(Box::new(h.clone())).expect("metric registered once");
    h
}

impl Metrics {
    pub fn new(pipeline: &str) -> Self {
        let m = Self::register(pipeline);
        for reason in DEAD_LETTER_REASONS {
            m.dead_letter.with_label_values(&[*reason]);
        }
        m
    }

    fn register(pipeline: &str) -> Self {
        let labels = HashMap::from([("pipeline".to_string(), pipeline.to_string())]);
        let registry = Registry::new_custom(None, Some(labels)).expect("valid registry");
        let r = &registry;
        let plugin_gauge = prometheus::GaugeVec::new(
            Opts::new("weir_plugin_gauge", "Gauges set by plugins through the host API."),
            &["step", "name"],
        )
        .expect("valid metric");
        registry.register(Box::new(plugin_gauge.clone())).expect("metric registered once");
        let up =
            IntGaugeVec::new(Opts::new("weir_pipeline_up", "1 while the pipeline is running."), &[]).expect("valid");
        registry.register(Box::new(up.clone())).expect("metric registered once");
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["step"]).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("metric registered once");
            g
        };
        let windows_open =
            gauge("weir_windows_open", "Windows (sliding, session: keys) holding state in a query step.");
        let watermark =
            gauge("weir_watermark_milliseconds", "Event-time watermark of a query step, epoch milliseconds.");
        let models = ModelMetrics::register(r);
        Metrics {
            models,
            durability: DurabilityMetrics::register(r),
            late_events: counter(
                r,
                "weir_late_events_total",
                "Events too late for any open window (sent to the step's `late` output, or dead-lettered).",
                &["step"],
            ),
            window_rows: counter(
                r,
                "weir_window_results_total",
                "Window results emitted by a query step, by kind (final, correction, retraction).",
                &["step", "kind"],
            ),
            windows_open,
            watermark,
            source_events: counter(
                r,
                "weir_source_events_total",
                "Events read by a source (valid or not).",
                &["source"],
            ),
            source_bytes: counter(r, "weir_source_bytes_total", "Bytes read by a source.", &["source"]),
            step_events_in: counter(r, "weir_step_events_in_total", "Events handed to a step.", &["step"]),
            step_events_out: counter(
                r,
                "weir_step_events_out_total",
                "Events emitted by a step, by output.",
                &["step", "output"],
            ),
            step_events_rejected: counter(
                r,
                "weir_step_events_rejected_total",
                "Events a step refused (they go to the dead-letter output).",
                &["step"],
            ),
            dead_letter: counter(
                r,
                "weir_dead_letter_events_total",
                "Events sent to the dead-letter output, by reason.",
                &["reason"],
            ),
            plugins: PluginFamilies::register(r),
            ingest_requests: counter(
                r,
                "weir_http_ingest_requests_total",
                "Requests to an HTTP source, by result: done (events split and checked), malformed, full (429), too-large (413), closed (503).",
                &["source", "result"],
            ),
            audit_events: counter(
                r,
                "weir_audit_events_total",
                "Lines written to the audit log, by action and result.",
                &["action", "result"],
            ),
            plugin_counter: counter(
                r,
                "weir_plugin_counter_total",
                "Counters kept by plugins through the host API.",
                &["step", "name"],
            ),
            plugin_gauge,
            batch_events: histogram(
                r,
                "weir_batch_size_events",
                "Events per batch entering a stage.",
                &["stage"],
                prometheus::exponential_buckets(1.0, 4.0, 9).expect("valid buckets"),
            ),
            sink_events: counter(r, "weir_sink_events_total", "Events written by a sink.", &["sink"]),
            up,
            registry,
            families: Arc::default(),
            health: Health::default(),
        }
    }

    /// The families of type `F`, registered on first use.
    pub fn family<F: Families>(&self) -> F {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let entry = families.entry(TypeId::of::<F>()).or_insert_with(|| Box::new(F::register(&self.registry)));
        entry.downcast_ref::<F>().expect("one type per TypeId").clone()
    }

    /// The Prometheus text exposition of every metric.
    /// What readiness depends on besides start-up.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("Prometheus text is UTF-8")
    }

    pub fn set_up(&self, up: bool) {
        self.up.with_label_values::<&str>(&[]).set(i64::from(up));
    }

    pub fn source(&self, source: &str) -> SourceMetrics {
        SourceMetrics {
            events: self.source_events.with_label_values(&[source]),
            bytes: self.source_bytes.with_label_values(&[source]),
            batch_events: self.batch_events.with_label_values(&[&format!("source:{source}")]),
        }
    }

    pub fn step(&self, step: &str) -> StepMetrics {
        StepMetrics {
            step: step.to_string(),
            events_in: self.step_events_in.with_label_values(&[step]),
            main_out: self.step_events_out.with_label_values(&[step, "out"]),
            out_family: self.step_events_out.clone(),
            rejected: self.step_events_rejected.with_label_values(&[step]),
            batch_events: self.batch_events.with_label_values(&[&format!("step:{step}")]),
        }
    }

    pub fn window(&self, step: &str) -> WindowMetrics {
        WindowMetrics {
            late: self.late_events.with_label_values(&[step]),
            finals: self.window_rows.with_label_values(&[step, "final"]),
            corrections: self.window_rows.with_label_values(&[step, "correction"]),
            retractions: self.window_rows.with_label_values(&[step, "retraction"]),
            open: self.windows_open.with_label_values(&[step]),
            watermark: self.watermark.with_label_values(&[step]),
        }
    }

    pub fn plugin_api(&self, step: &str) -> PluginApiMetrics {
        PluginApiMetrics {
            step: step.to_string(),
            counters: self.plugin_counter.clone(),
            gauges: self.plugin_gauge.clone(),
            sandbox: self.plugins.sandbox(step),
        }
    }

    /// Counts one request to an HTTP source, by result.
    pub fn ingest_request(&self, source: &str, result: &str) {
        self.ingest_requests.with_label_values(&[source, result]).inc();
    }

    /// The audit log's counter family.
    pub fn audit_events(&self) -> IntCounterVec {
        self.audit_events.clone()
    }

    /// (step, capability, count) of the capability uses the sandbox refused.
    pub fn denied(&self) -> Vec<(String, String, u64)> {
        self.plugins.denied()
    }

    /// Handles for a plugin step: calls, versions, deployments, circuit.
    pub fn plugin(&self, step: &str) -> PluginMetrics {
        self.plugins.step(step)
    }

    pub fn models(&self) -> ModelMetrics {
        self.models.clone()
    }

    /// Checkpoint and recovery metrics.
    pub fn durability(&self) -> DurabilityMetrics {
        self.durability.clone()
    }

    pub fn sink(&self, sink: &str) -> IntCounter {
        self.sink_events.with_label_values(&[sink])
    }

    pub fn dead_letter(&self, reason: &str) -> IntCounter {
        self.dead_letter.with_label_values(&[reason])
    }

    /// Total dead-lettered events, all reasons.
    pub fn dead_letter_total(&self) -> u64 {
        total(&self.dead_letter)
    }

    /// Total events read by all sources.
    pub fn source_events_total(&self) -> u64 {
        total(&self.source_events)
    }

    /// Total bytes read by all sources.
    pub fn source_bytes_total(&self) -> u64 {
        total(&self.source_bytes)
    }

    /// (label value, count) of a family with one label, for the summary.
    pub fn by_label(&self, family: Family) -> Vec<(String, u64)> {
        let vec = match family {
            Family::DeadLetter => &self.dead_letter,
            Family::SinkEvents => &self.sink_events,
            Family::StepIn => &self.step_events_in,
            Family::StepRejected => &self.step_events_rejected,
        };
        let mut out = Vec::new();
        for mf in vec.collect() {
            for m in mf.get_metric() {
                let label = m.get_label().iter().find(|l| l.name() != "pipeline").map(|l| l.value().to_string());
                out.push((label.unwrap_or_default(), m.get_counter().get_value() as u64));
            }
        }
        out.sort();
        out
    }
}

/// Every dead-letter reason, so each series exists (at 0) from the start.
pub const DEAD_LETTER_REASONS: &[&str] = &[
    "invalid-json",
    "invalid-event",
    "schema-violation",
    "rejected",
    "plugin-trap",
    "plugin-deadline",
    "plugin-memory",
    "plugin-invalid-output",
    "plugin-unavailable",
    "plugin-output-limit",
    "plugin-state-quota",
    "circuit-open",
    "late-event",
];

/// Families the run summary reads back.
#[derive(Debug, Clone, Copy)]
pub enum Family {
    DeadLetter,
    SinkEvents,
    StepIn,
    StepRejected,
}

fn total(vec: &IntCounterVec) -> u64 {
    vec.collect().iter().flat_map(|mf| mf.get_metric()).map(|m| m.get_counter().get_value() as u64).sum()
}

/// Handles for one source.
#[derive(Clone)]
pub struct SourceMetrics {
    pub events: IntCounter,
    pub bytes: IntCounter,
    pub batch_events: Histogram,
}

/// Handles for one step.
#[derive(Clone)]
pub struct StepMetrics {
    step: String,
    pub events_in: IntCounter,
    pub main_out: IntCounter,
    out_family: IntCounterVec,
    pub rejected: IntCounter,
    pub batch_events: Histogram,
}

impl StepMetrics {
    pub fn out(&self, output: &str) -> IntCounter {
        if output == "out" { self.main_out.clone() } else { self.out_family.with_label_values(&[&self.step, output]) }
    }
}

/// Handles for a query step's windows.
#[derive(Clone)]
pub struct WindowMetrics {
    pub late: IntCounter,
    pub finals: IntCounter,
    pub corrections: IntCounter,
    pub retractions: IntCounter,
    pub open: prometheus::IntGauge,
    pub watermark: prometheus::IntGauge,
}

/// Most distinct names one plugin may create through the metrics host API.
pub const MAX_PLUGIN_METRIC_NAMES: usize = 64;

/// The metrics a plugin reaches through the host API, bounded in names.
#[derive(Clone)]
pub struct PluginApiMetrics {
    step: String,
    counters: IntCounterVec,
    gauges: prometheus::GaugeVec,
    pub sandbox: SandboxMetrics,
}

impl PluginApiMetrics {
    pub fn counter(&self, name: &str) -> IntCounter {
        self.counters.with_label_values(&[&self.step, name])
    }

    pub fn gauge(&self, name: &str) -> prometheus::Gauge {
        self.gauges.with_label_values(&[&self.step, name])
    }
}

impl PluginApiMetrics {
    /// Handles for a new instance of the same step.
    pub fn clone_for_instance(&self) -> PluginApiMetrics {
        PluginApiMetrics {
            step: self.step.clone(),
            counters: self.counters.clone(),
            gauges: self.gauges.clone(),
            sandbox: self.sandbox.clone(),
        }
    }
}
