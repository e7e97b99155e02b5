//! The router: the one thread between the sources and the shards. It
//! decodes what a source left undecoded, dead-letters what is invalid,
//! computes the pipeline's watermark around each event, splits each batch
//! by key group among the shards, and cuts checkpoints: a barrier to every
//! shard, then it waits until the sink stage has written the checkpoint, so
//! that nothing after the cut is processed or written before it is taken.

use super::checkpointer::Clock;
use super::worker::{Cut, ToShard};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_core::checkpoint::Gate;
use weir_core::dead_letter::DeadLetters;
use weir_core::event::{Batch, Cell, Columns, Ingested, Watermarks};
use weir_core::keys;

/// The pipeline's watermark: each source's largest event time less its
/// `max_out_of_orderness`, the smallest over the sources seen so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Watermark {
    maxes: Vec<Option<i64>>,
    #[serde(skip)]
    out_of_orderness: Vec<i64>,
}

impl Watermark {
    pub fn new(out_of_orderness: Vec<i64>) -> Self {
        Watermark { maxes: vec![None; out_of_orderness.len()], out_of_orderness }
    }

    pub fn current(&self) -> i64 {
        self.maxes
            .iter()
            .zip(&self.out_of_orderness)
            .filter_map(|(m, ooo)| m.map(|m| m.saturating_sub(*ooo)))
            .min()
            .unwrap_or(i64::MIN)
    }

    fn see(&mut self, source: usize, t: i64) {
        if let Some(m) = self.maxes.get_mut(source) {
            *m = Some(m.map_or(t, |m| m.max(t)));
        }
    }

    /// The watermark before and after each event of `batch`.
    fn around(&mut self, batch: &Batch) -> Watermarks {
        let mut w =
            Watermarks { before: Vec::with_capacity(batch.len()), after: Vec::with_capacity(batch.len()), end: 0 };
        let mut now = self.current();
        for i in 0..batch.len() {
            w.before.push(now);
            self.see(batch.origins[i].source as usize, batch.timestamps[i]);
            now = self.current();
            w.after.push(now);
        }
        w.end = now;
        w
    }

    pub fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("watermarks serialize")
    }

    pub fn restore(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let got: Watermark =
            postcard::from_bytes(bytes).map_err(|e| anyhow::anyhow!("the watermarks are unreadable: {e}"))?;
        for (i, m) in got.maxes.into_iter().enumerate().take(self.maxes.len()) {
            self.maxes[i] = m;
        }
        Ok(())
    }
}

pub struct Router {
    pub shards: Vec<Sender<ToShard>>,
    /// Per source: the field its events are routed by, for sources that
    /// hand over events already decoded (generator, HTTP) and so without
    /// their keys.
    pub key_fields: Vec<Option<String>>,
    pub max_parallelism: u16,
    /// `Some` when the first step closes windows on the pipeline's watermark.
    pub watermark: Option<Watermark>,
    pub clock: Option<Clock>,
    /// Answers from the sink stage: a cut is written.
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
                    self.cut(false)?;
                    if let Some(c) = &mut self.clock {
                        c.release(&revoked);
                    }
                }
                self.gate.complete();
            }
            let mut msg = match rx.recv_timeout(crate::deploy::IDLE_TICK) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => {
                    self.send_all(|| ToShard::Idle)?;
                    if self.clock.as_ref().is_some_and(Clock::due) {
                        self.cut(false)?;
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
                    self.cut(false)?;
                }
            }
        }
        let release = release();
        self.send_all(|| ToShard::Finish { release })?;
        // The last checkpoint commits what the end of input released.
        if let Some(c) = &mut self.clock {
            c.note(None);
        }
        self.cut(self.clock.is_none())
    }

    fn send_all(&self, msg: impl Fn() -> ToShard) -> std::io::Result<()> {
        for s in &self.shards {
            s.send(msg()).map_err(|_| gone())?;
        }
        Ok(())
    }

    /// Sends a barrier to every shard and waits until the sink stage has
    /// written the checkpoint (or, `flush_only`, flushed the sinks).
    fn cut(&mut self, flush_only: bool) -> std::io::Result<()> {
        let cut = Arc::new(Cut {
            positions: self.clock.as_ref().map(|c| c.positions.clone()).unwrap_or_default(),
            router_state: self.watermark.as_ref().map(Watermark::snapshot),
            flush_only,
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
        let Ingested { mut batch, keys, .. } = msg;
        if batch.is_empty() {
            return Ok(());
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
            // watermark went: its windows close at the same time.
            if !part.is_empty() || part.watermarks.is_some() {
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
        let (mut cells, mut escaped) = (Vec::new(), Vec::new());
        let empty = keys::hash(b"");
        (0..batch.len())
            .map(|i| {
                let Some(Some(field)) = self.key_fields.get(batch.origins[i].source as usize) else { return empty };
                let plan = weir_core::event::FieldPlan { route_field: Some(field.clone()), ..Default::default() };
                cells.clear();
                escaped.clear();
                match weir_core::event::decode_into(batch.payload(i), &plan, &mut cells, &mut escaped) {
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
