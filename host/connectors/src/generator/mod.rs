//! Synthetic events for demos and benchmarks: vital signs, medication orders
//! or card transactions, at a set rate or as fast as possible, finite or
//! endless, repeatable from a seed. Events are written straight into the
//! batch buffer; nothing is allocated per event.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir_config::{ConfigError, PipelineSpec};
use weir_core::event::{Batch, Origin};
use weir_core::position::Position;
use weir_core::source::{BatchLimit, Fill, Opened, Source};

/// `[[sources]] kind = "generator"`: synthetic events for demos and benchmarks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorOptions {
    /// What to generate: "vitals" (PatientId, EventTime, HeartRate,
    /// Temperature, SpO2, RespiratoryRate, SystolicBP), "orders" (order_id,
    /// patient_id, ordered_at, drug, active_medications) or "transactions"
    /// (transaction_id, card_id, EventTime, amount, merchant_category, country).
    pub generate: GeneratorKind,
    /// Events per second; 0 (the default) is as fast as possible.
    pub rate: Option<u64>,
    /// Number of events; absent means endless.
    pub count: Option<u64>,
    /// Number of distinct keys (patients, cards); default 100.
    pub keys: Option<u64>,
    /// Random seed, so that runs repeat; default 1.
    pub seed: Option<u64>,
    /// Event time of the first event, RFC 3339 (default: now).
    pub start: Option<String>,
    /// Event time between events, e.g. "50ms" (default: 1/rate, or 1ms
    /// when unthrottled).
    #[serde(default, with = "humantime_serde::option")]
    pub interval: Option<Duration>,
    /// Each event time moves by a random amount up to ± this, so events
    /// arrive out of order (default "0s").
    #[serde(default, with = "humantime_serde::option")]
    pub jitter: Option<Duration>,
}

/// What a generator source makes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorKind {
    /// Patient vital signs (PatientId, EventTime, HeartRate, Temperature, ...).
    Vitals,
    /// Medication orders (order_id, patient_id, drug, active_medications).
    Orders,
    /// Card transactions (card_id, amount, merchant_category, ...).
    Transactions,
}

/// A generator's options, checked.
#[derive(Debug, Clone, Copy)]
pub struct GeneratorSpec {
    pub generate: GeneratorKind,
    /// Event time of the first event, epoch ms; `None`: the time of start.
    pub start_ms: Option<i64>,
    /// Event time between events, microseconds; `None`: from the rate.
    pub interval_us: Option<u64>,
    /// Largest random shift of an event time, milliseconds.
    pub jitter_ms: u64,
    /// Events per second, 0 = unthrottled.
    pub rate: u64,
    pub count: Option<u64>,
    pub keys: u64,
    pub seed: u64,
}

impl GeneratorSpec {
    /// Reads and checks a generator source's options.
    pub fn of(s: &weir_config::SourceSpec) -> Result<GeneratorSpec, ConfigError> {
        crate::no_schema(s)?;
        let o: GeneratorOptions = s.options.deserialize()?;
        let keys = o.keys.unwrap_or(100);
        if keys == 0 {
            return Err(s.options.error("keys", "must be at least 1"));
        }
        let start_ms = crate::pace::start_ms(s, o.start.as_deref())?;
        if o.interval.is_some_and(|i| i.is_zero()) {
            return Err(s.options.error("interval", "must be more than zero"));
        }
        Ok(GeneratorSpec {
            generate: o.generate,
            start_ms,
            interval_us: o.interval.map(|i| i.as_micros() as u64),
            jitter_ms: o.jitter.map_or(0, |j| j.as_millis() as u64),
            rate: o.rate.unwrap_or(0),
            count: o.count,
            keys,
            seed: o.seed.unwrap_or(1),
        })
    }
}

/// The connector.
pub struct Generators;

impl crate::Connector for Generators {
    fn name(&self) -> &'static str {
        "generator"
    }

    fn source_kinds(&self) -> &'static [&'static str] {
        &["generator"]
    }

    fn check(&self, spec: &PipelineSpec) -> Result<(), ConfigError> {
        for (_, s) in crate::sources_of(spec, self.source_kinds()) {
            GeneratorSpec::of(s)?;
        }
        Ok(())
    }

    fn session(&self, _: &crate::SessionContext<'_>) -> anyhow::Result<Box<dyn crate::Session>> {
        Ok(Box::new(Generators))
    }
}

impl crate::Session for Generators {
    fn open_source(&mut self, cx: &crate::SourceContext<'_>) -> anyhow::Result<Opened> {
        let mut g = Generator::new(GeneratorSpec::of(cx.spec)?, cx.index);
        if let Some(p) = cx.restored {
            g.resume(p)?;
            tracing::info!(source = %cx.spec.name, position = ?p, "source resumes from the checkpoint");
        }
        Ok((Box::new(g), None))
    }
}

const DRUGS: &[&str] = &[
    "warfarin",
    "aspirin",
    "simvastatin",
    "clarithromycin",
    "metoprolol",
    "lisinopril",
    "spironolactone",
    "fluconazole",
    "omeprazole",
    "clopidogrel",
    "sertraline",
    "tramadol",
    "digoxin",
    "amiodarone",
    "ibuprofen",
    "lithium",
    "metformin",
    "atorvastatin",
];

const MERCHANTS: &[&str] =
    &["grocery", "fuel", "restaurant", "online-retail", "electronics", "travel", "jewelry", "gambling", "pharmacy"];

const COUNTRIES: &[&str] = &["NL", "DE", "FR", "GB", "US", "ES", "IT", "BR", "NG", "RU"];

pub struct Generator {
    spec: GeneratorSpec,
    index: u16,
    rng: SmallRng,
    produced: u64,
    /// Events produced before this run (a resumed generator): the rate
    /// counts from here.
    resumed_at: u64,
    started: Instant,
    /// Bytes of the events generated (`weir_source_bytes_total`).
    bytes: u64,
    start_ms: i64,
}

impl Generator {
    pub fn new(spec: GeneratorSpec, index: u16) -> Self {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let start_ms = spec.start_ms.unwrap_or(now_ms);
        Generator {
            spec,
            index,
            rng: SmallRng::seed_from_u64(spec.seed),
            produced: 0,
            resumed_at: 0,
            started: Instant::now(),
            bytes: 0,
            start_ms,
        }
    }

    /// Events due by now under the rate limit (all remaining when unthrottled).
    fn due(&self) -> u64 {
        crate::pace::Pace { rate: self.spec.rate, started: self.started, resumed_at: self.resumed_at }
            .due(self.produced)
    }

    /// Event time of event `i`: spaced by `interval` (else by the rate, or
    /// 1 ms apart when unthrottled), shifted by up to ± `jitter`.
    fn event_time(&mut self, i: u64) -> i64 {
        let step_us = match self.spec.interval_us {
            Some(us) => us,
            None if self.spec.rate == 0 => 1000,
            None => 1_000_000 / self.spec.rate.max(1),
        };
        let t = self.start_ms + (i * step_us / 1000) as i64;
        match self.spec.jitter_ms as i64 {
            0 => t,
            j => t + self.rng.random_range(-j..=j),
        }
    }

    fn write_event(&mut self, out: &mut Vec<u8>, ts: i64) -> std::io::Result<()> {
        let time = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ts.max(0) as u64));
        let key = self.rng.random_range(0..self.spec.keys);
        let rng = &mut self.rng;
        match self.spec.generate {
            GeneratorKind::Vitals => {
                let sick = key % 10 == 0;
                let hr: u32 = if sick { rng.random_range(100..135) } else { rng.random_range(58..95) };
                let temp: f64 = if sick { rng.random_range(37.8..39.6) } else { rng.random_range(36.2..37.4) };
                write!(
                    out,
                    r#"{{"PatientId":"P{key:04}","EventTime":"{time}","HeartRate":{hr},"Temperature":{temp:.1},"SpO2":{},"RespiratoryRate":{},"SystolicBP":{}}}"#,
                    rng.random_range(if sick { 88..95 } else { 95..100 }),
                    rng.random_range(if sick { 21..30 } else { 12..20 }),
                    rng.random_range(if sick { 88..105 } else { 105..140 }),
                )
            }
            GeneratorKind::Orders => {
                write!(
                    out,
                    r#"{{"order_id":"ORD-{:08}","patient_id":"P{key:04}","ordered_at":"{time}","drug":"{}","active_medications":["#,
                    self.produced,
                    DRUGS[rng.random_range(0..DRUGS.len())]
                )?;
                for i in 0..rng.random_range(0..4) {
                    let sep = if i == 0 { "" } else { "," };
                    write!(out, r#"{sep}"{}""#, DRUGS[rng.random_range(0..DRUGS.len())])?;
                }
                out.write_all(b"]}")
            }
            GeneratorKind::Transactions => {
                let amount: f64 = (rng.random_range(0.0f64..1.0).powi(3) * 2500.0) + 1.0;
                write!(
                    out,
                    r#"{{"transaction_id":"TX-{:010}","card_id":"C{key:05}","EventTime":"{time}","amount":{amount:.2},"merchant_category":"{}","country":"{}"}}"#,
                    self.produced,
                    MERCHANTS[rng.random_range(0..MERCHANTS.len())],
                    COUNTRIES[rng.random_range(0..COUNTRIES.len())],
                )
            }
        }
    }
}

impl Source for Generator {
    fn bytes_read(&self) -> u64 {
        self.bytes
    }

    fn position(&self) -> Option<Position> {
        Some(Position::Sequence { next: self.produced, start_ms: self.start_ms })
    }

    /// Generates (and drops) the events before `next` again: the random
    /// sequence, and so every later event, is then the same as in a run
    /// that never stopped.
    fn resume(&mut self, position: &Position) -> std::io::Result<()> {
        let Position::Sequence { next, start_ms } = *position else {
            return Err(std::io::Error::other("the checkpoint's position is not a generator's"));
        };
        // Without a `start`, the first run's start time, not this run's.
        self.start_ms = start_ms;
        let mut scratch = Vec::new();
        while self.produced < next {
            scratch.clear();
            let ts = self.event_time(self.produced);
            self.write_event(&mut scratch, ts)?;
            self.produced += 1;
        }
        self.resumed_at = next;
        self.started = Instant::now();
        Ok(())
    }

    fn fill(&mut self, batch: &mut Batch, limit: BatchLimit, linger: Duration) -> std::io::Result<Fill> {
        let deadline = Instant::now() + linger;
        loop {
            let left = self.spec.count.map_or(u64::MAX, |c| c.saturating_sub(self.produced));
            if left == 0 {
                return Ok(Fill::Done);
            }
            let n = self.due().min(left).min(limit.events.saturating_sub(batch.len()) as u64);
            let before = batch.payloads.len();
            for _ in 0..n {
                let ts = self.event_time(self.produced);
                self.write_event(&mut batch.payloads, ts)?;
                let origin = Origin { source: self.index, line: 0, offset: self.produced, partition: 0 };
                batch.commit(ts, origin);
                self.produced += 1;
            }
            self.bytes += (batch.payloads.len() - before) as u64;
            if limit.full(batch) || Instant::now() >= deadline {
                return Ok(Fill::More);
            }
            if n == 0 {
                // Sleep until the next event is due, but not past the linger deadline.
                let next = Duration::from_secs_f64(
                    (self.produced - self.resumed_at + 1) as f64 / self.spec.rate.max(1) as f64,
                );
                let wait = next.saturating_sub(self.started.elapsed()).min(deadline - Instant::now());
                std::thread::sleep(wait.max(Duration::from_micros(100)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(generate: GeneratorKind, seed: u64, count: u64) -> Batch {
        let spec = GeneratorSpec {
            generate,
            start_ms: None,
            interval_us: None,
            jitter_ms: 0,
            rate: 0,
            count: Some(count),
            keys: 10,
            seed,
        };
        let mut g = Generator::new(spec, 0);
        let mut batch = Batch::default();
        let fill = g.fill(&mut batch, BatchLimit::events(1000), Duration::from_millis(5)).unwrap();
        assert_eq!(fill, Fill::Done, "a finite generator says when it is done");
        batch
    }

    #[test]
    fn options_get_defaults_and_refuse_keys_of_other_kinds() {
        let head =
            "[pipeline]\nname = \"p\"\n\n[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"vitals\"\n";
        let load =
            |extra: &str| weir_config::load_str(std::path::Path::new("p.toml"), &format!("{head}{extra}")).unwrap();
        let g = GeneratorSpec::of(&load("").sources[0]).unwrap();
        assert_eq!((g.rate, g.count, g.keys, g.seed), (0, None, 100, 1));
        let e = GeneratorSpec::of(&load("path = \"x\"\n").sources[0]).unwrap_err().to_string();
        assert!(e.contains("unknown field `path`"), "{e}");
        let e = GeneratorSpec::of(&load("keys = 0\n").sources[0]).unwrap_err().to_string();
        assert_eq!(e, "p.toml:6: sources[0].keys: must be at least 1");
    }

    #[test]
    fn every_kind_makes_valid_json_objects_with_the_documented_fields() {
        for (kind, fields) in [
            (GeneratorKind::Vitals, &["PatientId", "EventTime", "HeartRate", "Temperature", "SpO2"][..]),
            (GeneratorKind::Orders, &["order_id", "patient_id", "drug", "active_medications"]),
            (GeneratorKind::Transactions, &["card_id", "amount", "merchant_category", "EventTime"]),
        ] {
            let batch = generate(kind, 7, 50);
            assert_eq!(batch.len(), 50);
            for (payload, _, _) in batch.iter() {
                let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
                for f in fields {
                    assert!(v.get(f).is_some(), "{kind:?} lacks {f}: {v}");
                }
            }
        }
    }

    #[test]
    fn a_resumed_generator_continues_the_same_sequence() {
        let spec = GeneratorSpec {
            generate: GeneratorKind::Transactions,
            start_ms: Some(0),
            interval_us: Some(1000),
            jitter_ms: 50,
            rate: 0,
            count: Some(300),
            keys: 10,
            seed: 5,
        };
        let mut whole = Batch::default();
        Generator::new(spec, 0).fill(&mut whole, BatchLimit::events(1000), Duration::from_millis(5)).unwrap();
        let mut first = Generator::new(spec, 0);
        let mut head = Batch::default();
        first.fill(&mut head, BatchLimit::events(120), Duration::from_millis(5)).unwrap();
        let at = first.position().unwrap();
        assert_eq!(at, Position::Sequence { next: 120, start_ms: 0 });
        let mut second = Generator::new(spec, 0);
        second.resume(&at).unwrap();
        let mut tail = Batch::default();
        second.fill(&mut tail, BatchLimit::events(1000), Duration::from_millis(5)).unwrap();
        let joined: Vec<_> = head.iter().chain(tail.iter()).map(|(p, t, o)| (p.to_vec(), t, o.offset)).collect();
        let straight: Vec<_> = whole.iter().map(|(p, t, o)| (p.to_vec(), t, o.offset)).collect();
        assert_eq!(joined, straight);
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let strip_times = |b: &Batch| -> Vec<serde_json::Value> {
            b.iter()
                .map(|(p, _, _)| {
                    let mut v: serde_json::Value = serde_json::from_slice(p).unwrap();
                    v.as_object_mut().unwrap().remove("EventTime");
                    v
                })
                .collect()
        };
        let a = generate(GeneratorKind::Vitals, 3, 20);
        let b = generate(GeneratorKind::Vitals, 3, 20);
        let c = generate(GeneratorKind::Vitals, 4, 20);
        assert_eq!(strip_times(&a), strip_times(&b));
        assert_ne!(strip_times(&a), strip_times(&c));
        assert!(a.timestamps.windows(2).all(|w| w[0] <= w[1]), "event times never go back");
    }
}
