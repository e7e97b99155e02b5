//! Metrics of the ONNX models: inference time and rows scored per model and
//! version, reloads, errors, and which version serves.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct ModelMetrics {
    seconds: HistogramVec,
    rows: IntCounterVec,
    errors: IntCounterVec,
    reloads: IntCounterVec,
    version: IntGaugeVec,
}

/// Handles for one version of one model, resolved once per version.
#[derive(Clone)]
pub struct VersionMetrics {
    pub seconds: Histogram,
    pub rows: IntCounter,
    pub errors: IntCounter,
}

impl ModelMetrics {
    pub(super) fn register(r: &Registry) -> Self {
        let seconds = HistogramVec::new(
            HistogramOpts::new("weir_model_inference_duration_seconds", "Duration of one `infer` call (one batch).")
                .buckets(prometheus::exponential_buckets(1e-6, 4.0, 12).expect("valid buckets")),
            &["model", "version"],
        )
        .expect("valid metric");
        let rows = IntCounterVec::new(
            Opts::new("weir_model_rows_total", "Rows scored (first dimension of the first input)."),
            &["model", "version"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new("weir_model_errors_total", "`infer` calls refused (wrong inputs) or failed in ONNX Runtime."),
            &["model", "version"],
        )
        .expect("valid metric");
        let reloads = IntCounterVec::new(
            Opts::new("weir_model_reloads_total", "Model files reloaded after a change, by result (ok, failed)."),
            &["model", "result"],
        )
        .expect("valid metric");
        let version = IntGaugeVec::new(
            Opts::new("weir_model_version_info", "1 for the version (sha256 of the file) each model serves."),
            &["model", "version"],
        )
        .expect("valid metric");
        for c in [
            Box::new(seconds.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rows.clone()),
            Box::new(errors.clone()),
            Box::new(reloads.clone()),
            Box::new(version.clone()),
        ] {
            r.register(c).expect("metric registered once");
        }
        ModelMetrics { seconds, rows, errors, reloads, version }
    }

    pub fn version(&self, model: &str, version: &str) -> VersionMetrics {
        VersionMetrics {
            seconds: self.seconds.with_label_values(&[model, version]),
            rows: self.rows.with_label_values(&[model, version]),
            errors: self.errors.with_label_values(&[model, version]),
        }
    }

    pub fn loaded(&self, model: &str, version: &str) {
        self.version.with_label_values(&[model, version]).set(1);
        self.reloads.with_label_values(&[model, "ok"]);
        self.reloads.with_label_values(&[model, "failed"]);
    }

    pub fn swapped(&self, model: &str, from: &str, to: &str) {
        let _ = self.version.remove_label_values(&[model, from]);
        self.version.with_label_values(&[model, to]).set(1);
        self.reloads.with_label_values(&[model, "ok"]).inc();
    }

    pub fn reload_failed(&self, model: &str) {
        self.reloads.with_label_values(&[model, "failed"]).inc();
    }
}
