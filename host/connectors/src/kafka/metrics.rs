//! The Kafka connector's metric families, registered in a pipeline's
//! registry when it first opens a Kafka client.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use weir_core::metrics::Families;

#[derive(Clone)]
pub struct KafkaMetrics {
    /// Kafka transactions by result: "committed", "aborted".
    pub transactions: IntCounterVec,
    /// Messages behind the end of each partition, per Kafka source.
    pub consumer_lag: IntGaugeVec,
    /// Errors reported by a Kafka client (broker down, request failures).
    pub errors: IntCounterVec,
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
        for result in ["committed", "aborted"] {
            transactions.with_label_values(&[result]);
        }
        KafkaMetrics { transactions, consumer_lag, errors }
    }
}
