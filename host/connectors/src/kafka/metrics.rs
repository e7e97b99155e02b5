//! The Kafka connector's metric families, registered in a pipeline's
//! registry when it first opens a Kafka client.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use weir_core::metrics::Families;
use weir_core::metrics::events::InternalEvent;

#[derive(Clone)]
pub struct KafkaMetrics {
    /// Kafka transactions by result: "committed", "aborted".
    pub transactions: IntCounterVec,
    /// Messages behind the end of each partition, per Kafka source.
    pub consumer_lag: IntGaugeVec,
    /// Errors reported by a Kafka client (broker down, request failures).
    pub errors: IntCounterVec,
    /// 1 while a Kafka client reaches a broker, 0 while every broker is down.
    pub connected: IntGaugeVec,
    /// Readiness, which a client without brokers withdraws (set by the session).
    pub health: Option<weir_core::metrics::Health>,
}

impl Families for KafkaMetrics {
    fn register(r: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            r.register(Box::new(c.clone())).expect("metric registered once");
            c
        };
        let transactions =
            counter("weir_kafka_transactions_total", "Kafka transactions by result (committed, aborted).", &["result"]);
        let errors = counter("weir_kafka_errors_total", "Errors reported by a Kafka client.", &["client"]);
        let consumer_lag = IntGaugeVec::new(
            Opts::new("weir_kafka_consumer_lag", "Messages behind the end of the partition."),
            &["source", "partition"],
        )
        .expect("valid metric");
        r.register(Box::new(consumer_lag.clone())).expect("metric registered once");
        let connected = IntGaugeVec::new(
            Opts::new("weir_kafka_connected", "1 while a Kafka client reaches a broker, 0 while every broker is down."),
            &["client"],
        )
        .expect("valid metric");
        r.register(Box::new(connected.clone())).expect("metric registered once");
        for result in ["committed", "aborted"] {
            transactions.with_label_values(&[result]);
        }
        KafkaMetrics { transactions, consumer_lag, errors, connected, health: None }
    }
}

/// A Kafka client reported an error (librdkafka retries on its own).
pub struct ClientError<'a> {
    pub metrics: &'a KafkaMetrics,
    /// "source <name>" or "sink <name>".
    pub client: &'a str,
    pub error: &'a rdkafka::error::KafkaError,
    pub reason: &'a str,
}

impl InternalEvent for ClientError<'_> {
    fn emit(self) {
        tracing::warn!(client = %self.client, "kafka: {}: {} (retrying)", self.error, self.reason);
        self.metrics.errors.with_label_values(&[self.client]).inc();
    }
}

/// A transaction (a checkpoint's outputs and offsets) committed or aborted.
pub struct Transaction<'a> {
    pub metrics: &'a KafkaMetrics,
    pub committed: bool,
}

impl InternalEvent for Transaction<'_> {
    fn emit(self) {
        let result = if self.committed { "committed" } else { "aborted" };
        if self.committed {
            tracing::debug!("kafka: transaction committed");
        } else {
            tracing::error!("kafka: transaction aborted");
        }
        self.metrics.transactions.with_label_values(&[result]).inc();
    }
}
