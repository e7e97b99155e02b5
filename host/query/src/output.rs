//! Writing results as JSON objects straight into a batch's payload buffer.
//!
//! Windowed results: `{"window_start": ..., "window_end": ..., <SELECT
//! items>}`, times as RFC 3339 UTC with milliseconds; a correction adds
//! `"correction": true`, a retraction `"retraction": true`. Numbers that
//! are whole print without a fraction; NaN and infinities print as null.

use super::eval::Value;

pub fn time(ms: i64, out: &mut Vec<u8>) {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    out.push(b'"');
    out.extend_from_slice(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).as_bytes());
    out.push(b'"');
}

pub fn string(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

pub fn number(n: f64, out: &mut Vec<u8>) {
    if !n.is_finite() {
        out.extend_from_slice(b"null");
    } else if n.fract() == 0.0 && n.abs() < 9.0e15 {
        out.extend_from_slice(itoa::Buffer::new().format(n as i64).as_bytes());
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(n).as_bytes());
    }
}

pub fn value(v: &Value<'_>, out: &mut Vec<u8>) {
    match v {
        Value::Null | Value::Nested => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Num(n) => number(*n, out),
        Value::Str(s) => string(s, out),
    }
}

/// Writes `"name":` after a comma unless it is the first member.
pub fn member(name: &str, first: &mut bool, out: &mut Vec<u8>) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    string(name, out);
    out.push(b':');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times_print_plainly() {
        let mut out = Vec::new();
        for n in [101.0, 101.25, -0.5, f64::NAN, 1e300] {
            number(n, &mut out);
            out.push(b' ');
        }
        time(1_767_225_900_000, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"101 101.25 -0.5 null 1e300 "2026-01-01T00:05:00.000Z""#);
    }
}
