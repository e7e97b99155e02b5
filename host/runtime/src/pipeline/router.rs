//! The router: the one thread between the sources and the shards. It
//! decodes what a source left undecoded, dead-letters what is invalid,
//! computes the pipeline's watermark around each event, splits each batch
//! by key group among the shards, and cuts checkpoints: a barrier to every
//! shard, then it waits until the sink stage has taken the checkpoint —
//! built it (positions, states, sinks' and dead letters' lengths) and, with
//! a Kafka transaction or at the end, written and committed it — so that
//! nothing after the cut is routed, processed or dead-lettered before the
//! cut's lengths are taken. A file written in the background is not waited
//! for.

use super::checkpointer::Clock;
use super::worker::{Cut, ToShard};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::checkpoint::Gate;
use weir_core::dead_letter::DeadLetters;
use weir_core::event::{Batch, Cell, Columns, Ingested, Watermarks};
use weir_core::keys;

/// The pipeline's watermark. Event-time progress is tracked per partition
/// of each source (a Kafka partition; other sources are one partition): a
/// partition's is its largest event time less the source's
/// `max_out_of_orderness`, and the watermark is the smallest over the
/// partitions seen — so a partition that lags (catching up after a
/// restart) holds it back instead of having its events called late, as
/// Flink's Kafka source does. A partition silent for its source's
/// `idle_timeout` stops holding it back until it sends again. The
/// watermark never moves back.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Watermark {
    /// Largest event time per source, then per partition.
    maxes: Vec<BTreeMap<u32, i64>>,
    /// The watermark so far.
    current: i64,
    #[serde(skip)]
    settings: Vec<(i64, Option<Duration>)>,
    /// When each partition last sent an event.
    #[serde(skip)]
    seen: Vec<BTreeMap<u32, Instant>>,
    /// Partitions left out as idle.
    #[serde(skip)]
    idle: BTreeSet<(usize, u32)>,
}

impl Watermark {
    /// `sources`: each source's `max_out_of_orderness` (ms) and `idle_timeout`.
    pub fn new(sources: Vec<(i64, Option<Duration>)>) -> Self {
        let n = sources.len();
        Watermark {
            maxes: vec![BTreeMap::new(); n],
            current: i64::MIN,
            settings: sources,
            seen: vec![BTreeMap::new(); n],
            idle: BTreeSet::new(),
        }
    }

    /// The smallest over the partitions that are not idle, if any.
    fn computed(&self) -> Option<i64> {
        let mut min: Option<i64> = None;
        for (s, parts) in self.maxes.iter().enumerate() {
            let ooo = self.settings.get(s).map_or(0, |(o, _)| *o);
            for (p, max) in parts {
                if !self.idle.is_empty() && self.idle.contains(&(s, *p)) {
                    continue;
                }
                let w = max.saturating_sub(ooo);
                min = Some(min.map_or(w, |m| m.min(w)));
            }
        }
        min
    }

    /// Leaves out the partitions silent for longer than their source's timeout.
    fn mark_idle(&mut self, now: Instant) {
        for (s, parts) in self.seen.iter().enumerate() {
            let Some((_, Some(timeout))) = self.settings.get(s) else { continue };
            for (p, at) in parts {
                if now.duration_since(*at) > *timeout && self.idle.insert((s, *p)) {
                    tracing::info!(
                        source = s,
                        partition = p,
                        "a partition is idle: the watermark no longer waits for it"
                    );
                }
            }
        }
        if let Some(w) = self.computed() {
            self.current = self.current.max(w);
        }
    }

    /// The watermark before and after each event of `batch`.
    fn around(&mut self, batch: &Batch) -> Watermarks {
        let now = Instant::now();
        self.mark_idle(now);
        let mut w =
            Watermarks { before: Vec::with_capacity(batch.len()), after: Vec::with_capacity(batch.len()), end: 0 };
        let mut last: Option<(usize, u32)> = None;
        for i in 0..batch.len() {
            w.before.push(self.current);
            let (source, partition, t) =
                (batch.origins[i].source as usize, batch.origins[i].partition, batch.timestamps[i]);
            if let Some(parts) = self.maxes.get_mut(source) {
                let max = parts.entry(partition).or_insert(t);
                let grew = t > *max || last != Some((source, partition));
                *max = (*max).max(t);
                if last != Some((source, partition)) {
                    self.seen[source].insert(partition, now);
                    self.idle.remove(&(source, partition));
                    last = Some((source, partition));
                }
                // The smallest can only move when a partition's largest does.
                if grew {
                    let single = self.idle.is_empty() && self.maxes.len() == 1 && self.maxes[0].len() == 1;
                    if single {
                        // One partition in all (a file, say): no search.
                        let ooo = self.settings.first().map_or(0, |(o, _)| *o);
                        let mine = self.maxes[0].values().next().copied().unwrap_or(t);
                        self.current = self.current.max(mine.saturating_sub(ooo));
                    } else if let Some(computed) = self.computed() {
                        self.current = self.current.max(computed);
                    }
                }
            }
            w.after.push(self.current);
        }
        w.end = self.current;
        w
    }

    /// A source now reads `partitions`: those not known yet hold the
    /// watermark back from now on (until their first event, or until they
    /// are idle for the source's timeout).
    pub fn assign(&mut self, source: usize, partitions: &[u32]) {
        let now = Instant::now();
        let (Some(parts), Some(seen)) = (self.maxes.get_mut(source), self.seen.get_mut(source)) else { return };
        for p in partitions {
            if !parts.contains_key(p) {
                parts.insert(*p, i64::MIN);
                seen.insert(*p, now);
            }
        }
    }

    /// A source gave `partitions` away (a Kafka rebalance): they no longer
    /// hold the watermark back here; their new owner tracks them.
    pub fn release(&mut self, source: usize, partitions: &[i32]) {
        for p in partitions {
            let p = *p as u32;
            if let Some(parts) = self.maxes.get_mut(source) {
                parts.remove(&p);
            }
            if let Some(seen) = self.seen.get_mut(source) {
                seen.remove(&p);
            }
            self.idle.remove(&(source, p));
        }
    }

    pub fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("watermarks serialize")
    }

    /// Puts back the progress a snapshot recorded; every partition counts
    /// as just seen.
    pub fn restore(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let got: Watermark =
            postcard::from_bytes(bytes).map_err(|e| anyhow::anyhow!("the watermarks are unreadable: {e}"))?;
        let now = Instant::now();
        for (i, parts) in got.maxes.into_iter().enumerate().take(self.maxes.len()) {
            for p in parts.keys() {
                self.seen[i].insert(*p, now);
            }
            self.maxes[i] = parts;
        }
        self.current = got.current;
        Ok(())
    }
}

pub struct Router {
    pub shards: Vec<Sender<ToShard>>,
    /// The watermark each shard was last told.
    pub told: Vec<i64>,
    /// Per source: the field its events are routed by, for sources that
    /// hand over events already decoded (generator, HTTP) and so without
    /// their keys.
    pub key_fields: Vec<Option<String>>,
    pub max_parallelism: u16,
    /// `Some` when the first step closes windows on the pipeline's watermark.
    pub watermark: Option<Watermark>,
    pub clock: Option<Clock>,
    /// Source names by index.
    pub source_names: Vec<String>,
    /// Answers from the sink stage: a cut is taken.
    pub done: Receiver<()>,
    pub gate: Arc<Gate>,
}

impl Router {
    /// Routes until every source is done (or gone), then ends the input.
    /// `release`: whether the steps release what they hold at the end
    /// (false when stopped by a signal with checkpoints: their state is in
    /// the last checkpoint).
    pub fn run(
        mut self,
        rx: Receiver<Ingested>,
        dead: &DeadLetters,
        release: impl FnOnce() -> bool,
    ) -> std::io::Result<()> {
        loop {
            // A Kafka rebalance waits (in its source's thread, which sends
            // nothing meanwhile) until every batch it sent is checkpointed.
            if rx.is_empty()
                && let Some(revoked) = self.gate.pending()
            {
                if self.clock.is_some() {
                    // The partitions move once their positions are committed.
                    self.cut(false, true)?;
                    if let Some(c) = &mut self.clock {
                        c.release(&revoked);
                    }
                }
                if let Some(w) = &mut self.watermark {
                    for (source, partitions) in &revoked {
                        if let Some(i) = self.source_names.iter().position(|n| n == source) {
                            w.release(i, partitions);
                        }
                    }
                }
                self.gate.complete();
            }
            let mut msg = match rx.recv_timeout(crate::deploy::IDLE_TICK) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => {
                    self.send_all(|| ToShard::Idle)?;
                    if self.clock.as_ref().is_some_and(Clock::due) {
                        self.cut(false, false)?;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            msg.decode();
            msg.send_refused(dead)?;
            let position = msg.position.take();
            self.route(msg)?;
            if let Some(c) = &mut self.clock {
                c.note(position);
                if c.due() {
                    self.cut(false, false)?;
                }
            }
        }
        let release = release();
        self.send_all(|| ToShard::Finish { release })?;
        // The last checkpoint commits what the end of input released.
        if let Some(c) = &mut self.clock {
            c.note(None);
        }
        self.cut(self.clock.is_none(), true)
    }

    fn send_all(&self, msg: impl Fn() -> ToShard) -> std::io::Result<()> {
        for s in &self.shards {
            s.send(msg()).map_err(|_| gone())?;
        }
        Ok(())
    }

    /// Sends a barrier to every shard and returns once the sink stage has
    /// taken the checkpoint (or, `flush_only`, flushed the sinks): built it
    /// and handed it to its writer, or, `wait`, written it.
    ///
    /// Dead letters are written by this thread and the shards straight to
    /// one file whose length the checkpoint records, so nothing may be
    /// routed after the cut until then: a dead letter after the cut would
    /// be kept by a restart and written again.
    fn cut(&mut self, flush_only: bool, wait: bool) -> std::io::Result<()> {
        let cut = Arc::new(Cut {
            positions: self.clock.as_ref().map(|c| c.positions.clone()).unwrap_or_default(),
            router_state: self.watermark.as_ref().map(Watermark::snapshot),
            flush_only,
            incremental: self.clock.as_ref().is_some_and(|c| c.incremental),
            whole: !flush_only && self.clock.as_mut().is_none_or(Clock::take_whole),
            wait,
        });
        self.send_all(|| ToShard::Barrier(cut.clone()))?;
        self.done.recv().map_err(|_| gone())?;
        if let Some(c) = &mut self.clock {
            c.cut();
        }
        Ok(())
    }

    /// Splits `msg` among the shards by key group, with the watermarks.
    fn route(&mut self, msg: Ingested) -> std::io::Result<()> {
        let Ingested { mut batch, keys, partitions, .. } = msg;
        if batch.is_empty() {
            return Ok(());
        }
        if let (Some(w), Some(partitions)) = (&mut self.watermark, &partitions) {
            w.assign(batch.origins[0].source as usize, partitions);
        }
        if let Some(w) = &mut self.watermark {
            batch.watermarks = Some(w.around(&batch));
        }
        let n = self.shards.len() as u16;
        if n == 1 {
            return self.shards[0].send(ToShard::Batch(batch)).map_err(|_| gone());
        }
        let keys = if keys.len() == batch.len() { keys } else { self.keys_of(&batch) };
        let shard_of: Vec<u16> = keys
            .iter()
            .map(|h| keys::shard_of(keys::group(*h, self.max_parallelism), self.max_parallelism, n))
            .collect();
        for (s, sender) in self.shards.iter().enumerate() {
            let part = split(&batch, &shard_of, s as u16);
            // A shard with none of the batch's events still hears where the
            // watermark went, when it moved: its windows close at the same time.
            let end = part.watermarks.as_ref().map(|w| w.end);
            if !part.is_empty() || end.is_some_and(|e| e > self.told[s]) {
                if let Some(e) = end {
                    self.told[s] = e;
                }
                sender.send(ToShard::Batch(part)).map_err(|_| gone())?;
            }
        }
        Ok(())
    }
}

impl Router {
    /// The key hash of each event of a batch that came decoded: one more
    /// parse of each event, reading only its key.
    fn keys_of(&self, batch: &Batch) -> Vec<u64> {
        let plans: Vec<Option<weir_core::event::FieldPlan>> = self
            .key_fields
            .iter()
            .map(|f| {
                f.as_ref().map(|f| weir_core::event::FieldPlan { route_field: Some(f.clone()), ..Default::default() })
            })
            .collect();
        let (mut cells, mut escaped) = (Vec::new(), Vec::new());
        let empty = keys::hash(b"");
        (0..batch.len())
            .map(|i| {
                let Some(Some(plan)) = plans.get(batch.origins[i].source as usize) else { return empty };
                cells.clear();
                escaped.clear();
                match weir_core::event::decode_into(batch.payload(i), plan, &mut cells, &mut escaped) {
                    Ok(d) => d.key.unwrap_or(empty),
                    Err(_) => empty,
                }
            })
            .collect()
    }
}

/// The events of `batch` whose shard is `shard`, with their cells and watermarks.
fn split(batch: &Batch, shard_of: &[u16], shard: u16) -> Batch {
    let count = shard_of.iter().filter(|s| **s == shard).count();
    let mut part = Batch::with_capacity(count, batch.payloads.len() / shard_of.len().max(1) * count + 64);
    part.versions = batch.versions.clone();
    let mut columns = batch.columns.as_ref().map(|c| Columns {
        fields: c.fields.clone(),
        cells: Vec::with_capacity(count * c.fields.len()),
        escaped: Vec::new(),
    });
    let mut watermarks = batch.watermarks.as_ref().map(|w| Watermarks {
        before: Vec::with_capacity(count),
        after: Vec::with_capacity(count),
        end: w.end,
    });
    for (i, s) in shard_of.iter().enumerate() {
        if *s != shard {
            continue;
        }
        part.push(batch.payload(i), batch.timestamps[i], batch.origins[i]);
        if let (Some(from), Some(to)) = (&batch.columns, &mut columns) {
            let width = from.fields.len();
            for cell in &from.cells[i * width..(i + 1) * width] {
                to.cells.push(match cell {
                    Cell::Escaped(j) => {
                        to.escaped.push(from.escaped[*j as usize].clone());
                        Cell::Escaped((to.escaped.len() - 1) as u32)
                    }
                    other => *other,
                });
            }
        }
        if let (Some(from), Some(to)) = (&batch.watermarks, &mut watermarks) {
            to.before.push(from.before[i]);
            to.after.push(from.after[i]);
        }
    }
    part.columns = columns;
    part.watermarks = watermarks;
    part
}

fn gone() -> std::io::Error {
    std::io::Error::other("a shard stopped")
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::event::Origin;

    fn batch(events: &[(u32, i64)]) -> Batch {
        let mut b = Batch::default();
        for (partition, t) in events {
            b.push(b"{}", *t, Origin { source: 0, line: 0, offset: 0, partition: *partition });
        }
        b
    }

    #[test]
    fn a_lagging_partition_holds_the_watermark_back() {
        let mut w = Watermark::new(vec![(100, None)]);
        assert_eq!(w.around(&batch(&[(0, 100), (1, 100)])).end, 0);
        let got = w.around(&batch(&[(0, 1000), (1, 500), (0, 2000), (1, 600)]));
        assert_eq!(got.before, vec![0, 0, 400, 400]);
        assert_eq!(got.after, vec![0, 400, 400, 500]);
        assert_eq!(got.end, 500, "partition 1 is behind: its events are not late");
        // It never moves back, also after a restore.
        let mut again = Watermark::new(vec![(100, None)]);
        again.restore(&w.snapshot()).unwrap();
        assert_eq!(again.around(&batch(&[(2, 0)])).after, vec![500]);
    }

    #[test]
    fn an_assigned_partition_holds_it_back_before_its_first_event() {
        let mut w = Watermark::new(vec![(100, None)]);
        w.assign(0, &[0, 1]);
        let got = w.around(&batch(&[(0, 1000), (0, 2000)]));
        assert_eq!(got.end, i64::MIN, "partition 1 has sent nothing yet");
        let got = w.around(&batch(&[(1, 500)]));
        assert_eq!(got.end, 400, "its first event is on time");
        w.assign(0, &[0, 1]);
        assert_eq!(w.around(&batch(&[(0, 2100)])).end, 400, "assigning again changes nothing");
    }

    #[test]
    fn an_idle_partition_stops_holding_it_back_until_it_sends_again() {
        let mut w = Watermark::new(vec![(0, Some(Duration::from_millis(30)))]);
        w.around(&batch(&[(0, 1000), (1, 100)]));
        std::thread::sleep(Duration::from_millis(60));
        let got = w.around(&batch(&[(0, 2000)]));
        assert_eq!(got.before, vec![1000], "partition 1 is idle, partition 0 leads");
        assert_eq!(got.end, 2000);
        let got = w.around(&batch(&[(1, 1500), (1, 2500)]));
        assert_eq!(got.after, vec![2000, 2000], "back, it holds the watermark where it was");
    }
}
