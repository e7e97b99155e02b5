//! The Kafka sink. Under exactly-once one transactional producer serves
//! every Kafka sink of the pipeline: the outputs since the last checkpoint
//! and the consumed offsets commit together or not at all. Otherwise each
//! sink has an idempotent producer (no duplicates from its own retries).

use super::metrics::Transaction;
use super::{KafkaMetrics, KafkaSinkSpec, Observed, REQUEST_TIMEOUT, client_config};
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_core::event::{Batch, Cell, FieldPlan};
use weir_core::metrics::events::InternalEvent;
use weir_core::sink::{Sink, metadata_member, write_with_member};

/// The producer's context: delivery failures are kept for the next flush.
pub struct Context {
    observed: Observed,
    failed: Mutex<Option<String>>,
}

impl ClientContext for Context {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.observed.log(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.observed.error(error, reason);
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.lock().expect("failed lock").get_or_insert_with(|| e.to_string());
        }
    }
}

/// A producer, transactional or idempotent.
pub struct KafkaProducer {
    producer: BaseProducer<Context>,
    metrics: KafkaMetrics,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer").finish_non_exhaustive()
    }
}

/// Starts the producer's transactions (within [`REQUEST_TIMEOUT`]) while a
/// second thread serves the client's log and error callbacks, which
/// librdkafka queues until the client is polled: a broker that refuses the
/// client (a wrong SASL password, an untrusted certificate) is reported as
/// it happens, not only as a timeout at the end. (Calling
/// `init_transactions` again after a short timeout instead is not safe: a
/// resumed call after a killed run's fencing fails the producer.)
fn init_transactions(producer: &BaseProducer<Context>) -> KafkaResult<()> {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                producer.poll(Duration::from_millis(100));
            }
        });
        let result = producer.init_transactions(REQUEST_TIMEOUT);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    })
}

/// Fences the producer of transactional id `id` (the previous owner of
/// partitions this process was just given, which did not hand them over):
/// a producer of that id is started, which makes the transaction
/// coordinator abort the old one's open transaction at once (instead of
/// after `transaction.timeout.ms`) and refuse its later commits, and is let
/// go. `spec` gives the cluster and its (security) properties.
pub fn fence(spec: &KafkaSinkSpec, id: &str, metrics: &KafkaMetrics) -> KafkaResult<()> {
    let mut config = client_config(&spec.brokers);
    config.set("enable.idempotence", "true").set("transactional.id", id);
    super::set_properties(&mut config, &spec.properties)?;
    let context =
        Context { observed: Observed::new(format!("fencing {id}"), metrics.clone()), failed: Mutex::new(None) };
    let producer: BaseProducer<Context> = super::create(&config, context)?;
    init_transactions(&producer)
}

impl KafkaProducer {
    /// Opens a producer for `spec`'s cluster. With a transactional id it
    /// fences any earlier producer with that id (a killed run: its open
    /// transaction is aborted) and begins the first transaction.
    pub fn open(
        client: &str,
        spec: &KafkaSinkSpec,
        transactional_id: Option<&str>,
        metrics: KafkaMetrics,
    ) -> KafkaResult<Arc<Self>> {
        let mut config = client_config(&spec.brokers);
        config.set("enable.idempotence", "true").set("linger.ms", "5");
        if let Some(id) = transactional_id {
            config.set("transactional.id", id).set("transaction.timeout.ms", "60000");
        }
        super::set_properties(&mut config, &spec.properties)?;
        let context =
            Context { observed: Observed::new(client.to_string(), metrics.clone()), failed: Mutex::new(None) };
        let producer: BaseProducer<Context> = super::create(&config, context)?;
        if transactional_id.is_some() {
            init_transactions(&producer)?;
            producer.begin_transaction()?;
        }
        Ok(Arc::new(KafkaProducer { producer, metrics }))
    }

    /// Queues one message, waiting while librdkafka's queue is full. The
    /// message's timestamp is the time it is written, not the event time:
    /// the broker's retention counts from it, and old event times (a
    /// replay of last year) would be deleted at once.
    fn send(&self, topic: &str, key: Option<&[u8]>, payload: &[u8]) -> std::io::Result<()> {
        loop {
            let mut record = BaseRecord::to(topic).payload(payload);
            if let Some(k) = key {
                record = record.key(k);
            }
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(std::io::Error::other(format!("kafka: cannot send to `{topic}`: {e}"))),
            }
        }
    }

    /// Waits until every queued message is acknowledged; fails if any was not.
    pub fn flush(&self) -> std::io::Result<()> {
        let waiting = self.producer.in_flight_count() > 0;
        self.producer.flush(REQUEST_TIMEOUT).map_err(|e| std::io::Error::other(format!("kafka: flush: {e}")))?;
        if waiting {
            // Messages were delivered: a broker answered.
            self.producer.context().observed.reached();
        }
        match self.producer.context().failed.lock().expect("failed lock").take() {
            Some(e) => Err(std::io::Error::other(format!("kafka: a message was not delivered: {e}"))),
            None => Ok(()),
        }
    }

    /// Commits the open transaction with the consumed `offsets` of each
    /// group, and begins the next. On failure the transaction is aborted
    /// and the error returned: the pipeline must resume from its last
    /// checkpoint (the outputs since were never visible).
    pub fn commit(&self, offsets: &[(TopicPartitionList, ConsumerGroupMetadata)]) -> KafkaResult<()> {
        let result = (|| {
            for (tpl, group) in offsets {
                if tpl.count() > 0 {
                    self.producer.send_offsets_to_transaction(tpl, group, REQUEST_TIMEOUT)?;
                }
            }
            self.producer.commit_transaction(REQUEST_TIMEOUT)
        })();
        match result {
            Ok(()) => {
                self.producer.context().observed.reached();
                Transaction { metrics: &self.metrics, committed: true }.emit();
                self.producer.begin_transaction()
            }
            Err(e) => {
                Transaction { metrics: &self.metrics, committed: false }.emit();
                if let Err(abort) = self.producer.abort_transaction(REQUEST_TIMEOUT) {
                    tracing::error!("kafka: aborting the transaction failed too: {abort}");
                }
                Err(e)
            }
        }
    }
}

/// One Kafka sink: a topic written through a (possibly shared) producer.
pub struct KafkaSink {
    producer: Arc<KafkaProducer>,
    topic: String,
    key: Option<FieldPlan>,
    metadata: bool,
    cells: Vec<Cell>,
    escaped: Vec<String>,
    scratch: Vec<u8>,
}

impl KafkaSink {
    pub fn new(producer: Arc<KafkaProducer>, spec: &KafkaSinkSpec) -> Self {
        let metadata = spec.metadata;
        let key = spec
            .key_field
            .as_ref()
            .map(|k| FieldPlan { columns: Some(Arc::from(vec![k.clone()])), ..FieldPlan::default() });
        KafkaSink {
            producer,
            topic: spec.topic.clone(),
            key,
            metadata,
            cells: Vec::new(),
            escaped: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn send_one(&mut self, batch: &Batch, i: usize, member: Option<&[u8]>) -> std::io::Result<()> {
        let payload = batch.payload(i);
        let number;
        let key: Option<&[u8]> = match &self.key {
            None => None,
            Some(plan) => {
                self.cells.clear();
                self.escaped.clear();
                match weir_core::event::decode_into(payload, plan, &mut self.cells, &mut self.escaped) {
                    Ok(_) => match self.cells.first() {
                        Some(Cell::Str { start, end }) => Some(&payload[*start as usize..*end as usize]),
                        Some(Cell::Escaped(e)) => Some(self.escaped[*e as usize].as_bytes()),
                        Some(Cell::Num(n)) => {
                            number = n.to_string();
                            Some(number.as_bytes())
                        }
                        Some(Cell::Bool(b)) => Some(if *b { b"true" } else { b"false" }),
                        _ => None,
                    },
                    Err(_) => None,
                }
            }
        };
        let payload = match member {
            Some(m) => {
                self.scratch.clear();
                write_with_member(&mut self.scratch, payload, m)?;
                &self.scratch[..]
            }
            None => payload,
        };
        self.producer.send(&self.topic, key, payload)
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize> {
        let member = self.metadata.then(|| metadata_member(batch));
        let n = match indices {
            None => {
                for i in 0..batch.len() {
                    self.send_one(batch, i, member.as_deref())?;
                }
                batch.len()
            }
            Some(idx) => {
                for &i in idx {
                    self.send_one(batch, i as usize, member.as_deref())?;
                }
                idx.len()
            }
        };
        // Serve delivery reports without waiting.
        self.producer.producer.poll(Duration::ZERO);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.producer.flush()
    }

    /// While every broker is down, asks whether one is back (see `Observed::probe`).
    fn tick(&mut self, _: std::time::Instant) -> std::io::Result<()> {
        let producer = &self.producer.producer;
        producer.context().observed.probe(|timeout| producer.client().fetch_metadata(None, timeout).map(drop));
        Ok(())
    }
}
