//! The sink trait: where results go, a whole batch at a time.

use crate::event::Batch;
use crate::position::Position;
use std::io::Write;

/// How a run starts, as a sink sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStart {
    /// From a checkpoint: the sink went back to its position there (or
    /// keeps what it has, when a source cannot replay).
    Resumed,
    /// Every source starts from the beginning of its input (a file from
    /// its first line, a generator from its first event): the run writes
    /// everything again.
    FromBeginning,
    /// Some source goes on from where it was (Kafka's committed offsets)
    /// or only gets new events (HTTP).
    Continuing,
}

/// A destination for events. [`Sink::write`] and [`Sink::flush`] are
/// required; a sink whose output can be cut back to a checkpoint (a file)
/// also says where it stands.
pub trait Sink: Send {
    /// Writes the events `indices` of `batch` (all of them when `None`).
    fn write(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize>;
    /// Makes everything written so far durable (or visible).
    fn flush(&mut self) -> std::io::Result<()>;

    /// How much it has written, after a [`Sink::flush`]: what a checkpoint
    /// records. `None`: it cannot go back (Kafka commits in transactions
    /// instead, stdout cannot).
    fn position(&self) -> Option<Position> {
        None
    }

    /// Goes back to a position a checkpoint recorded: what was written
    /// after it is taken back, so that a restart writes it once more, once.
    fn resume(&mut self, _position: &Position) -> std::io::Result<()> {
        Ok(())
    }

    /// Before the first event, how the run starts. Returns what the sink
    /// did with what its output already held, for the run summary.
    fn begin(&mut self, _start: RunStart) -> std::io::Result<Option<String>> {
        Ok(None)
    }

    /// Called often (after writes, and while no events flow): writes out
    /// what has waited for longer than the sink's flush interval.
    fn tick(&mut self, _now: std::time::Instant) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `"_weir"` member added to each event of `batch` by a sink with
/// `metadata`, closing the object.
pub fn metadata_member(batch: &Batch) -> Vec<u8> {
    let versions: serde_json::Map<String, serde_json::Value> =
        batch.versions.iter().map(|(step, digest)| (step.to_string(), digest.to_string().into())).collect();
    let mut member = br#""_weir":"#.to_vec();
    serde_json::to_writer(&mut member, &serde_json::json!({ "versions": versions })).expect("JSON to memory");
    member.push(b'}');
    member
}

/// Writes `payload` (one JSON object) with `member` added before its closing brace.
pub fn write_with_member(out: &mut impl Write, payload: &[u8], member: &[u8]) -> std::io::Result<()> {
    let trimmed = payload.trim_ascii_end();
    let Some(body) = trimmed.strip_suffix(b"}") else { return out.write_all(payload) };
    let empty = body.trim_ascii() == b"{";
    out.write_all(body)?;
    if !empty {
        out.write_all(b",")?;
    }
    out.write_all(member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_goes_inside_each_object() {
        let mut batch = Batch::default();
        batch.push(br#"{"a":1}"#, 0, Default::default());
        batch.push(b"{ }", 0, Default::default());
        batch.versions.push(("score".into(), "ab12".into()));
        let member = metadata_member(&batch);
        let mut out = Vec::new();
        for i in 0..batch.len() {
            write_with_member(&mut out, batch.payload(i), &member).unwrap();
            out.push(b'\n');
        }
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0], serde_json::json!({"a": 1, "_weir": {"versions": {"score": "ab12"}}}));
        assert_eq!(lines[1], serde_json::json!({"_weir": {"versions": {"score": "ab12"}}}));
    }
}
