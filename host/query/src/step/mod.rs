//! The query step: reads each event's fields, filters, and either projects
//! each event or feeds the window operator, turning its rows into results.
//!
//! Watermarks: each source's is its largest event time so far minus its
//! `max_out_of_orderness`; the step's is the smallest over the sources it
//! has seen events from. It moves after every event, so the results do not
//! depend on how events were batched. When the batch carries the
//! pipeline's watermarks (computed where the events entered, over every
//! event of every shard), the step follows those instead: then a shard
//! that sees only its own keys closes each window at the same event time
//! as one step seeing every key would.

use super::eval::{Scope, Value, eval, passes};
use super::extract;
use super::output;
use super::plan::{Body, Item, Plan};
use crate::window::{AggFunc, Aggregates, Placed, Row, RowKind, WindowSpec, Windows};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_core::dead_letter::{DeadLetter, DeadLetters};
use weir_core::entries::{self, Changes};
use weir_core::event::{Batch, FieldPlan, Origin};
use weir_core::metrics::{StepMetrics, WindowMetrics};
use weir_core::step::{Outputs, Step};

/// Everything a query step is built from.
#[derive(Debug, Clone)]
pub struct QueryStepSettings {
    pub name: String,
    pub plan: Plan,
    /// Allowed lateness, milliseconds.
    pub lateness: i64,
    /// `max_out_of_orderness` of each source, by source index, milliseconds.
    pub out_of_orderness: Vec<i64>,
    /// No sink takes the step's `late` output: late events go to the
    /// dead-letter output instead (reason `late-event`).
    pub late_to_dead_letter: bool,
    /// Windows close on the pipeline's watermark (carried by the batches
    /// and [`Step::watermark`]), never on one of the step's own.
    pub pipeline_watermark: bool,
    /// The event times accepted from a TIMESTAMP BY field.
    pub time_range: weir_core::event::decode::TimeRange,
}

pub struct QueryStep {
    s: QueryStepSettings,
    /// The plan's fields, then the TIMESTAMP BY field when it is not one of
    /// them: what ingestion reads for this step when it comes right after
    /// the source (see [`QueryStep::columns`]).
    columns: Arc<[String]>,
    /// Decodes a batch that comes without cells for `columns`.
    decoder: FieldPlan,
    windows: Option<Windows>,
    /// Fields read as aggregate arguments, in argument order.
    arg_fields: Vec<usize>,
    /// Largest event time seen per source.
    maxes: Vec<Option<i64>>,
    metrics: StepMetrics,
    wm: WindowMetrics,
    rows: Vec<Row>,
    key: Vec<u8>,
    args: Vec<Option<f64>>,
    /// This step's share of `weir_windows_open`.
    open_counted: i64,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    maxes: Vec<Option<i64>>,
    windows: Option<Vec<u8>>,
}

impl QueryStep {
    pub fn new(s: QueryStepSettings, metrics: StepMetrics, wm: WindowMetrics) -> Self {
        let mut columns = s.plan.fields.clone();
        if let Some(t) = &s.plan.timestamp_by
            && !columns.contains(t)
        {
            columns.push(t.clone());
        }
        let columns: Arc<[String]> = columns.into();
        let decoder = FieldPlan { columns: Some(columns.clone()), ..FieldPlan::default() };
        let mut arg_fields = Vec::new();
        let windows = match &s.plan.body {
            Body::Window(w) => {
                let funcs = w
                    .aggregates
                    .iter()
                    .map(|&(func, field)| {
                        if func == AggFunc::CountAll {
                            return (func, 0);
                        }
                        let arg = arg_fields.iter().position(|f| *f == field).unwrap_or_else(|| {
                            arg_fields.push(field);
                            arg_fields.len() - 1
                        });
                        (func, arg)
                    })
                    .collect();
                let spec = WindowSpec { kind: w.window, lateness: s.lateness, aggregates: Aggregates { funcs } };
                Some(Windows::new(spec))
            }
            Body::Project(_) => None,
        };
        let maxes = vec![None; s.out_of_orderness.len()];
        QueryStep {
            s,
            columns,
            decoder,
            windows,
            arg_fields,
            maxes,
            metrics,
            wm,
            rows: Vec::new(),
            key: Vec::new(),
            args: Vec::new(),
            open_counted: 0,
        }
    }

    /// The fields the step reads. A source that decodes its events with
    /// these as [`weir_core::event::FieldPlan::columns`] hands them over ready,
    /// and the step does not parse the events again.
    pub fn columns(&self) -> Arc<[String]> {
        self.columns.clone()
    }

    /// The step's watermark after an event of `source` at `t`.
    fn watermark(&mut self, source: usize, t: i64) -> i64 {
        if source >= self.maxes.len() {
            self.maxes.resize(source + 1, None);
            self.s.out_of_orderness.resize(source + 1, 0);
        }
        let max = self.maxes[source].get_or_insert(t);
        *max = (*max).max(t);
        self.maxes
            .iter()
            .zip(&self.s.out_of_orderness)
            .filter_map(|(m, ooo)| m.map(|m| m.saturating_sub(*ooo)))
            .min()
            .unwrap_or(i64::MIN)
    }

    /// Turns the window rows gathered so far into results.
    fn emit_rows(&mut self, out: &mut Batch) {
        let Body::Window(w) = &self.s.plan.body else { return };
        for row in self.rows.drain(..) {
            let keys = super::key::decode(&row.key);
            let scope = GroupScope { keys: &keys, values: &row.values };
            let pass = |values: &[Option<f64>]| {
                w.having.as_ref().is_none_or(|h| passes(h, &GroupScope { keys: &keys, values }))
            };
            let (kind, values) = match row.kind {
                RowKind::Final if pass(&row.values) => (RowKind::Final, &row.values),
                RowKind::Correction if pass(&row.values) => (RowKind::Correction, &row.values),
                // A correction that no longer passes HAVING takes back what was emitted.
                RowKind::Correction if row.previous.as_deref().is_some_and(pass) => {
                    (RowKind::Retraction, row.previous.as_ref().expect("checked"))
                }
                RowKind::Retraction if pass(&row.values) => (RowKind::Retraction, &row.values),
                _ => continue,
            };
            let scope = GroupScope { values, ..scope };
            let p = &mut out.payloads;
            p.extend_from_slice(br#"{"window_start":"#);
            output::time(row.start, p);
            p.extend_from_slice(br#","window_end":"#);
            output::time(row.end, p);
            let mut first = false;
            for Item { name, expr } in &w.select {
                output::member(name, &mut first, p);
                output::value(&eval(expr, &scope), p);
            }
            match kind {
                RowKind::Final => self.wm.finals.inc(),
                RowKind::Correction => {
                    p.extend_from_slice(br#","correction":true"#);
                    self.wm.corrections.inc();
                }
                RowKind::Retraction => {
                    p.extend_from_slice(br#","retraction":true"#);
                    self.wm.retractions.inc();
                }
            }
            p.push(b'}');
            out.commit(row.end, Origin::default());
        }
    }

    fn update_gauges(&mut self) {
        if let Some(w) = &self.windows {
            // Shards share the gauge: each adds its own change.
            let open = w.open() as i64;
            self.wm.open.add(open - self.open_counted);
            self.open_counted = open;
            if w.watermark() > i64::MIN && w.watermark() < i64::MAX {
                self.wm.watermark.set(w.watermark());
            }
        }
    }
}

struct RowScope<'a, 'v> {
    values: &'a [Value<'v>],
}

impl Scope for RowScope<'_, '_> {
    fn field(&self, i: usize) -> Value<'_> {
        self.values[i].clone()
    }
    fn key(&self, _: usize) -> Value<'_> {
        Value::Null
    }
    fn agg(&self, _: usize) -> Value<'_> {
        Value::Null
    }
}

#[derive(Clone, Copy)]
struct GroupScope<'a> {
    keys: &'a [Value<'static>],
    values: &'a [Option<f64>],
}

impl Scope for GroupScope<'_> {
    fn field(&self, _: usize) -> Value<'_> {
        Value::Null
    }
    fn key(&self, i: usize) -> Value<'_> {
        self.keys[i].clone()
    }
    fn agg(&self, i: usize) -> Value<'_> {
        self.values[i].map_or(Value::Null, Value::Num)
    }
}

impl Step for QueryStep {
    fn name(&self) -> &str {
        &self.s.name
    }

    fn process(&mut self, batch: Batch, dead: &DeadLetters) -> std::io::Result<Outputs> {
        self.metrics.events_in.inc_by(batch.len() as u64);
        self.metrics.batch_events.observe(batch.len() as f64);
        let mut out = Batch::with_capacity(batch.len(), 0);
        let mut late = Batch::default();
        let mut refused: Vec<(usize, &'static str, String)> = Vec::new();
        let mut values = Vec::new();
        // Cells kept by ingestion when this step follows the source;
        // otherwise the batch is decoded here, the same way.
        let decoded;
        let (columns, errors) = match batch.columns.as_ref().filter(|c| Arc::ptr_eq(&c.fields, &self.columns)) {
            Some(c) => (c, Vec::new()),
            None => {
                decoded = extract::cells(&self.decoder, &batch);
                (&decoded.0, decoded.1)
            }
        };
        let mut errors = errors.into_iter();
        let given = batch.watermarks.as_ref().filter(|w| w.before.len() == batch.len() && w.after.len() == batch.len());
        for i in 0..batch.len() {
            if let (Some(w), Some(windows)) = (given, &mut self.windows) {
                windows.advance(w.before[i], &mut self.rows);
            }
            let payload = batch.payload(i);
            let origin = batch.origins[i];
            let read = match errors.next().flatten() {
                Some(e) => Err(e),
                None => extract::values(
                    columns,
                    i,
                    payload,
                    &mut values,
                    self.s.plan.timestamp_by.as_deref(),
                    self.s.time_range,
                ),
            };
            let t = match read {
                Ok(t) => t.unwrap_or(batch.timestamps[i]),
                Err(e) => {
                    refused.push((i, e.reason(), e.to_string()));
                    continue;
                }
            };
            if let Some(f) = &self.s.plan.filter
                && !passes(f, &RowScope { values: &values })
            {
                continue;
            }
            let Some(windows) = &mut self.windows else {
                match &self.s.plan.body {
                    Body::Project(Some(items)) => {
                        let scope = RowScope { values: &values };
                        let mut first = true;
                        out.payloads.push(b'{');
                        for Item { name, expr } in items {
                            output::member(name, &mut first, &mut out.payloads);
                            output::value(&eval(expr, &scope), &mut out.payloads);
                        }
                        out.payloads.push(b'}');
                        out.commit(t, origin);
                    }
                    _ => out.push(payload, t, origin),
                }
                continue;
            };
            let Body::Window(w) = &self.s.plan.body else { unreachable!("windows exist only for windowed plans") };
            self.args.clear();
            let mut bad = None;
            for &f in &self.arg_fields {
                match &values[f] {
                    Value::Num(n) => self.args.push(Some(*n)),
                    Value::Null => self.args.push(None),
                    other => {
                        bad = Some(format!(
                            "field `{}`: expected a number, found {}",
                            self.s.plan.fields[f],
                            other.kind()
                        ));
                        break;
                    }
                }
            }
            if let Some(detail) = bad {
                refused.push((i, "invalid-event", detail));
                continue;
            }
            self.key.clear();
            for &k in &w.keys {
                super::key::encode(&values[k], &mut self.key);
            }
            if windows.insert(&self.key, t, &self.args, &mut self.rows) == Placed::Late {
                self.wm.late.inc();
                if self.s.late_to_dead_letter {
                    let detail = format!(
                        "event time {t} is before the watermark {} by more than the allowed lateness ({} ms)",
                        windows.watermark(),
                        self.s.lateness
                    );
                    refused.push((i, "late-event", detail));
                } else {
                    late.push(payload, t, origin);
                }
            }
            let wm = match given {
                Some(w) => w.after[i],
                None if self.s.pipeline_watermark => continue,
                None => self.watermark(origin.source as usize, t),
            };
            let windows = self.windows.as_mut().expect("present above");
            windows.advance(wm, &mut self.rows);
        }
        if let (Some(w), Some(windows)) = (&batch.watermarks, &mut self.windows) {
            windows.advance(w.end, &mut self.rows);
        }
        if !refused.is_empty() {
            self.metrics.rejected.inc_by(refused.iter().filter(|r| r.1 != "late-event").count() as u64);
            dead.send_all(refused.iter().map(|(i, reason, detail)| DeadLetter {
                reason,
                detail,
                step: Some(&self.s.name),
                origin: batch.origins[*i],
                original: batch.payload(*i),
            }))?;
        }
        self.emit_rows(&mut out);
        self.update_gauges();
        self.metrics.main_out.inc_by(out.len() as u64);
        let mut outputs = Outputs { main: out, named: Vec::new() };
        if !late.is_empty() {
            self.metrics.out("late").inc_by(late.len() as u64);
            outputs.named.push(("late".to_string(), late));
        }
        Ok(outputs)
    }

    fn watermark(&mut self, watermark: i64, _dead: &DeadLetters) -> std::io::Result<Outputs> {
        let mut out = Batch::default();
        if let Some(w) = &mut self.windows {
            w.advance(watermark, &mut self.rows);
        }
        if self.rows.is_empty() {
            return Ok(Outputs::default());
        }
        self.emit_rows(&mut out);
        self.update_gauges();
        self.metrics.main_out.inc_by(out.len() as u64);
        Ok(Outputs { main: out, named: Vec::new() })
    }

    fn finish(&mut self, _dead: &DeadLetters) -> std::io::Result<Outputs> {
        let mut out = Batch::default();
        if let Some(w) = &mut self.windows {
            w.finish(&mut self.rows);
        }
        self.emit_rows(&mut out);
        self.update_gauges();
        self.metrics.main_out.inc_by(out.len() as u64);
        Ok(Outputs { main: out, named: Vec::new() })
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        let snap = Snapshot { maxes: self.maxes.clone(), windows: self.windows.as_ref().map(Windows::snapshot) };
        Some(postcard::to_stdvec(&snap).expect("query state serializes"))
    }

    fn changes(&mut self, whole: bool) -> Option<Changes> {
        let mut out = Changes { whole, ..Changes::default() };
        out.put.push((vec![MAXES], postcard::to_stdvec(&self.maxes).expect("query state serializes")));
        if let Some(w) = &mut self.windows {
            w.changes(&[WINDOWS], whole, &mut out);
        }
        Some(out)
    }

    fn restore_rescaled(&mut self, states: &[&[u8]], mine: &weir_core::keys::KeyFilter) -> anyhow::Result<()> {
        let name = self.s.name.clone();
        let Body::Window(w) = &self.s.plan.body else { return Ok(()) };
        let Some(column) = w.keys.iter().position(|k| self.s.plan.fields[*k] == mine.field) else {
            anyhow::bail!("step `{name}`: its GROUP BY has no `{}`, the key its state is split by", mine.field);
        };
        let owns = |key: &[u8]| {
            let values = super::key::decode(key);
            let mut bytes = Vec::new();
            match values.get(column) {
                Some(Value::Str(s)) => bytes.extend_from_slice(s.as_bytes()),
                Some(Value::Num(n)) => bytes.extend_from_slice(weir_core::keys::number(*n).as_bytes()),
                Some(Value::Bool(b)) => bytes.extend_from_slice(if *b { b"true" } else { b"false" }),
                _ => {}
            }
            mine.owns(&bytes)
        };
        let mut maxes: Vec<Option<i64>> = Vec::new();
        for state in states {
            let (theirs, part) = self.parts(state)?;
            maxes.resize(maxes.len().max(theirs.len()), None);
            for (m, theirs) in maxes.iter_mut().zip(&theirs) {
                *m = (*m).max(*theirs);
            }
            if let (Some(windows), Some(mut part)) = (&mut self.windows, part) {
                part.retain_keys(&owns);
                windows.absorb(part);
            }
        }
        self.maxes = maxes;
        self.update_gauges();
        Ok(())
    }

    fn restore(&mut self, state: &[u8]) -> anyhow::Result<()> {
        let (maxes, windows) = self.parts(state)?;
        if let (Some(w), Some(restored)) = (&mut self.windows, windows) {
            *w = restored;
        }
        self.maxes = maxes;
        Ok(())
    }
}

/// Entry keys of a query step's state: the sources' latest event times,
/// and its windows under a prefix.
const MAXES: u8 = 0;
const WINDOWS: u8 = 1;

impl QueryStep {
    /// The sources' latest event times and the windows a state holds, from
    /// entries ([`Step::changes`]) or a whole snapshot of an older version.
    fn parts(&self, state: &[u8]) -> anyhow::Result<(Vec<Option<i64>>, Option<Windows>)> {
        let name = &self.s.name;
        let spec = self.windows.as_ref().map(|w| w.spec().clone());
        if let Some(entries) = entries::decode(state) {
            let entries = entries.map_err(|e| anyhow::anyhow!("step `{name}`: {e}"))?;
            let maxes = match entries.get([MAXES].as_slice()) {
                Some(b) => postcard::from_bytes(b)
                    .map_err(|e| anyhow::anyhow!("step `{name}`: query state is unreadable: {e}"))?,
                None => Vec::new(),
            };
            let windows = spec
                .map(|spec| Windows::from_entries(spec, &[WINDOWS], &entries))
                .transpose()
                .map_err(|e| anyhow::anyhow!("step `{name}`: {e}"))?;
            return Ok((maxes, windows));
        }
        let snap: Snapshot = postcard::from_bytes(state)
            .map_err(|e| anyhow::anyhow!("step `{name}`: query state is unreadable: {e}"))?;
        let windows = match (spec, &snap.windows) {
            (Some(spec), Some(bytes)) => {
                Some(Windows::restore(spec, bytes).map_err(|e| anyhow::anyhow!("step `{name}`: {e}"))?)
            }
            _ => None,
        };
        Ok((snap.maxes, windows))
    }
}

#[cfg(test)]
mod tests;
