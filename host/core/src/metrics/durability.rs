//! Checkpoint and recovery metrics.

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// Handles for the checkpoint coordinator.
#[derive(Clone)]
pub struct DurabilityMetrics {
    /// Time to take one checkpoint, the sink stage's part: flush the sinks, write, commit.
    pub checkpoint_seconds: Histogram,
    /// Time outputs stop for one checkpoint: from the first shard stopping
    /// to snapshot until the checkpoint is handed to the writer thread
    /// (with a Kafka transaction: until it is written and committed).
    pub stall_seconds: Histogram,
    /// Size of the newest checkpoint file.
    pub checkpoint_bytes: IntGauge,
    /// Epoch of the newest complete checkpoint.
    pub checkpoint_epoch: IntGauge,
    /// Wall-clock time of the newest complete checkpoint, seconds since 1970.
    pub checkpoint_last_success: Gauge,
    /// Checkpoints by result: "ok", "failed", "corrupt" (found at start).
    pub checkpoints: IntCounterVec,
    /// Seconds from start until the first checkpoint after a restore.
    pub recovery_seconds: Gauge,
}

impl DurabilityMetrics {
    pub(super) fn register(r: &Registry) -> Self {
        let reg = |c: Box<dyn prometheus::core::Collector>| r.register(c).expect("metric registered once");
        let checkpoint_seconds = Histogram::with_opts(
            HistogramOpts::new("weir_checkpoint_duration_seconds", "Time to take one checkpoint.")
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")),
        )
        .expect("valid metric");
        reg(Box::new(checkpoint_seconds.clone()));
        let stall_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "weir_checkpoint_stall_seconds",
                "Time outputs stop for one checkpoint: from the first shard stopping to snapshot until the checkpoint is handed to its writer (with a Kafka transaction: until written and committed).",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")),
        )
        .expect("valid metric");
        reg(Box::new(stall_seconds.clone()));
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help)).expect("valid metric");
            reg(Box::new(g.clone()));
            g
        };
        let checkpoint_bytes = gauge("weir_checkpoint_size_bytes", "Size of the newest checkpoint file.");
        let checkpoint_epoch = gauge("weir_checkpoint_epoch", "Epoch of the newest complete checkpoint.");
        let checkpoint_last_success = Gauge::with_opts(Opts::new(
            "weir_checkpoint_last_success_timestamp_seconds",
            "Wall-clock time of the newest complete checkpoint.",
        ))
        .expect("valid metric");
        reg(Box::new(checkpoint_last_success.clone()));
        let recovery_seconds = Gauge::with_opts(Opts::new(
            "weir_recovery_seconds",
            "Seconds from start until the first checkpoint after restoring one.",
        ))
        .expect("valid metric");
        reg(Box::new(recovery_seconds.clone()));
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(c.clone()));
            c
        };
        let checkpoints =
            counter("weir_checkpoints_total", "Checkpoints by result (ok, failed, corrupt).", &["result"]);
        for result in ["ok", "failed", "corrupt"] {
            checkpoints.with_label_values(&[result]);
        }
        DurabilityMetrics {
            checkpoint_seconds,
            stall_seconds,
            checkpoint_bytes,
            checkpoint_epoch,
            checkpoint_last_success,
            checkpoints,
            recovery_seconds,
        }
    }
}
