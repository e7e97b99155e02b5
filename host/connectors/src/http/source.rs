//! HTTP ingestion: `POST /api/v1/ingest/<source>` with a JSON object, a
//! JSON array of objects, or NDJSON.
//!
//! The request handler ([`HttpIngest::ingest`]) splits the body into events
//! and decodes each (JSON object, timestamp and key fields, the source's
//! schema) so that the response can say what was accepted. Refused events
//! go to the dead-letter output at once. Accepted events enter a bounded
//! queue that the source thread ([`HttpSource`]) drains into batches; a
//! request whose events do not all fit is refused whole (429) before
//! anything of it is recorded, so a client can resend it, and an event that
//! was accepted is never dropped: when the pipeline stops, the queue is
//! closed to new requests and drained first.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use prometheus::IntCounter;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_config::SourceSpec;
use weir_core::dead_letter::{DeadLetter, DeadLetters};
use weir_core::event::{Batch, FieldPlan, Origin, decode};
use weir_core::ingest::{EventError, IngestEndpoint, IngestOutcome as Ingested};
use weir_core::source::{BatchLimit, Fill, Source};

/// How much an HTTP source holds for the pipeline (`queue`, `queue_bytes`),
/// and its largest request body.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub events: usize,
    pub bytes: usize,
    pub max_body: usize,
}

/// Most per-event errors listed in one response.
const MAX_LISTED_ERRORS: usize = 20;

/// The request side of an HTTP source, shared with the server.
pub struct HttpIngest {
    pub name: String,
    index: u16,
    plan: FieldPlan,
    /// Largest body this source takes.
    pub max_body: usize,
    limits: QueueLimits,
    /// Events and payload bytes accepted, not yet taken by the pipeline.
    queued: Arc<AtomicUsize>,
    queued_bytes: Arc<AtomicUsize>,
    tx: Mutex<Option<Sender<Batch>>>,
    seq: AtomicU64,
    dead: Arc<DeadLetters>,
    events: IntCounter,
    bytes: IntCounter,
}

/// Splits a request body into events: a JSON array's elements, one JSON
/// value, or NDJSON lines (blank lines skipped). Each event is returned
/// without line breaks. `Err` is an array that does not parse.
pub fn split_body(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else { return Ok(Vec::new()) };
    let one_line = |raw: &[u8]| -> Vec<u8> {
        // Raw line breaks can only be whitespace between tokens in valid
        // JSON; dropping them keeps every event on one line.
        raw.iter().copied().filter(|&b| b != b'\n' && b != b'\r').collect()
    };
    if body[start] == b'[' {
        let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
            format!("the body is not a JSON array: {}", weir_core::event::decode::without_values(&e.to_string()))
        })?;
        return Ok(items.iter().map(|r| one_line(r.get().as_bytes())).collect());
    }
    if let Ok(one) = serde_json::from_slice::<&RawValue>(body) {
        return Ok(vec![one_line(one.get().as_bytes())]);
    }
    Ok(body
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.trim_ascii().is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

impl IngestEndpoint for HttpIngest {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_body(&self) -> usize {
        self.max_body
    }

    fn ingest(&self, body: &[u8]) -> Ingested {
        HttpIngest::ingest(self, body)
    }
}

impl HttpIngest {
    /// Takes one request body.
    pub fn ingest(&self, body: &[u8]) -> Ingested {
        self.bytes.inc_by(body.len() as u64);
        let events = match split_body(body) {
            Ok(e) => e,
            Err(message) => {
                self.events.inc();
                let origin = Origin {
                    source: self.index,
                    line: 0,
                    offset: self.seq.fetch_add(1, Ordering::Relaxed),
                    partition: 0,
                };
                let record =
                    DeadLetter { reason: "invalid-json", detail: &message, step: None, origin, original: body };
                if let Err(e) = self.dead.send_all(std::iter::once(record)) {
                    tracing::error!(source = %self.name, error = %e, "cannot write a dead letter");
                }
                return Ingested::Malformed(message);
            }
        };
        let now = weir_core::now_ms();
        let mut valid = Batch::with_capacity(events.len(), body.len());
        let mut refused: Vec<(usize, &'static str, String)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match decode(e, &self.plan) {
                Ok(d) => valid.push(
                    e,
                    d.timestamp.unwrap_or(now),
                    Origin { source: self.index, line: i as u64 + 1, offset: 0, partition: 0 },
                ),
                Err(err) => refused.push((i, err.reason(), err.to_string())),
            }
        }
        let (n, bytes) = (valid.len(), valid.payloads.len());
        if n > self.limits.events || bytes > self.limits.bytes {
            // More than the whole queue holds: waiting would never help.
            return Ingested::TooLarge(format!(
                "the request's valid events ({n}, {bytes} bytes) are more than source `{}` can hold at once \
                 ({} events, {} bytes: queue, queue_bytes); split the request",
                self.name, self.limits.events, self.limits.bytes
            ));
        }
        if n > 0 && !self.reserve(n, bytes) {
            return Ingested::Full { retry_after_s: 1 };
        }
        let first = self.seq.fetch_add(events.len() as u64, Ordering::Relaxed);
        for o in &mut valid.origins {
            o.offset = first + o.line - 1;
        }
        if n > 0 {
            let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
            let sent = tx.as_ref().is_some_and(|tx| tx.send(valid).is_ok());
            if !sent {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                return Ingested::Closed;
            }
        }
        self.events.inc_by(refused.len() as u64);
        let records = refused.iter().map(|(i, reason, detail)| DeadLetter {
            reason,
            detail,
            step: None,
            origin: Origin { source: self.index, line: *i as u64 + 1, offset: first + *i as u64, partition: 0 },
            original: &events[*i],
        });
        if let Err(e) = self.dead.send_all(records) {
            tracing::error!(source = %self.name, error = %e, "cannot write dead letters");
        }
        let rejected = refused.len();
        let errors = refused
            .into_iter()
            .take(MAX_LISTED_ERRORS)
            .map(|(index, reason, detail)| EventError { index, reason, detail })
            .collect();
        Ingested::Done { accepted: n, rejected, errors }
    }

    /// Reserves room for `n` events of `bytes` in the queue, all or nothing.
    fn reserve(&self, n: usize, bytes: usize) -> bool {
        let room = |queued: &AtomicUsize, add: usize, cap: usize| {
            queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q + add <= cap).then_some(q + add)).is_ok()
        };
        if !room(&self.queued, n, self.limits.events) {
            return false;
        }
        if !room(&self.queued_bytes, bytes, self.limits.bytes) {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Refuses further requests (the pipeline is stopping).
    fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The pipeline side: batches of accepted events.
pub struct HttpSource {
    ingest: Arc<HttpIngest>,
    rx: Receiver<Batch>,
    /// Events of a request not yet moved into a batch, from `next`.
    pending: Option<(Batch, usize)>,
    plan: Arc<FieldPlan>,
}

impl HttpSource {
    /// The source and its request side. `index` is its place in the file.
    pub fn new(
        spec: &SourceSpec,
        index: u16,
        limits: QueueLimits,
        dead: Arc<DeadLetters>,
        metrics: &weir_core::metrics::SourceMetrics,
    ) -> (HttpSource, Arc<HttpIngest>) {
        let plan = FieldPlan {
            timestamp_field: spec.timestamp_field.clone(),
            key_field: spec.key_field.clone(),
            route_field: None,
            columns: None,
            schema: spec.schema.clone(),
            time_range: spec.time_range,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let ingest = Arc::new(HttpIngest {
            name: spec.name.clone(),
            index,
            // The pipeline decodes again for its own plan (columns for a
            // query); the schema was checked here.
            plan: plan.clone(),
            max_body: limits.max_body,
            limits,
            queued: Arc::new(AtomicUsize::new(0)),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            tx: Mutex::new(Some(tx)),
            seq: AtomicU64::new(0),
            dead,
            events: metrics.events.clone(),
            bytes: metrics.bytes.clone(),
        });
        let pipeline_plan = Arc::new(FieldPlan { schema: None, ..plan });
        (HttpSource { ingest: ingest.clone(), rx, pending: None, plan: pipeline_plan }, ingest)
    }

    /// Moves events of the pending request into `batch`, until `limit`.
    fn take_pending(&mut self, batch: &mut Batch, limit: BatchLimit) {
        let Some((from, next)) = &mut self.pending else { return };
        let (mut moved, mut bytes) = (0, 0);
        while *next < from.len() && !limit.full(batch) {
            batch.push(from.payload(*next), from.timestamps[*next], from.origins[*next]);
            bytes += from.payload(*next).len();
            *next += 1;
            moved += 1;
        }
        if *next == from.len() {
            self.pending = None;
        }
        self.ingest.queued.fetch_sub(moved, Ordering::AcqRel);
        self.ingest.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl Source for HttpSource {
    /// A request is already a batch: events waiting in the queue are taken
    /// at once, and only an empty batch waits (up to `linger`) for the next
    /// request. Under load the queue fills while the pipeline works, so
    /// batches grow by themselves; at low rates no event waits for others.
    fn fill(&mut self, batch: &mut Batch, limit: BatchLimit, linger: Duration) -> std::io::Result<Fill> {
        let deadline = Instant::now() + linger;
        loop {
            self.take_pending(batch, limit);
            if limit.full(batch) {
                return Ok(Fill::More);
            }
            let next = if batch.is_empty() {
                self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            } else {
                self.rx.try_recv().map_err(|e| match e {
                    crossbeam_channel::TryRecvError::Empty => RecvTimeoutError::Timeout,
                    crossbeam_channel::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            };
            match next {
                Ok(request) => self.pending = Some((request, 0)),
                Err(RecvTimeoutError::Timeout) => return Ok(Fill::More),
                // Closed and drained: every accepted event is in a batch.
                Err(RecvTimeoutError::Disconnected) => return Ok(Fill::Done),
            }
        }
    }

    fn field_plan(&self) -> Option<Arc<FieldPlan>> {
        Some(self.plan.clone())
    }

    fn drains_after_stop(&mut self) -> bool {
        self.ingest.close();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP source with `queue` and `queue_bytes`, nothing draining it.
    fn source(options: &str) -> (HttpSource, Arc<HttpIngest>) {
        let text = format!(
            "[pipeline]\nname = \"p\"\n[[sources]]\nname = \"h\"\nkind = \"http\"\n{options}\n[[sinks]]\nname = \"o\"\nkind = \"discard\"\n"
        );
        let spec = weir_config::load_str(std::path::Path::new("p.toml"), &text).unwrap();
        let metrics = weir_core::metrics::Metrics::new("p");
        let dead = Arc::new(DeadLetters::new("/dev/null".into(), vec!["h".into()], metrics.clone()));
        let limits = super::super::HttpOptions::of(&spec.sources[0]).unwrap();
        HttpSource::new(&spec.sources[0], 0, limits, dead, &metrics.source("h"))
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_and_a_request_larger_than_it_gets_413() {
        let (mut source, ingest) = source("queue = 5\nqueue_bytes = \"100B\"\nmax_body = \"100B\"");
        let event = br#"{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#; // 40 bytes
        assert!(matches!(ingest.ingest(event), Ingested::Done { accepted: 1, .. }));
        assert!(matches!(ingest.ingest(event), Ingested::Done { accepted: 1, .. }));
        // 80 of 100 bytes queued: the next 40 do not fit, though 3 more events would.
        assert!(matches!(ingest.ingest(event), Ingested::Full { .. }));
        // The pipeline takes what is queued: room again.
        let mut batch = Batch::default();
        source.fill(&mut batch, BatchLimit::events(100), Duration::from_millis(10)).unwrap();
        assert_eq!(batch.len(), 2);
        assert!(matches!(ingest.ingest(event), Ingested::Done { accepted: 1, .. }));
        // More events than the whole queue holds: 413, not 429 forever.
        let six = "{}\n".repeat(6);
        assert!(matches!(ingest.ingest(six.as_bytes()), Ingested::TooLarge(m) if m.contains("queue")));
    }

    #[test]
    fn max_body_must_fit_the_queue() {
        let text = "[pipeline]\nname = \"p\"\n[[sources]]\nname = \"h\"\nkind = \"http\"\nqueue_bytes = \"1KiB\"\n[[sinks]]\nname = \"o\"\nkind = \"discard\"\n";
        let spec = weir_config::load_str(std::path::Path::new("p.toml"), text).unwrap();
        let e = super::super::HttpOptions::of(&spec.sources[0]).unwrap_err();
        assert!(e.to_string().contains("max_body"), "{e}");
    }

    #[test]
    fn bodies_split_into_one_line_events() {
        let split = |b: &str| {
            split_body(b.as_bytes()).map(|v| v.into_iter().map(|e| String::from_utf8(e).unwrap()).collect::<Vec<_>>())
        };
        assert_eq!(split(r#"{"a":1}"#).unwrap(), [r#"{"a":1}"#]);
        assert_eq!(split("{\n  \"a\": 1\n}\n").unwrap(), ["{  \"a\": 1}"]);
        assert_eq!(split("[{\"a\":1},\n {\"b\":\n 2}]").unwrap(), [r#"{"a":1}"#, r#"{"b": 2}"#]);
        assert_eq!(split("{\"a\":1}\n\n{\"b\":2}\r\nnot json\n").unwrap(), [r#"{"a":1}"#, r#"{"b":2}"#, "not json"]);
        assert_eq!(split("  \n").unwrap(), Vec::<String>::new());
        assert!(split("[{\"a\":1},").unwrap_err().starts_with("the body is not a JSON array"));
    }

    use proptest::prelude::*;

    fn event() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\\n\"{}\\[\\] ]{0,12}".prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
        ];
        prop::collection::btree_map("[a-zA-Z_]{1,8}", leaf, 0..6)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    }

    proptest! {
        /// Any bytes: no panic, and every event returned is one line.
        /// Fuzzing the HTTP ingest path (issue 19): any body is answered —
        /// accepted, refused event by event, malformed, full or too large —
        /// never a panic, and what is accepted is queued.
        #[test]
        fn any_body_gets_an_answer(
            body in prop::collection::vec(any::<u8>(), 0..300),
            near in "[\\[\\]{}\",:\\n tEP0-9a-z.]{0,120}",
        ) {
            let (_source, ingest) = source("queue = 50\nqueue_bytes = \"1KiB\"\nmax_body = \"1KiB\"\ntimestamp_field = \"t\"");
            for b in [&body[..], near.as_bytes()] {
                match ingest.ingest(b) {
                    Ingested::Done { accepted, rejected, errors } => {
                        prop_assert!(errors.len() <= rejected.min(MAX_LISTED_ERRORS));
                        prop_assert!(accepted <= 50);
                    }
                    Ingested::Malformed(m) | Ingested::TooLarge(m) => prop_assert!(!m.is_empty()),
                    Ingested::Full { .. } | Ingested::Closed => {}
                }
            }
        }

        #[test]
        fn any_body_splits_without_panicking(body in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(events) = split_body(&body) {
                for e in events {
                    prop_assert!(!e.contains(&b'\n'));
                }
            }
        }

        /// Objects sent as an array, pretty or compact, or as NDJSON, come back
        /// as the same objects, in order.
        #[test]
        fn objects_round_trip_in_every_body_form(events in prop::collection::vec(event(), 1..8)) {
            let array = serde_json::Value::Array(events.clone());
            let bodies = [
                array.to_string(),
                serde_json::to_string_pretty(&array).unwrap(),
                events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"),
            ];
            for body in bodies {
                let got: Vec<serde_json::Value> = split_body(body.as_bytes())
                    .unwrap()
                    .iter()
                    .map(|e| serde_json::from_slice(e).unwrap())
                    .collect();
                prop_assert_eq!(&got, &events);
            }
        }
    }
}
