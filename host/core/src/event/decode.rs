//! Decoding one JSON event at ingestion: the whole document is checked (it
//! must be one JSON object), and only the fields the runtime needs (event
//! time, key) are read; everything else is skipped without allocating.

use super::Cell;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::fmt;
use std::sync::Arc;

/// Which fields to read from each event of a source.
#[derive(Debug, Clone, Default)]
pub struct FieldPlan {
    pub timestamp_field: Option<String>,
    pub key_field: Option<String>,
    /// The field whose value places an event in a key group, when it is not
    /// the `key_field` (a query's GROUP BY field); unlike `key_field` it may
    /// be absent (the event then goes to the group of the empty key).
    pub route_field: Option<String>,
    /// Fields whose values a query step right after the source reads:
    /// kept as [`Cell`]s so the step does not parse the event again.
    pub columns: Option<Arc<[String]>>,
    /// The source's JSON Schema, checked after the fields are read.
    pub schema: Option<Arc<super::Schema>>,
    /// Event times outside it are refused (`[pipeline] event_time_min/max`).
    pub time_range: TimeRange,
}

/// The event times a pipeline accepts, in epoch milliseconds, inclusive.
/// Everything downstream (windows, watermarks, checkpoints) does its
/// arithmetic on times inside it, far from where an `i64` overflows: a
/// time like `i64::MAX` or the year 300000 is refused here, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub min: i64,
    pub max: i64,
}

impl TimeRange {
    /// 1900-01-01T00:00:00Z.
    pub const DEFAULT_MIN: i64 = -2_208_988_800_000;
    /// 9999-12-31T23:59:59.999Z.
    pub const DEFAULT_MAX: i64 = 253_402_300_799_999;
    /// The widest range a pipeline may be given: ±2^53 ms (±285,000 years),
    /// where adding any window size or lateness still cannot overflow.
    pub const LIMIT: i64 = 1 << 53;

    /// `t` when it is inside the range, else an error naming `field`.
    /// The value itself is not repeated: it may be redacted data.
    pub fn check<E: de::Error>(&self, field: &str, t: i64) -> Result<i64, E> {
        if (self.min..=self.max).contains(&t) {
            Ok(t)
        } else {
            Err(bad_field(
                field,
                format_args!(
                    "the time is outside the accepted range {} to {} (pipeline.event_time_min and event_time_max)",
                    rfc3339(self.min),
                    rfc3339(self.max)
                ),
            ))
        }
    }
}

impl Default for TimeRange {
    fn default() -> Self {
        TimeRange { min: Self::DEFAULT_MIN, max: Self::DEFAULT_MAX }
    }
}

/// `ms` as an RFC 3339 UTC time with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// What ingestion needs from an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Event time in epoch milliseconds, when the source names a timestamp field.
    pub timestamp: Option<i64>,
    /// The hash of the key (`key_field`, else `route_field`), when the plan
    /// names one and the event has it (see [`crate::keys`]).
    pub key: Option<u64>,
}

/// Why an event was refused at ingestion; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("missing field `{0}`")]
    MissingField(String),
    #[error("field `{field}`: {message}")]
    BadField { field: String, message: String },
    /// The event breaks the source's JSON Schema.
    #[error("schema: {0}")]
    Schema(String),
}

impl DecodeError {
    /// The dead-letter reason: `invalid-json` or `invalid-event`.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Json(_) => "invalid-json",
            DecodeError::Schema(_) => "schema-violation",
            _ => "invalid-event",
        }
    }
}

/// Checks that `bytes` is one JSON object and reads the planned fields.
pub fn decode(bytes: &[u8], plan: &FieldPlan) -> Result<Decoded, DecodeError> {
    decode_into(bytes, plan, &mut Vec::new(), &mut Vec::new())
}

/// [`decode`], also appending one cell per planned column to `cells`
/// (escaped strings go to `escaped`). On error, `cells` may hold a partial
/// row: the caller truncates it.
pub fn decode_into(
    bytes: &[u8],
    plan: &FieldPlan,
    cells: &mut Vec<Cell>,
    escaped: &mut Vec<String>,
) -> Result<Decoded, DecodeError> {
    let first = cells.len();
    if let Some(cols) = &plan.columns {
        cells.resize(first + cols.len(), Cell::Null);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let row = Row { bytes, cells: &mut cells[first..], escaped };
    let found = Extract { plan, row }.deserialize(&mut de).and_then(|found| de.end().map(|()| found));
    let found = found.map_err(json_error)?;
    if let Some(field) = &plan.timestamp_field
        && found.timestamp.is_none()
    {
        return Err(DecodeError::MissingField(field.clone()));
    }
    if let Some(field) = &plan.key_field
        && !found.has_key
    {
        return Err(DecodeError::MissingField(field.clone()));
    }
    if let Some(schema) = &plan.schema {
        schema.check(bytes).map_err(DecodeError::Schema)?;
    }
    Ok(Decoded { timestamp: found.timestamp, key: found.key })
}

/// The error for a failed parse: a field's own error, or where the JSON
/// broke. Neither repeats a value of the event (see [`without_values`]).
pub fn json_error(e: serde_json::Error) -> DecodeError {
    match field_error(&e) {
        Some(DecodeError::BadField { field, message }) => {
            DecodeError::BadField { field, message: without_values(&message) }
        }
        Some(err) => err,
        // Each event is one line, so serde_json's "line 1" says nothing.
        None => DecodeError::Json(without_values(&e.to_string().replace(" at line 1 column ", " at column "))),
    }
}

/// `text` with whatever it quotes (`"…"` or `` `…` ``, where serde_json
/// puts the values it saw) replaced by `…`: errors go to logs, API answers
/// and dead-letter details, and an event's values may be health or payment
/// data (its original bytes stay in the dead-letter record, redacted as
/// `[dead_letter] redact` says).
pub fn without_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['"', '`']) {
        let quote = rest[i..].chars().next().expect("found");
        out.push_str(&rest[..=i]);
        let after = &rest[i + 1..];
        // The closing quote, past backslash escapes (serde_json shows a
        // string the way Rust's Debug does: `"a\"b"`).
        let mut escaped = false;
        let close = after.char_indices().find_map(|(j, c)| {
            let end = !escaped && c == quote;
            escaped = !escaped && c == '\\';
            end.then_some(j)
        });
        match close {
            // serde_json's syntax errors quote the token they expected.
            Some(1) if after.as_bytes()[0].is_ascii_punctuation() => {
                out.push_str(&after[..2]);
                rest = &after[2..];
            }
            Some(j) => {
                out.push('…');
                out.push(quote);
                rest = &after[j + 1..];
            }
            None => {
                out.push('…');
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Field errors travel through serde_json as custom errors with a marker prefix.
const FIELD_MARK: &str = "\u{1}field:";

fn field_error(e: &serde_json::Error) -> Option<DecodeError> {
    let text = e.to_string();
    let rest = text.strip_prefix(FIELD_MARK)?;
    let (field, message) = rest.split_once('\u{1}')?;
    // serde_json appends " at line L column C" to custom errors.
    let message = message.rsplit_once(" at line ").map_or(message, |(m, _)| m);
    Some(DecodeError::BadField { field: field.to_string(), message: message.to_string() })
}

pub fn bad_field<E: de::Error>(field: &str, message: impl fmt::Display) -> E {
    E::custom(format_args!("{FIELD_MARK}{field}\u{1}{message}"))
}

struct Extract<'p, 'r> {
    plan: &'p FieldPlan,
    row: Row<'r>,
}

/// Where column values go: the cells of the event `bytes`.
struct Row<'r> {
    bytes: &'r [u8],
    cells: &'r mut [Cell],
    escaped: &'r mut Vec<String>,
}

struct Found {
    timestamp: Option<i64>,
    has_key: bool,
    key: Option<u64>,
}

impl<'de> DeserializeSeed<'de> for Extract<'_, '_> {
    type Value = Found;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Extract<'_, '_> {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let ts_field = self.plan.timestamp_field.as_deref();
        let key_field = self.plan.key_field.as_deref();
        let route_field = key_field.or(self.plan.route_field.as_deref());
        let columns = self.plan.columns.as_deref().unwrap_or_default();
        let row = self.row;
        let mut found = Found { timestamp: None, has_key: false, key: None };
        while let Some(name) = map.next_key::<FieldName<'de>>()? {
            if let Some(i) = columns.iter().position(|c| name.is(Some(c))) {
                let cell = map.next_value_seed(CellSeed { bytes: row.bytes, escaped: &mut *row.escaped })?;
                row.cells[i] = cell;
                if name.is(ts_field) {
                    let field = ts_field.unwrap_or_default();
                    let seed = TimestampSeed { field, range: self.plan.time_range };
                    found.timestamp = Some(match cell {
                        Cell::Num(n) => seed.visit_f64(n)?,
                        Cell::Str { start, end } => {
                            let text = &row.bytes[start as usize..end as usize];
                            seed.visit_str(std::str::from_utf8(text).map_err(de::Error::custom)?)?
                        }
                        Cell::Escaped(j) => seed.visit_str(&row.escaped[j as usize])?,
                        Cell::Null => seed.visit_unit()?,
                        Cell::Bool(b) => seed.visit_bool(b)?,
                        Cell::Nested => {
                            return Err(bad_field(field, "expected epoch milliseconds or an RFC 3339 string"));
                        }
                    });
                } else if name.is(route_field) {
                    let seed = KeySeed { field: route_field.unwrap_or_default(), strict: true };
                    let strict = name.is(key_field);
                    found.key = Some(match cell {
                        // Only the key field must be a string or a number; a
                        // GROUP BY field may hold anything the query groups.
                        Cell::Str { .. } | Cell::Escaped(_) | Cell::Num(_) => {
                            let mut bytes = Vec::new();
                            crate::keys::canonical(&cell, row.bytes, row.escaped, &mut bytes);
                            crate::keys::hash(&bytes)
                        }
                        _ if !strict => {
                            let mut bytes = Vec::new();
                            crate::keys::canonical(&cell, row.bytes, row.escaped, &mut bytes);
                            crate::keys::hash(&bytes)
                        }
                        Cell::Null => seed.visit_unit()?,
                        Cell::Bool(b) => seed.visit_bool(b)?,
                        Cell::Nested => return Err(bad_field(seed.field, "expected a string or a number")),
                    });
                    found.has_key = strict;
                }
            } else if name.is(ts_field) {
                let field = ts_field.unwrap_or_default();
                found.timestamp = Some(map.next_value_seed(TimestampSeed { field, range: self.plan.time_range })?);
            } else if name.is(route_field) {
                let field = route_field.unwrap_or_default();
                let strict = name.is(key_field);
                found.key = Some(map.next_value_seed(KeySeed { field, strict })?);
                found.has_key = name.is(key_field);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// An object key as raw bytes, borrowed from the input unless it holds
/// escapes. Keys are compared, not kept, so they skip UTF-8 validation.
pub enum FieldName<'de> {
    Borrowed(&'de [u8]),
    Owned(Vec<u8>),
}

impl FieldName<'_> {
    pub fn is(&self, name: Option<&str>) -> bool {
        let bytes = match self {
            FieldName::Borrowed(b) => b,
            FieldName::Owned(b) => b.as_slice(),
        };
        // Lengths and first bytes first: field names often share a length.
        name.is_some_and(|n| n.len() == bytes.len() && n.as_bytes().first() == bytes.first() && n.as_bytes() == bytes)
    }
}

impl<'de> de::Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(FieldName::Borrowed(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(FieldName::Owned(v.to_vec()))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName::Borrowed(v.as_bytes()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName::Owned(v.as_bytes().to_vec()))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Event time: epoch milliseconds (integer or float) or an RFC 3339
/// string, inside `range`.
pub struct TimestampSeed<'f> {
    pub field: &'f str,
    pub range: TimeRange,
}

impl<'de> DeserializeSeed<'de> for TimestampSeed<'_> {
    type Value = i64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimestampSeed<'_> {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("epoch milliseconds or an RFC 3339 string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        self.range.check(self.field, v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        self.range.check(self.field, i64::try_from(v).unwrap_or(i64::MAX))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.is_finite() && v.abs() < 9.0e15 {
            self.range.check(self.field, v.floor() as i64)
        } else {
            self.range.check(self.field, if v < 0.0 { i64::MIN } else { i64::MAX })
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        if let Some(ms) = utc_millis(v.as_bytes()) {
            return self.range.check(self.field, ms);
        }
        let ms = chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| t.timestamp_millis())
            .map_err(|e| bad_field(self.field, format_args!("not an RFC 3339 time ({e})")))?;
        self.range.check(self.field, ms)
    }

    fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
        Err(bad_field(self.field, "expected epoch milliseconds or an RFC 3339 string, found null"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<i64, E> {
        Err(bad_field(self.field, "expected epoch milliseconds or an RFC 3339 string, found a boolean"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<i64, A::Error> {
        Err(bad_field(self.field, "expected epoch milliseconds or an RFC 3339 string, found an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<i64, A::Error> {
        Err(bad_field(self.field, "expected epoch milliseconds or an RFC 3339 string, found an object"))
    }
}

/// A column's value as a [`Cell`]: strings without escapes as offsets into
/// the event, others decoded into `escaped`.
struct CellSeed<'r> {
    bytes: &'r [u8],
    escaped: &'r mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = Cell;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cell, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = Cell;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell, E> {
        Ok(Cell::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
        Ok(Cell::Num(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
        Ok(Cell::Num(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell, E> {
        Ok(Cell::Num(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cell, E> {
        // A borrowed string lies inside the event: keep its offsets.
        let start = (v.as_ptr() as usize).wrapping_sub(self.bytes.as_ptr() as usize);
        match start.checked_add(v.len()) {
            Some(end) if end <= self.bytes.len() => Ok(Cell::Str { start: start as u32, end: end as u32 }),
            _ => self.visit_str(v),
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
        self.escaped.push(v.to_string());
        Ok(Cell::Escaped((self.escaped.len() - 1) as u32))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Cell::Nested)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Cell::Nested)
    }
}

/// Epoch milliseconds of `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DDTHH:MM:SS.mmmZ`,
/// the forms most devices and generators write, without going through a
/// general parser (it was a tenth of ingestion). `None` for anything else,
/// valid or not, which chrono then parses or refuses.
fn utc_millis(s: &[u8]) -> Option<i64> {
    let digit = |i: usize| s[i].is_ascii_digit().then(|| i64::from(s[i] - b'0'));
    let num = |from: usize, len: usize| (from..from + len).try_fold(0, |acc, i| Some(acc * 10 + digit(i)?));
    let ms = match s.len() {
        20 => 0,
        24 if s[19] == b'.' => num(20, 3)?,
        _ => return None,
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (s.len() - 1, b'Z')];
    if seps.iter().any(|&(i, c)| s[i] != c) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[mo as usize - 1] || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm), year starting in March.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

/// A key: a string or a number.
struct KeySeed<'f> {
    field: &'f str,
    /// The key field must be a string or a number; a field that only
    /// routes (a GROUP BY field) may be anything, hashed by its canonical
    /// bytes (empty for null, arrays and objects).
    strict: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

/// The key's hash, over its canonical bytes (see [`crate::keys::canonical`]).
impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        Ok(crate::keys::hash(v.as_bytes()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        Ok(crate::keys::hash(crate::keys::number(v as f64).as_bytes()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(crate::keys::hash(crate::keys::number(v as f64).as_bytes()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        Ok(crate::keys::hash(crate::keys::number(v).as_bytes()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        if !self.strict {
            return Ok(crate::keys::hash(b""));
        }
        Err(bad_field(self.field, "expected a string or a number, found null"))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<u64, E> {
        if !self.strict {
            return Ok(crate::keys::hash(if v { b"true" } else { b"false" }));
        }
        Err(bad_field(self.field, "expected a string or a number, found a boolean"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        if !self.strict {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(crate::keys::hash(b""));
        }
        Err(bad_field(self.field, "expected a string or a number, found an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        if !self.strict {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(crate::keys::hash(b""));
        }
        Err(bad_field(self.field, "expected a string or a number, found an object"))
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
