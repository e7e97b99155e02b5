//! The Nexmark benchmark's streams — people, auctions and bids of an
//! online auction — from the published `nexmark` generator (RisingWave's
//! port of the Beam/Flink generator), so that Weir's figures compare with
//! other engines' on the same events. Each event is one flat JSON object
//! with the generator's field names; its event time is `date_time`.

use serde::Deserialize;
use std::time::{Duration, Instant};
use weir_config::{ConfigError, PipelineSpec};
use weir_core::event::{Batch, Origin};
use weir_core::position::Position;
use weir_core::source::{BatchLimit, Fill, Opened, Source};

/// `[[sources]] kind = "nexmark"`: the Nexmark benchmark's event streams.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NexmarkOptions {
    /// Which events: "bid" (auction, bidder, price, channel, url,
    /// date_time, extra), "auction", "person", or "all" (every event with
    /// a "type" field naming which). Default "bid".
    pub events: Option<NexmarkKind>,
    /// Number of events; absent means endless.
    pub count: Option<u64>,
    /// Events per second; 0 (the default) is as fast as possible.
    pub rate: Option<u64>,
    /// Event time of the first event, RFC 3339 (default: now).
    pub start: Option<String>,
}

/// Which Nexmark stream a source gives.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NexmarkKind {
    Bid,
    Auction,
    Person,
    All,
}

#[derive(Debug, Clone, Copy)]
pub struct NexmarkSpec {
    pub events: NexmarkKind,
    pub count: Option<u64>,
    pub rate: u64,
    pub start_ms: Option<i64>,
}

impl NexmarkSpec {
    pub fn of(s: &weir_config::SourceSpec) -> Result<NexmarkSpec, ConfigError> {
        crate::no_schema(s)?;
        let o: NexmarkOptions = s.options.deserialize()?;
        let start_ms = crate::pace::start_ms(s, o.start.as_deref())?;
        Ok(NexmarkSpec {
            events: o.events.unwrap_or(NexmarkKind::Bid),
            count: o.count,
            rate: o.rate.unwrap_or(0),
            start_ms,
        })
    }
}

/// The connector.
pub struct Nexmark;

impl crate::Connector for Nexmark {
    fn name(&self) -> &'static str {
        "nexmark"
    }

    fn source_kinds(&self) -> &'static [&'static str] {
        &["nexmark"]
    }

    fn check(&self, spec: &PipelineSpec) -> Result<(), ConfigError> {
        for (_, s) in crate::sources_of(spec, self.source_kinds()) {
            NexmarkSpec::of(s)?;
        }
        Ok(())
    }

    fn session(&self, _: &crate::SessionContext<'_>) -> anyhow::Result<Box<dyn crate::Session>> {
        Ok(Box::new(Nexmark))
    }
}

impl crate::Session for Nexmark {
    fn open_source(&mut self, cx: &crate::SourceContext<'_>) -> anyhow::Result<Opened> {
        let mut source = NexmarkSource::new(NexmarkSpec::of(cx.spec)?, cx.index);
        if let Some(p) = cx.restored {
            source.resume(p)?;
            tracing::info!(source = %cx.spec.name, position = ?p, "source resumes from the checkpoint");
        }
        Ok((Box::new(source), None))
    }
}

pub struct NexmarkSource {
    spec: NexmarkSpec,
    index: u16,
    generator: nexmark::EventGenerator,
    /// Events handed out so far (of this source's kind).
    produced: u64,
    pace: crate::pace::Pace,
    start_ms: i64,
    bytes: u64,
}

fn generator(kind: NexmarkKind, start_ms: i64, offset: u64) -> nexmark::EventGenerator {
    let config = nexmark::config::NexmarkConfig { base_time: start_ms.max(0) as u64, ..Default::default() };
    let g = nexmark::EventGenerator::new(config).with_offset(offset);
    match kind {
        NexmarkKind::Bid => g.with_type_filter(nexmark::event::EventType::Bid),
        NexmarkKind::Auction => g.with_type_filter(nexmark::event::EventType::Auction),
        NexmarkKind::Person => g.with_type_filter(nexmark::event::EventType::Person),
        NexmarkKind::All => g,
    }
}

impl NexmarkSource {
    pub fn new(spec: NexmarkSpec, index: u16) -> Self {
        let start_ms = spec.start_ms.unwrap_or_else(weir_core::now_ms);
        NexmarkSource {
            generator: generator(spec.events, start_ms, 0),
            spec,
            index,
            produced: 0,
            pace: crate::pace::Pace::new(spec.rate),
            start_ms,
            bytes: 0,
        }
    }

    /// Appends the next event to `out`; returns its event time.
    fn write_next(&mut self, out: &mut Vec<u8>) -> std::io::Result<i64> {
        use nexmark::event::Event;
        let event = self.generator.next().expect("the Nexmark generator is endless");
        let t = event.timestamp() as i64;
        let tagged = self.spec.events == NexmarkKind::All;
        let (kind, at) = (
            match &event {
                Event::Bid(_) => "bid",
                Event::Auction(_) => "auction",
                Event::Person(_) => "person",
            },
            out.len(),
        );
        match &event {
            Event::Bid(e) => serde_json::to_writer(&mut *out, e),
            Event::Auction(e) => serde_json::to_writer(&mut *out, e),
            Event::Person(e) => serde_json::to_writer(&mut *out, e),
        }
        .map_err(std::io::Error::other)?;
        if tagged {
            // {"type":"bid", + the object without its opening brace.
            let tag = format!(r#"{{"type":"{kind}","#);
            out.splice(at..at + 1, tag.bytes());
        }
        Ok(t)
    }
}

impl Source for NexmarkSource {
    fn bytes_read(&self) -> u64 {
        self.bytes
    }

    fn position(&self) -> Option<Position> {
        Some(Position::Sequence { next: self.produced, start_ms: self.start_ms })
    }

    /// The generator computes any event from its number: it starts again
    /// at the next one, with the first run's start time.
    fn resume(&mut self, position: &Position) -> std::io::Result<()> {
        let Position::Sequence { next, start_ms } = *position else {
            return Err(std::io::Error::other("the checkpoint's position is not a Nexmark source's"));
        };
        self.start_ms = start_ms;
        self.generator = generator(self.spec.events, start_ms, next);
        self.produced = next;
        self.pace.resumed_at = next;
        Ok(())
    }

    fn fill(&mut self, batch: &mut Batch, limit: BatchLimit, linger: Duration) -> std::io::Result<Fill> {
        let deadline = Instant::now() + linger;
        loop {
            let left = self.spec.count.map_or(u64::MAX, |c| c.saturating_sub(self.produced));
            if left == 0 {
                return Ok(Fill::Done);
            }
            let n = self.pace.due(self.produced).min(left).min(limit.events.saturating_sub(batch.len()) as u64);
            let before = batch.payloads.len();
            for _ in 0..n {
                let t = self.write_next(&mut batch.payloads)?;
                batch.commit(t, Origin { source: self.index, line: 0, offset: self.produced, partition: 0 });
                self.produced += 1;
            }
            self.bytes += (batch.payloads.len() - before) as u64;
            if limit.full(batch) || Instant::now() >= deadline {
                return Ok(Fill::More);
            }
            if n == 0 {
                std::thread::sleep(Duration::from_micros(500).min(deadline - Instant::now()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(kind: NexmarkKind, count: u64) -> Vec<serde_json::Value> {
        let spec = NexmarkSpec { events: kind, count: Some(count), rate: 0, start_ms: Some(1_767_225_600_000) };
        let mut s = NexmarkSource::new(spec, 0);
        let mut batch = Batch::default();
        while s.fill(&mut batch, BatchLimit::events(1000), Duration::from_millis(5)).unwrap() == Fill::More {}
        batch
            .iter()
            .map(|(p, t, _)| {
                let v: serde_json::Value = serde_json::from_slice(p).unwrap();
                assert_eq!(v["date_time"].as_i64(), Some(t), "the event time is date_time");
                v
            })
            .collect()
    }

    #[test]
    fn bids_are_flat_objects_and_all_events_carry_their_type() {
        let bids = events(NexmarkKind::Bid, 50);
        assert_eq!(bids.len(), 50);
        for b in &bids {
            for f in ["auction", "bidder", "price", "channel", "url", "date_time", "extra"] {
                assert!(b.get(f).is_some(), "{f} in {b}");
            }
        }
        let all = events(NexmarkKind::All, 100);
        let types: std::collections::BTreeSet<_> =
            all.iter().map(|e| e["type"].as_str().unwrap().to_string()).collect();
        assert_eq!(types.into_iter().collect::<Vec<_>>(), ["auction", "bid", "person"]);
    }

    #[test]
    fn a_resumed_source_continues_with_the_same_events() {
        let spec = NexmarkSpec { events: NexmarkKind::Bid, count: Some(40), rate: 0, start_ms: Some(0) };
        let straight = events(NexmarkKind::Bid, 40);
        let mut s = NexmarkSource::new(spec, 0);
        s.resume(&Position::Sequence { next: 25, start_ms: 1_767_225_600_000 }).unwrap();
        let mut batch = Batch::default();
        while s.fill(&mut batch, BatchLimit::events(1000), Duration::from_millis(5)).unwrap() == Fill::More {}
        let rest: Vec<serde_json::Value> = batch.iter().map(|(p, ..)| serde_json::from_slice(p).unwrap()).collect();
        assert_eq!(rest, straight[25..]);
    }
}
