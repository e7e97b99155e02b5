//! The Kafka source: one member of a consumer group. Offsets are never
//! auto-committed: they are committed with each checkpoint (inside the
//! Kafka transaction under exactly-once), and a new assignment starts each
//! partition where the restored checkpoint says.

use super::owner::Owner;
use super::{KafkaMetrics, KafkaSourceSpec, KafkaStart, Observed, REQUEST_TIMEOUT, client_config};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_core::checkpoint::Gate;
use weir_core::event::{Batch, FieldPlan, Origin};
use weir_core::position::Position;
use weir_core::source::{BatchLimit, Fill, Source};

/// Where a partition starts on its first assignment to this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Start {
    offset: Offset,
    /// A default for a partition the group had no committed offset for at
    /// start-up: used only if it still has none when the partition
    /// arrives. In a group another process may have read the partition and
    /// committed its offsets since, and reading it again from the default
    /// would write its results twice.
    unless_committed: bool,
}

/// The consumer's context: where each newly assigned partition starts,
/// and the gate a revocation waits at.
pub struct Context {
    observed: Observed,
    source: String,
    topic: String,
    group: String,
    /// Start offsets decided at start-up, each used by the first assignment
    /// of its partition; later assignments start at the group's committed
    /// offsets (which this process, or another, committed).
    starts: Mutex<BTreeMap<i32, Start>>,
    /// Partitions revoked since the source last looked.
    revoked: Mutex<Vec<i32>>,
    /// The partitions assigned now. A message of another partition (one
    /// fetched before a revocation and delivered after it) is never
    /// processed here: the partition's new owner reads it.
    owned: Mutex<BTreeSet<i32>>,
    gate: Arc<Gate>,
    /// Under exactly-once: who this process is, as its offset commits
    /// record it, and how it fences an owner that did not hand over.
    owner: Option<Owner>,
    /// Partitions being given up now: their offsets commit as released.
    revoking: Mutex<BTreeSet<i32>>,
}

impl ClientContext for Context {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.observed.log(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.observed.error(error, reason);
    }
}

impl ConsumerContext for Context {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut starts = self.starts.lock().expect("starts lock");
                let mut pins: BTreeMap<i32, Start> = BTreeMap::new();
                for e in tpl.elements() {
                    if let Some(start) = starts.remove(&e.partition()) {
                        pins.insert(e.partition(), start);
                    }
                }
                drop(starts);
                self.drop_defaults_now_committed(consumer, &mut pins);
                let mut partitions = Vec::new();
                for mut e in tpl.elements() {
                    partitions.push(e.partition());
                    if let Some(start) = pins.get(&e.partition())
                        && let Err(err) = e.set_offset(start.offset)
                    {
                        tracing::error!(topic = %self.topic, partition = e.partition(), "cannot set the start offset: {err}");
                    }
                }
                tracing::info!(topic = %self.topic, ?partitions, "partitions assigned");
                // What was given up is given up (a revoke checkpoint that
                // came late still committed them as released).
                self.revoking.lock().expect("revoking lock").clear();
                if let Some(owner) = &self.owner {
                    owner.fence_previous(consumer, &self.group, &self.topic, &partitions);
                }
                *self.owned.lock().expect("owned lock") = partitions.iter().copied().collect();
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(topic = %self.topic, "cannot take the assignment: {e}");
                }
            }
            _ => {
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(topic = %self.topic, ?partitions, "partitions revoked: checkpointing them first");
                self.revoking.lock().expect("revoking lock").extend(partitions.iter().copied());
                if !self.gate.request_and_wait(&self.source, partitions.clone(), REQUEST_TIMEOUT) {
                    tracing::warn!(topic = %self.topic, "no checkpoint before giving the partitions up; their new owner resumes from the last one");
                }
                let mut owned = self.owned.lock().expect("owned lock");
                for p in &partitions {
                    owned.remove(p);
                }
                drop(owned);
                self.revoked.lock().expect("revoked lock").extend(partitions);
                if let Err(e) = consumer.unassign() {
                    tracing::error!(topic = %self.topic, "cannot give up the assignment: {e}");
                }
            }
        }
    }
}

impl Context {
    /// Removes from `pins` the defaults of partitions the group has a
    /// committed offset for by now: those start there. If the group cannot
    /// be asked, every default is dropped too: the group's committed offset
    /// (or `auto.offset.reset`, set to the same default) decides, which
    /// never reads a committed event twice.
    fn drop_defaults_now_committed(&self, consumer: &BaseConsumer<Self>, pins: &mut BTreeMap<i32, Start>) {
        let defaults: Vec<i32> = pins.iter().filter(|(_, s)| s.unless_committed).map(|(p, _)| *p).collect();
        if defaults.is_empty() {
            return;
        }
        match committed_of(consumer, &self.topic, &defaults) {
            Ok(committed) => {
                for p in committed.keys() {
                    pins.remove(p);
                }
                if !committed.is_empty() {
                    tracing::info!(topic = %self.topic, ?committed, "the group committed offsets since start-up: starting there");
                }
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic, "cannot read the group's committed offsets ({e}): leaving the start to the group");
                pins.retain(|_, s| !s.unless_committed);
            }
        }
    }
}

/// The group's committed offsets of `partitions` of `topic`, for those that
/// have one. A partition with an error (e.g. an offset commit still pending
/// in a transaction) fails the whole read, which is retried: a missing
/// offset must never be mistaken for "none committed".
fn committed_of<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
) -> KafkaResult<BTreeMap<i32, i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, *p);
    }
    let got = retrying("read the group's committed offsets", || {
        let got = consumer.committed_offsets(tpl.clone(), REQUEST_TIMEOUT)?;
        for e in got.elements() {
            e.error()?;
        }
        Ok(got)
    })?;
    Ok(got
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// A consumer shared by the source thread (which polls it) and the
/// checkpoint coordinator (which commits its offsets).
pub struct KafkaConsumer {
    pub source: String,
    pub topic: String,
    consumer: BaseConsumer<Context>,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer").field("source", &self.source).field("topic", &self.topic).finish()
    }
}

impl KafkaConsumer {
    /// Creates the consumer; it joins the group only at [`KafkaConsumer::subscribe`].
    pub fn open(
        source: &str,
        spec: &KafkaSourceSpec,
        instance: &str,
        gate: Arc<Gate>,
        metrics: KafkaMetrics,
        owner: Option<Owner>,
    ) -> KafkaResult<Arc<Self>> {
        let mut config = client_config(&spec.brokers);
        config
            .set("group.id", &spec.group)
            // Static membership: a restarted process takes its partitions
            // back at once instead of waiting out the session of the dead one.
            .set("group.instance.id", format!("{}-{instance}", spec.group))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            // Where a partition without a committed offset starts when the
            // group decides (see `Start::unless_committed`).
            .set("auto.offset.reset", if spec.start == KafkaStart::Latest { "latest" } else { "earliest" })
            .set("queued.max.messages.kbytes", "16384");
        super::set_properties(&mut config, &spec.properties)?;
        let context = Context {
            observed: Observed::new(format!("source {source}"), metrics),
            source: source.to_string(),
            topic: spec.topic.clone(),
            group: spec.group.clone(),
            starts: Mutex::new(BTreeMap::new()),
            revoked: Mutex::new(Vec::new()),
            owned: Mutex::new(BTreeSet::new()),
            gate,
            owner,
            revoking: Mutex::new(BTreeSet::new()),
        };
        let consumer = super::create(&config, context)?;
        Ok(Arc::new(KafkaConsumer { source: source.to_string(), topic: spec.topic.clone(), consumer }))
    }

    /// The topic's partitions.
    pub fn partitions(&self) -> KafkaResult<Vec<i32>> {
        retrying("read the topic's partitions", || self.partitions_once())
    }

    fn partitions_once(&self) -> KafkaResult<Vec<i32>> {
        let md = self.consumer.fetch_metadata(Some(&self.topic), REQUEST_TIMEOUT)?;
        let topic = md.topics().iter().find(|t| t.name() == self.topic);
        match topic {
            Some(t) if t.error().is_none() => Ok(t.partitions().iter().map(|p| p.id()).collect()),
            Some(t) => Err(KafkaError::MetadataFetch(t.error().expect("checked").into())),
            None => Err(KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)),
        }
    }

    /// The group's committed offsets, for the partitions that have one.
    pub fn committed(&self, partitions: &[i32]) -> KafkaResult<BTreeMap<i32, i64>> {
        committed_of(&self.consumer, &self.topic, partitions)
    }

    /// Decides where each partition starts. Under exactly-once the group's
    /// committed offsets are the truth (they commit with the outputs; the
    /// restored checkpoint was chosen to match them, and in a group another
    /// process may have moved them since): such partitions are left to the
    /// group. Otherwise the restored checkpoint's offset comes first (its
    /// offsets are committed after it is written). Partitions with neither
    /// start at `start` unless the group has committed an offset for them by
    /// the time they arrive; a replay (`use_committed` false) starts every
    /// partition there.
    pub fn plan_starts(
        &self,
        restored: Option<&BTreeMap<i32, i64>>,
        use_committed: bool,
        exactly_once: bool,
        start: KafkaStart,
    ) -> KafkaResult<()> {
        let partitions = self.partitions()?;
        let committed = if use_committed { self.committed(&partitions)? } else { BTreeMap::new() };
        let by_time = match start {
            KafkaStart::Time(ms) => {
                let got = self.consumer.offsets_for_timestamp(ms, REQUEST_TIMEOUT)?;
                got.elements()
                    .iter()
                    .filter(|e| e.topic() == self.topic)
                    .map(|e| (e.partition(), e.offset()))
                    .collect::<BTreeMap<_, _>>()
            }
            _ => BTreeMap::new(),
        };
        let mut starts = BTreeMap::new();
        for p in partitions {
            let restored = restored.and_then(|r| r.get(&p));
            let pin = |offset| Start { offset, unless_committed: false };
            let start = match (restored, committed.get(&p)) {
                (_, Some(_)) if exactly_once => continue, // the group's committed offset
                (Some(o), _) => pin(Offset::Offset(*o)),
                (None, Some(_)) => continue,
                (None, None) => {
                    let offset = match start {
                        KafkaStart::Earliest => Offset::Beginning,
                        KafkaStart::Latest => Offset::End,
                        KafkaStart::Time(_) => by_time.get(&p).copied().unwrap_or(Offset::End),
                    };
                    Start { offset, unless_committed: use_committed }
                }
            };
            starts.insert(p, start);
        }
        tracing::info!(source = %self.source, topic = %self.topic, ?starts, ?committed, "start offsets (others: the group's committed offsets)");
        *self.consumer.context().starts.lock().expect("starts lock") = starts;
        Ok(())
    }

    /// Joins the group; partitions arrive with the first polls.
    pub fn subscribe(&self) -> KafkaResult<()> {
        self.consumer.subscribe(&[&self.topic])
    }

    /// For `send_offsets_to_transaction`.
    pub fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// Commits `offsets` outside a transaction (at-least-once pipelines).
    pub fn commit(&self, offsets: &BTreeMap<i32, i64>) -> KafkaResult<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        self.consumer.commit(&self.offsets_list(offsets)?, CommitMode::Sync)
    }

    /// The offsets to commit; under exactly-once each names its owner, or
    /// that it is being handed over ([`Owner`]).
    pub fn offsets_list(&self, offsets: &BTreeMap<i32, i64>) -> KafkaResult<TopicPartitionList> {
        let cx = self.consumer.context();
        let revoking = cx.revoking.lock().expect("revoking lock").clone();
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            let mut e = tpl.add_partition(&self.topic, *p);
            e.set_offset(Offset::Offset(*o))?;
            if let Some(owner) = &cx.owner {
                e.set_metadata(owner.metadata(revoking.contains(p)));
            }
        }
        Ok(tpl)
    }
}

/// Runs `f` until it succeeds, for up to [`REQUEST_TIMEOUT`]: right after
/// a broker starts, its group coordinator answers "not coordinator" or
/// "loading" for a while.
fn retrying<T>(what: &str, mut f: impl FnMut() -> KafkaResult<T>) -> KafkaResult<T> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline => {
                tracing::info!("kafka: cannot {what} yet ({e}); retrying");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Offsets of a Kafka position in a checkpoint, if it is this source's topic.
pub fn committed_positions<'a>(position: Option<&'a Position>, topic: &str) -> Option<&'a BTreeMap<i32, i64>> {
    match position {
        Some(Position::Partitioned { topic: t, offsets }) if t == topic => Some(offsets),
        _ => None,
    }
}

/// The source side: polls the consumer and fills batches.
pub struct KafkaSource {
    consumer: Arc<KafkaConsumer>,
    index: u16,
    plan: Arc<FieldPlan>,
    /// The next offset per partition, after the events handed out so far.
    positions: BTreeMap<i32, i64>,
    stop_at_end: bool,
    at_end: BTreeSet<i32>,
    bytes: u64,
    /// When the consumer lag was last measured.
    lag_measured: Option<Instant>,
}

impl KafkaSource {
    pub fn new(consumer: Arc<KafkaConsumer>, index: u16, spec: &weir_config::SourceSpec, stop_at_end: bool) -> Self {
        KafkaSource {
            consumer,
            index,
            plan: crate::field_plan(spec),
            // Only partitions this process has read from: offsets of others
            // (owned by another member of the group) are never committed here.
            positions: BTreeMap::new(),
            stop_at_end,
            at_end: BTreeSet::new(),
            bytes: 0,
            lag_measured: None,
        }
    }

    /// Every assigned partition has been read to its end.
    fn all_at_end(&self) -> bool {
        let Ok(assigned) = self.consumer.consumer.assignment() else { return false };
        let count = assigned.count();
        count > 0 && assigned.elements().iter().all(|e| self.at_end.contains(&e.partition()))
    }

    /// `weir_kafka_consumer_lag`: the end of each partition read from, less
    /// the next offset to read, once a second. The end is the high
    /// watermark librdkafka cached from its last fetch response: no request,
    /// so the source never waits for it. (librdkafka's statistics do not
    /// reach a consumer polled through rdkafka's event API, and a watermark
    /// query waits behind the partition's long-polling fetch.)
    fn measure_lag(&mut self) {
        // As soon as something was read, then once a second: a short run
        // (a replay) still reports its lag.
        if self.positions.is_empty() || self.lag_measured.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.lag_measured = Some(Instant::now());
        let c = &self.consumer;
        let Ok(topic) = std::ffi::CString::new(c.topic.as_str()) else { return };
        let gauge = &c.consumer.context().observed.metrics.consumer_lag;
        for (p, next) in &self.positions {
            let (mut low, mut high) = (-1i64, -1i64);
            // SAFETY: the client pointer is valid while `c.consumer` lives;
            // `topic` is a NUL-terminated string that outlives the call; the
            // out-pointers are to live locals. The call only reads
            // librdkafka's cached partition state.
            let err = unsafe {
                rdkafka::bindings::rd_kafka_get_watermark_offsets(
                    c.consumer.client().native_ptr(),
                    topic.as_ptr(),
                    *p,
                    &mut low,
                    &mut high,
                )
            };
            if err == rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 {
                gauge.with_label_values(&[c.source.as_str(), &p.to_string()]).set((high - next).max(0));
            }
        }
    }
}

/// Removes from `batch` the events whose partition is in `revoked`;
/// `partitions` holds each event's partition and is kept in step.
fn drop_partitions(batch: &mut Batch, partitions: &mut Vec<i32>, revoked: &[i32]) {
    if !partitions.iter().any(|p| revoked.contains(p)) {
        return;
    }
    let old = std::mem::take(batch);
    for ((payload, timestamp, origin), p) in old.iter().zip(partitions.iter()) {
        if !revoked.contains(p) {
            batch.push(payload, timestamp, origin);
        }
    }
    partitions.retain(|p| !revoked.contains(p));
}

impl Source for KafkaSource {
    fn fill(&mut self, batch: &mut Batch, limit: BatchLimit, linger: Duration) -> std::io::Result<Fill> {
        self.measure_lag();
        let ingest_time = weir_core::now_ms();
        let deadline = Instant::now() + linger;
        debug_assert!(batch.is_empty(), "a Kafka source fills empty batches");
        // The partition of each event of the batch, for a revocation.
        let mut partitions = Vec::new();
        let mut added = 0;
        while !limit.full(batch) {
            let wait = if added == 0 {
                Duration::from_millis(100)
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            let polled = self.consumer.consumer.poll(wait);
            let revoked: Vec<i32> =
                self.consumer.consumer.context().revoked.lock().expect("revoked lock").drain(..).collect();
            if !revoked.is_empty() {
                for p in &revoked {
                    self.positions.remove(p);
                    self.at_end.remove(p);
                }
                // Events of revoked partitions read into this batch were not
                // in the checkpoint that committed their offsets: their new
                // owner reads them again, so they are dropped here.
                drop_partitions(batch, &mut partitions, &revoked);
                added = batch.len();
            }
            let observed = &self.consumer.consumer.context().observed;
            if matches!(polled, Some(Ok(_)) | Some(Err(KafkaError::PartitionEOF(_)))) {
                observed.reached();
            } else if polled.is_none() {
                let (consumer, topic) = (&self.consumer.consumer, &self.consumer.topic);
                observed.probe(|timeout| consumer.fetch_metadata(Some(topic), timeout).map(drop));
            }
            match polled {
                None => break,
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    self.at_end.insert(p);
                    if self.stop_at_end && self.all_at_end() {
                        return Ok(Fill::Done);
                    }
                }
                // librdkafka retries on its own; the error is in the logs and metrics.
                Some(Err(e)) => tracing::warn!(source = %self.consumer.source, "kafka: {e}"),
                Some(Ok(m))
                    if !self.consumer.consumer.context().owned.lock().expect("owned lock").contains(&m.partition()) =>
                {
                    tracing::debug!(source = %self.consumer.source, partition = m.partition(), offset = m.offset(),
                        "a message of a partition no longer assigned here is left to its new owner");
                }
                Some(Ok(m)) => {
                    let payload = m.payload().unwrap_or_default();
                    self.bytes += payload.len() as u64;
                    batch.payloads.extend_from_slice(payload);
                    let origin = Origin {
                        source: self.index,
                        line: 0,
                        offset: m.offset() as u64,
                        partition: m.partition() as u32,
                    };
                    batch.commit(ingest_time, origin);
                    partitions.push(m.partition());
                    self.positions.insert(m.partition(), m.offset() + 1);
                    self.at_end.remove(&m.partition());
                    added += 1;
                }
            }
            if added > 0 && Instant::now() >= deadline {
                break;
            }
        }
        Ok(Fill::More)
    }

    fn field_plan(&self) -> Option<Arc<FieldPlan>> {
        Some(self.plan.clone())
    }

    fn bytes_read(&self) -> u64 {
        self.bytes
    }

    fn position(&self) -> Option<Position> {
        Some(Position::Partitioned { topic: self.consumer.topic.clone(), offsets: self.positions.clone() })
    }

    fn partitions(&self) -> Option<Vec<u32>> {
        let owned = self.consumer.consumer.context().owned.lock().expect("owned lock");
        Some(owned.iter().map(|p| *p as u32).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_drops_only_the_revoked_partitions_events() {
        let mut batch = Batch::default();
        let mut partitions = Vec::new();
        for (i, p) in [0, 1, 2, 1, 0].into_iter().enumerate() {
            batch.push(
                format!("{{\"i\":{i}}}").as_bytes(),
                i as i64,
                Origin { source: 0, line: 0, offset: i as u64, partition: 0 },
            );
            partitions.push(p);
        }
        drop_partitions(&mut batch, &mut partitions, &[1]);
        let kept: Vec<_> = batch.iter().map(|(payload, t, o)| (payload.to_vec(), t, o.offset)).collect();
        assert_eq!(
            kept,
            vec![(b"{\"i\":0}".to_vec(), 0, 0), (b"{\"i\":2}".to_vec(), 2, 2), (b"{\"i\":4}".to_vec(), 4, 4)]
        );
        assert_eq!(partitions, vec![0, 2, 0]);
    }
}
