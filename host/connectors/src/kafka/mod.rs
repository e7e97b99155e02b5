//! `kind = "kafka"`: Kafka in and out, through librdkafka (rdkafka): a
//! consumer-group source whose offsets are never auto-committed, and a
//! producer that is transactional under exactly-once and idempotent
//! otherwise. Everything Kafka-specific in Weir lives in this folder:
//! options ([`config`]), source ([`source`]), sink ([`sink`]), metrics
//! ([`metrics`]), the part Kafka plays in checkpoints ([`coordinator`]),
//! and partition ownership and fencing under exactly-once ([`owner`]).

pub mod config;
pub mod coordinator;
pub mod metrics;
pub mod owner;
pub mod sink;
pub mod source;

pub use config::{KafkaSinkSpec, KafkaSourceSpec, KafkaStart};
pub use coordinator::KafkaCoordinator;
pub use metrics::KafkaMetrics;
pub use sink::{KafkaProducer, KafkaSink};
pub use source::{KafkaConsumer, KafkaSource, committed_positions};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weir_config::{ConfigError, PipelineSpec, SinkSpec};
use weir_core::metrics::Metrics;
use weir_core::position::StartFrom;
use weir_core::source::{Opened, Source};

/// How long a metadata, offset or transaction request may take before the
/// pipeline gives up on it (librdkafka retries within it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client's first settings; Weir's own and the pass-through properties
/// ([`set_properties`]) follow.
fn client_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// A client made from `config`; a setting librdkafka refuses is reported by
/// its key, never its value (it may be a secret read from a file).
fn create<C: rdkafka::config::FromClientConfigAndContext<X>, X: ClientContext>(
    config: &ClientConfig,
    context: X,
) -> Result<C, KafkaError> {
    config.create_with_context(context).map_err(|e| match e {
        KafkaError::ClientConfig(code, description, key, _) => {
            let description = match config.get(&key) {
                Some(value) if !value.is_empty() => description.replace(value, "<hidden>"),
                _ => description,
            };
            KafkaError::ClientConfig(code, description, key, "<hidden>".into())
        }
        other => other,
    })
}

/// Sets the pass-through properties, reading those given by environment
/// variable or file now (a secret rotated on disk is used by the next client).
fn set_properties(c: &mut ClientConfig, properties: &[(String, config::Property)]) -> Result<(), KafkaError> {
    for (k, v) in properties {
        let value = v.resolve().map_err(|e| KafkaError::ClientCreation(format!("property `{k}`: {e}")))?;
        c.set(k, value);
    }
    Ok(())
}

/// Logging and errors of one client, into Weir's logs and metrics.
pub struct Observed {
    /// "source <name>" or "sink <name>", in log lines and the errors label.
    client: String,
    pub(crate) metrics: KafkaMetrics,
    /// Readiness' view of this client: false while every broker is down.
    up: Arc<AtomicBool>,
    /// When the brokers were last asked whether they are back.
    probed: std::sync::Mutex<std::time::Instant>,
}

/// How often a client whose brokers are all down asks whether they are back.
const PROBE_EVERY: Duration = Duration::from_secs(1);

impl Observed {
    pub fn new(client: String, metrics: KafkaMetrics) -> Self {
        let up = metrics
            .health
            .as_ref()
            .map_or_else(|| Arc::new(AtomicBool::new(true)), |h| h.check(&format!("kafka {client}")));
        metrics.connected.with_label_values(&[client.as_str()]).set(1);
        Observed { client, metrics, up, probed: std::sync::Mutex::new(std::time::Instant::now()) }
    }

    /// Whether the client reaches a broker (as far as it last heard).
    pub fn connected(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// While every broker is down, at most once per [`PROBE_EVERY`]: asks
    /// `fetch` (a metadata request) whether one is back. A client that
    /// sends and receives nothing (a quiet topic, an idle sink) would
    /// otherwise never hear, and stay not ready.
    pub fn probe<E>(&self, fetch: impl FnOnce(Duration) -> Result<(), E>) {
        if self.connected() {
            return;
        }
        {
            let mut probed = self.probed.lock().unwrap_or_else(|e| e.into_inner());
            if probed.elapsed() < PROBE_EVERY {
                return;
            }
            *probed = std::time::Instant::now();
        }
        if fetch(Duration::from_millis(200)).is_ok() {
            self.reached();
        }
    }

    /// The client heard from a broker: connected again, if it was not.
    pub fn reached(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!(client = %self.client, "kafka: a broker answers again; the pipeline goes on");
            self.metrics.connected.with_label_values(&[self.client.as_str()]).set(1);
        }
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
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
            && self.up.swap(false, Ordering::Relaxed)
        {
            tracing::warn!(client = %self.client,
                "kafka: every broker is down; the pipeline waits (not ready) and goes on when one answers");
            self.metrics.connected.with_label_values(&[self.client.as_str()]).set(0);
        }
        use weir_core::metrics::events::InternalEvent;
        metrics::ClientError { metrics: &self.metrics, client: &self.client, error: &error, reason }.emit();
    }
}

const KINDS: &[&str] = &["kafka"];

/// The connector.
pub struct Kafka;

impl crate::Connector for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn source_kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn sink_kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn check(&self, spec: &PipelineSpec) -> Result<(), ConfigError> {
        for (_, s) in crate::sources_of(spec, KINDS) {
            KafkaSourceSpec::of(s, spec)?;
        }
        let sinks =
            crate::sinks_of(spec, KINDS).map(|s| Ok((s, KafkaSinkSpec::of(s)?))).collect::<Result<Vec<_>, _>>()?;
        config::one_producer(spec, &sinks)
    }

    /// Opens the consumers (their groups' committed offsets decide which
    /// checkpoint is restored) and, under exactly-once, the transactional
    /// producer every Kafka sink shares. The producer comes first: starting
    /// it fences a killed run's producer and aborts its open transaction,
    /// whose pending offset commits would otherwise hide the group's
    /// committed offsets.
    fn session(&self, cx: &crate::SessionContext<'_>) -> anyhow::Result<Box<dyn crate::Session>> {
        let spec = cx.spec;
        let mut metrics: KafkaMetrics = cx.metrics.family();
        metrics.health = Some(cx.metrics.health());
        let exactly_once = spec.checkpoint.as_ref().is_some_and(|c| c.exactly_once);
        // This process's transactional id: one per process and pipeline.
        let id = format!("weir-{}-{}", spec.name, cx.instance);
        let producer = match crate::sinks_of(spec, KINDS).next() {
            Some(s) if exactly_once => {
                let k = KafkaSinkSpec::of(s)?;
                let what = format!("cannot start the transactional producer `{id}`");
                Some(
                    KafkaProducer::open(&format!("sink {}", s.name), &k, Some(&id), metrics.clone())
                        .map_err(|e| client_error(format!("sink `{}`", s.name), &what, e))?,
                )
            }
            _ => None,
        };
        let mut consumers = Vec::new();
        for (i, s) in crate::sources_of(spec, KINDS) {
            let k = KafkaSourceSpec::of(s, spec)?;
            // Under exactly-once, a source fences the producer of an owner
            // that did not hand its partitions over (see `owner::Owner`).
            let owner = match crate::sinks_of(spec, KINDS).next() {
                Some(sink) if producer.is_some() => {
                    let sink = KafkaSinkSpec::of(sink)?;
                    // A fencing client is short-lived: no readiness check of its own.
                    let fencing = KafkaMetrics { health: None, ..metrics.clone() };
                    Some(owner::Owner {
                        id: id.clone(),
                        member: format!("{}-{}", k.group, cx.instance),
                        fence: Box::new(move |id| sink::fence(&sink, id, &fencing)),
                    })
                }
                _ => None,
            };
            let c = KafkaConsumer::open(&s.name, &k, cx.instance, cx.gate.clone(), metrics.clone(), owner)
                .map_err(|e| client_error(format!("source `{}`", s.name), "cannot create the Kafka consumer", e))?;
            consumers.push((i, k, c));
        }
        Ok(Box::new(KafkaSession { consumers, producer, exactly_once, from: cx.from, metrics }))
    }
}

/// The Kafka clients of one pipeline.
struct KafkaSession {
    consumers: Vec<(usize, KafkaSourceSpec, Arc<KafkaConsumer>)>,
    /// The transactional producer every Kafka sink shares, under exactly-once.
    producer: Option<Arc<KafkaProducer>>,
    exactly_once: bool,
    from: StartFrom,
    metrics: KafkaMetrics,
}

impl crate::Session for KafkaSession {
    fn coordinator(&mut self) -> Option<Box<dyn weir_core::checkpoint::Coordinator>> {
        let consumers: Vec<_> = self.consumers.iter().map(|(_, _, c)| c.clone()).collect();
        Some(Box::new(KafkaCoordinator::new(self.producer.clone(), consumers)))
    }

    fn open_source(&mut self, cx: &crate::SourceContext<'_>) -> anyhow::Result<Opened> {
        let (_, k, consumer) = self
            .consumers
            .iter()
            .find(|(i, _, _)| *i == cx.index as usize)
            .ok_or_else(|| anyhow::anyhow!("source `{}`: no Kafka consumer was opened for it", cx.spec.name))?;
        let start = match self.from {
            StartFrom::Replay(start) => start,
            StartFrom::Checkpoint => k.start,
        };
        consumer
            .plan_starts(
                committed_positions(cx.restored, &k.topic),
                self.from == StartFrom::Checkpoint,
                self.exactly_once,
                start,
            )
            .map_err(|e| {
                broker_error(format!("topic `{}` on {}", k.topic, k.brokers), "cannot plan the start offsets", e)
            })?;
        consumer.subscribe()?;
        let source: Box<dyn Source> = Box::new(KafkaSource::new(consumer.clone(), cx.index, cx.spec, k.stop_at_end));
        Ok((source, None))
    }

    fn open_sink(&mut self, s: &SinkSpec, _: &Metrics) -> anyhow::Result<Box<dyn weir_core::sink::Sink>> {
        let k = KafkaSinkSpec::of(s)?;
        let producer = match &self.producer {
            Some(p) => p.clone(), // the transactional one, shared
            None => KafkaProducer::open(&format!("sink {}", s.name), &k, None, self.metrics.clone())
                .map_err(|e| client_error(format!("sink `{}`", s.name), "cannot create the Kafka producer", e))?,
        };
        Ok(Box::new(KafkaSink::new(producer, &k)))
    }
}

/// A client that cannot be created or started. Creating one reaches no
/// broker, so that failure is its settings' (the user's); starting a
/// transactional producer talks to the brokers, so that one may be theirs.
fn client_error(component: String, what: &str, e: KafkaError) -> weir_core::error::Error {
    match &e {
        KafkaError::ClientCreation(_) => weir_core::error::Error::user(format!("{what}: {e}")).at(component),
        _ => broker_error(component, what, e),
    }
}

/// A broker that cannot be reached or refuses: outside Weir, worth retrying.
fn broker_error(component: String, what: &str, e: KafkaError) -> weir_core::error::Error {
    weir_core::error::Error::external(format!("{what}: {e}")).at(component)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refused_setting_is_reported_by_its_key_not_its_value() {
        let mut config = super::client_config("127.0.0.1:1");
        config.set("security.protocol", "SECRET-not-a-protocol");
        let e = super::create::<rdkafka::producer::BaseProducer, _>(&config, rdkafka::producer::DefaultProducerContext)
            .err()
            .expect("refused");
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("security.protocol") && !shown.contains("SECRET"), "{shown}");
    }
}
