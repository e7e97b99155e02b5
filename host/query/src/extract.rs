//! Reading the fields a query uses from each event. Ingestion's decoder
//! does the parsing (see `event::decode_into`): either it already kept the
//! query's fields as cells while it validated the batch, or the step runs it
//! on the batch itself; both end in [`values`].

use super::eval::Value;
use serde::de::{self, Visitor};
use std::borrow::Cow;
use weir_core::event::decode::{TimeRange, TimestampSeed, json_error};
use weir_core::event::{Batch, Cell, Columns, DecodeError, FieldPlan, decode_into};

/// Decodes every event of `batch` into cells of `plan`'s columns. An event
/// that fails has null cells and its error at its index.
pub fn cells(plan: &FieldPlan, batch: &Batch) -> (Columns, Vec<Option<DecodeError>>) {
    let fields = plan.columns.clone().expect("a query's plan names its columns");
    let n = fields.len();
    let mut c = Columns { fields, cells: Vec::with_capacity(batch.len() * n), escaped: Vec::new() };
    let mut errors = Vec::with_capacity(batch.len());
    for i in 0..batch.len() {
        let row = c.cells.len();
        match decode_into(batch.payload(i), plan, &mut c.cells, &mut c.escaped) {
            Ok(_) => errors.push(None),
            Err(e) => {
                c.cells.truncate(row);
                c.cells.resize(row + n, Cell::Null);
                errors.push(Some(e));
            }
        }
    }
    (c, errors)
}

/// The values of event `i` from its cells (the plan's fields first, the
/// TIMESTAMP BY field last when it is an extra column), and its event time
/// when the query names the field.
pub fn values<'a>(
    c: &'a Columns,
    i: usize,
    payload: &'a [u8],
    values: &mut Vec<Value<'a>>,
    timestamp_by: Option<&str>,
    range: TimeRange,
) -> Result<Option<i64>, DecodeError> {
    let n = c.fields.len();
    values.clear();
    values.extend(c.cells[i * n..(i + 1) * n].iter().map(|cell| {
        match *cell {
            Cell::Null => Value::Null,
            Cell::Bool(b) => Value::Bool(b),
            Cell::Num(x) => Value::Num(x),
            Cell::Str { start, end } => std::str::from_utf8(&payload[start as usize..end as usize])
                .map_or(Value::Null, |s| Value::Str(Cow::Borrowed(s))),
            Cell::Escaped(j) => Value::Str(Cow::Borrowed(c.escaped[j as usize].as_str())),
            Cell::Nested => Value::Nested,
        }
    }));
    let Some(field) = timestamp_by else { return Ok(None) };
    let at = c.fields.iter().position(|f| f == field).expect("the time field is a column");
    let t = match &values[at] {
        Value::Null => return Err(DecodeError::MissingField(field.to_string())),
        v => time_of::<serde_json::Error>(v, field, range).map_err(json_error)?,
    };
    Ok(Some(t))
}

fn time_of<E: de::Error>(v: &Value<'_>, field: &str, range: TimeRange) -> Result<i64, E> {
    let seed = TimestampSeed { field, range };
    match v {
        Value::Num(n) => seed.visit_f64(*n),
        Value::Str(s) => seed.visit_str(s),
        Value::Bool(b) => seed.visit_bool(*b),
        Value::Null => seed.visit_unit(),
        Value::Nested => {
            Err(weir_core::event::decode::bad_field(field, "expected epoch milliseconds or an RFC 3339 string"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::event::Origin;

    /// Reads one event the way a query step without ingestion cells does.
    fn read(fields: &[&str], ts: Option<&str>, line: &[u8]) -> Result<(Option<i64>, Vec<Value<'static>>), DecodeError> {
        let mut columns: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        if let Some(t) = ts
            && !fields.contains(&t)
        {
            columns.push(t.to_string());
        }
        let plan = FieldPlan { columns: Some(columns.into()), ..FieldPlan::default() };
        let mut batch = Batch::default();
        batch.push(line, 0, Origin::default());
        let (c, mut errors) = cells(&plan, &batch);
        if let Some(e) = errors.remove(0) {
            return Err(e);
        }
        let mut v = Vec::new();
        let t = values(&c, 0, batch.payload(0), &mut v, ts, TimeRange::default())?;
        let owned = v.into_iter().take(fields.len()).map(|x| match x {
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Num(n) => Value::Num(n),
            Value::Nested => Value::Nested,
        });
        Ok((t, owned.collect()))
    }

    #[test]
    fn reads_the_named_fields_and_the_time() {
        let fields = ["id", "hr", "tags", "gone"];
        let line = br#"{"id":"P\u00e9","hr":101.5,"t":"2026-01-01T00:00:00Z","tags":[1,{"a":2}],"x":null}"#;
        let (ts, v) = read(&fields, Some("t"), line).unwrap();
        assert_eq!(ts, Some(1_767_225_600_000));
        assert_eq!(v, vec![Value::Str("Pé".into()), Value::Num(101.5), Value::Nested, Value::Null]);
        let e = read(&fields, Some("t"), br#"{"id":"a"}"#).unwrap_err();
        assert_eq!(e.to_string(), "missing field `t`");
        let e = read(&fields, Some("t"), br#"{"id":"a","t":true}"#).unwrap_err();
        assert!(e.to_string().starts_with("field `t`: expected epoch milliseconds"), "{e}");
        assert_eq!(read(&fields, Some("t"), br#"{"id":"a","t":1}x"#).unwrap_err().reason(), "invalid-json");
    }

    #[test]
    fn a_selected_time_field_is_read_once() {
        let (ts, v) = read(&["t"], Some("t"), br#"{"t":1500}"#).unwrap();
        assert_eq!(ts, Some(1500));
        assert_eq!(v, vec![Value::Num(1500.0)]);
    }
}
