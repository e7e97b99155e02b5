//! Kafka in and out, through librdkafka (rdkafka): a consumer-group source
//! whose offsets are never auto-committed, and a producer that is
//! transactional under exactly-once and idempotent otherwise.

mod consumer;
mod producer;

pub use consumer::{KafkaConsumer, KafkaSource, RevokeGate, committed_positions};
pub use producer::{KafkaProducer, KafkaSink};

use crate::metrics::DurabilityMetrics;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use std::time::Duration;

/// How long a metadata, offset or transaction request may take before the
/// pipeline gives up on it (librdkafka retries within it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client's settings: Weir's own, then the pass-through properties.
fn client_config(brokers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

/// Logging and errors of one client, into Weir's logs and metrics.
pub struct Observed {
    /// "source <name>" or "sink <name>", in log lines and the errors label.
    client: String,
    pub(crate) metrics: DurabilityMetrics,
}

impl Observed {
    pub fn new(client: String, metrics: DurabilityMetrics) -> Self {
        Observed { client, metrics }
    }
}

impl ClientContext for Observed {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let client = &self.client;
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{client}: {fac} {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{client}: {fac} {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{client}: {fac} {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{client}: {fac} {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_)) {
            return; // the end of a partition is news, not an error
        }
        self.metrics.kafka_errors.with_label_values(&[self.client.as_str()]).inc();
        tracing::warn!(client = %self.client, "kafka: {error}: {reason} (retrying)");
    }
}
