//! Decoding at ingestion, apart from reading.
//!
//! A source splits its input into events; decoding (checking that each is
//! one JSON object and reading its timestamp and key) is the costly part, so
//! it runs wherever there is a free core: on the source thread while the
//! worker is busy, on the worker thread while it would otherwise wait. Either
//! way each batch is decoded whole by one thread, so order is kept.

use super::{Batch, Columns, FieldPlan, decode_into};
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::position::Position;
use std::sync::Arc;

/// A batch on its way from a source to the worker.
#[derive(Debug)]
pub struct Ingested {
    pub batch: Batch,
    /// Set when the batch still needs [`decode_batch`] with this plan.
    pub undecoded: Option<Arc<FieldPlan>>,
    /// Events refused while decoding, written to the dead-letter output by
    /// the worker in batch order, so the record order does not depend on
    /// which thread decoded.
    pub refused: Refused,
    /// The source's index and its position after this batch, for checkpoints.
    pub position: Option<(u16, Position)>,
    /// Each valid event's key hash, once decoded with a plan that names a
    /// key (empty otherwise): what places it in a key group.
    pub keys: Vec<u64>,
    /// The source's partitions, when they changed since its last batch
    /// (see [`crate::source::Source::partitions`]).
    pub partitions: Option<Vec<u32>>,
}

/// Events refused at ingestion: their bytes and origins, and why.
#[derive(Debug, Default)]
pub struct Refused {
    events: Batch,
    reasons: Vec<(&'static str, String)>,
}

impl Ingested {
    pub fn new(batch: Batch, undecoded: Option<Arc<FieldPlan>>) -> Self {
        Ingested { batch, undecoded, refused: Refused::default(), position: None, keys: Vec::new(), partitions: None }
    }

    /// Decodes the batch if it still needs it; afterwards it holds only valid events.
    pub fn decode(&mut self) {
        if let Some(plan) = self.undecoded.take() {
            self.keys = decode_batch(&mut self.batch, &plan, &mut self.refused);
        }
    }

    /// Writes the refused events to the dead-letter output.
    pub fn send_refused(&mut self, dead: &DeadLetters) -> std::io::Result<()> {
        let r = std::mem::take(&mut self.refused);
        dead.send_all(r.events.iter().zip(&r.reasons).map(|((original, _, origin), (reason, detail))| DeadLetter {
            reason,
            detail,
            step: None,
            origin,
            original,
        }))
    }
}

/// Decodes every event of `batch` in place: event times are set from the
/// timestamp field; events that fail move to `refused` with the reason, the
/// rest keep their order. Returns the key hash of each valid event when the
/// plan names a key (`key_field` or `route_field`), else nothing.
pub fn decode_batch(batch: &mut Batch, plan: &FieldPlan, refused: &mut Refused) -> Vec<u64> {
    let keyed = plan.key_field.is_some() || plan.route_field.is_some();
    let mut keys = Vec::with_capacity(if keyed { batch.len() } else { 0 });
    let mut bad = Vec::new();
    let mut columns = plan.columns.as_ref().map(|fields| Columns {
        fields: fields.clone(),
        cells: Vec::with_capacity(batch.len() * fields.len()),
        escaped: Vec::new(),
    });
    let mut no_cells = (Vec::new(), Vec::new());
    for i in 0..batch.len() {
        let (cells, escaped) = match &mut columns {
            Some(c) => (&mut c.cells, &mut c.escaped),
            None => (&mut no_cells.0, &mut no_cells.1),
        };
        let row = cells.len();
        match decode_into(batch.payload(i), plan, cells, escaped) {
            Ok(d) => {
                if let Some(ts) = d.timestamp {
                    batch.timestamps[i] = ts;
                }
                if keyed {
                    // An event without its GROUP BY field belongs to the empty key.
                    keys.push(d.key.unwrap_or_else(|| crate::keys::hash(b"")));
                }
            }
            Err(e) => {
                cells.truncate(row);
                refused.events.push(batch.payload(i), batch.timestamps[i], batch.origins[i]);
                refused.reasons.push((e.reason(), e.to_string()));
                bad.push(i);
            }
        }
    }
    if !bad.is_empty() {
        let mut kept = Batch::with_capacity(batch.len() - bad.len(), batch.payloads.len());
        let mut bad = bad.into_iter().peekable();
        for i in 0..batch.len() {
            if bad.peek() == Some(&i) {
                bad.next();
                continue;
            }
            kept.push(batch.payload(i), batch.timestamps[i], batch.origins[i]);
        }
        *batch = kept;
    }
    batch.columns = columns;
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Origin;

    #[test]
    fn invalid_events_move_aside_and_the_rest_keep_their_order_and_times() {
        let mut batch = Batch::default();
        let lines = [r#"{"t":5}"#, "oops", r#"{"t":7}"#, r#"{"x":1}"#, r#"{"t":9}"#];
        for (i, l) in lines.iter().enumerate() {
            batch.push(l.as_bytes(), 0, Origin { source: 0, line: i as u64 + 1, offset: 0, partition: 0 });
        }
        let plan = FieldPlan { timestamp_field: Some("t".into()), ..FieldPlan::default() };
        let mut refused = Refused::default();
        decode_batch(&mut batch, &plan, &mut refused);
        assert_eq!(batch.timestamps, vec![5, 7, 9]);
        assert_eq!(batch.origins.iter().map(|o| o.line).collect::<Vec<_>>(), vec![1, 3, 5]);
        assert_eq!(batch.payload(1), br#"{"t":7}"#);
        assert_eq!(refused.events.origins.iter().map(|o| o.line).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(refused.reasons[0].0, "invalid-json");
        assert_eq!(refused.reasons[1], ("invalid-event", "missing field `t`".to_string()));
    }

    #[test]
    fn columns_are_read_for_the_valid_events_only_and_point_into_their_own_payloads() {
        use crate::event::Cell;
        let mut batch = Batch::default();
        let lines = [r#"{"id":"a\u0042","t":5,"v":1.5}"#, "oops", r#"{"t":7,"id":"xy","v":null,"w":[1]}"#];
        for (i, l) in lines.iter().enumerate() {
            batch.push(l.as_bytes(), 0, Origin { source: 0, line: i as u64 + 1, offset: 0, partition: 0 });
        }
        let fields: std::sync::Arc<[String]> = vec!["id".to_string(), "v".to_string(), "t".to_string()].into();
        let plan =
            FieldPlan { timestamp_field: Some("t".into()), columns: Some(fields.clone()), ..FieldPlan::default() };
        let mut refused = Refused::default();
        decode_batch(&mut batch, &plan, &mut refused);
        assert_eq!(batch.timestamps, vec![5, 7], "the time field is a column and still sets the event time");
        let c = batch.columns.as_ref().unwrap();
        assert!(std::sync::Arc::ptr_eq(&c.fields, &fields));
        assert_eq!(c.cells[..3], [Cell::Escaped(0), Cell::Num(1.5), Cell::Num(5.0)]);
        assert_eq!(c.escaped, vec!["aB".to_string()]);
        assert_eq!(c.cells[3..], [Cell::Str { start: 13, end: 15 }, Cell::Null, Cell::Num(7.0)]);
        assert_eq!(&batch.payload(1)[13..15], b"xy");
    }
}
