//! Tests of decoding at ingestion: fields, times and their range, keys,
//! errors without values, and decoder fuzzing.

use super::*;

#[test]
fn a_route_key_hashes_the_same_read_as_a_column_or_not() {
    let route = FieldPlan { route_field: Some("g".into()), ..FieldPlan::default() };
    let column = FieldPlan { columns: Some(std::sync::Arc::from(vec!["g".to_string()])), ..route.clone() };
    for value in [r#""a\u0062""#, "7", "7.0", "true", "null", "[1]", r#"{"x":1}"#] {
        let event = format!(r#"{{"g":{value},"z":0}}"#);
        let (a, b) = (decode(event.as_bytes(), &route).unwrap(), decode(event.as_bytes(), &column).unwrap());
        assert_eq!(a.key, b.key, "{value}");
    }
    let ab = decode(br#"{"g":"ab"}"#, &route).unwrap().key;
    assert_eq!(decode(br#"{"g":"a\u0062"}"#, &route).unwrap().key, ab, "escapes do not change the key");
    assert_eq!(decode(br#"{"g":7}"#, &route).unwrap().key, decode(br#"{"g":7.0}"#, &route).unwrap().key);
    let key = FieldPlan { key_field: Some("g".into()), ..FieldPlan::default() };
    assert!(decode(br#"{"g":true}"#, &key).is_err(), "a key field must be a string or a number");
}

fn plan() -> FieldPlan {
    FieldPlan { timestamp_field: Some("EventTime".into()), key_field: Some("PatientId".into()), ..FieldPlan::default() }
}

#[test]
fn reads_epoch_millis_and_rfc3339() {
    let d = decode(br#"{"PatientId":"P1","EventTime":1700000000123,"x":[1,{"y":null}]}"#, &plan()).unwrap();
    assert_eq!(d.timestamp, Some(1_700_000_000_123));
    let d = decode(br#"{"EventTime":"2026-01-01T00:00:01.5Z","PatientId":7}"#, &plan()).unwrap();
    assert_eq!(d.timestamp, Some(1_767_225_601_500));
    let d = decode(br#"{"EventTime":"2026-01-01T01:00:00+01:00","PatientId":7}"#, &plan()).unwrap();
    assert_eq!(d.timestamp, Some(1_767_225_600_000));
}

#[test]
fn times_outside_the_range_are_refused_by_field_without_the_value() {
    let tiny = TimeRange { min: -10, max: 10 };
    for (text, ok) in [
        (format!("{}", i64::MAX), false),
        (format!("{}", i64::MIN), false),
        (format!("{}", u64::MAX), false),
        ("1e300".to_string(), false),
        ("-1e300".to_string(), false),
        ("\"+300000-01-01T00:00:00Z\"".to_string(), false),
        ("9467000000000000".to_string(), false),
        ("253402300800000".to_string(), false),
        ("253402300799999".to_string(), true),
        ("-2208988800000".to_string(), true),
        ("-2208988800001".to_string(), false),
        ("\"1899-12-31T23:59:59.999Z\"".to_string(), false),
        ("\"1900-01-01T00:00:00Z\"".to_string(), true),
    ] {
        let line = format!(r#"{{"EventTime":{text},"PatientId":"a"}}"#);
        let got = decode(line.as_bytes(), &plan());
        assert_eq!(got.is_ok(), ok, "{text}: {got:?}");
        if let Err(e) = got {
            let msg = e.to_string();
            // chrono refuses a six-digit year before the range is asked.
            if !text.contains("300000-") {
                assert!(msg.starts_with("field `EventTime`: the time is outside the accepted range 1900-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z"), "{msg}");
                assert!(!msg.contains(text.trim_matches('"')), "the value is not echoed: {msg}");
            }
            assert_eq!(e.reason(), "invalid-event");
        }
    }
    let narrow = FieldPlan { time_range: tiny, ..plan() };
    assert!(decode(br#"{"EventTime":10,"PatientId":"a"}"#, &narrow).is_ok());
    assert!(decode(br#"{"EventTime":11,"PatientId":"a"}"#, &narrow).is_err());
    // Also when the time is a column a query reads.
    let column = FieldPlan { columns: Some(std::sync::Arc::from(vec!["EventTime".to_string()])), ..narrow };
    assert!(decode(br#"{"EventTime":-11,"PatientId":"a"}"#, &column).is_err());
}

#[test]
fn escaped_field_names_still_match() {
    let d = decode(br#"{"Event\u0054ime":5,"PatientId":"a"}"#, &plan()).unwrap();
    assert_eq!(d.timestamp, Some(5));
}

#[test]
fn errors_name_the_field() {
    let e = decode(br#"{"PatientId":"P1"}"#, &plan()).unwrap_err();
    assert_eq!(e.to_string(), "missing field `EventTime`");
    assert_eq!(e.reason(), "invalid-event");
    let e = decode(br#"{"EventTime":"yesterday","PatientId":"P1"}"#, &plan()).unwrap_err();
    assert!(e.to_string().starts_with("field `EventTime`: not an RFC 3339 time ("), "{e}");
    assert!(!e.to_string().contains("yesterday"), "no value in an error: {e}");
    let e = decode(br#"{"EventTime":{"secret":"P-SECRET"},"PatientId":"P1"}"#, &plan()).unwrap_err();
    assert!(!e.to_string().contains("P-SECRET"), "{e}");
    let e = decode(br#"{"EventTime":1,"PatientId":"P1"} "P-SECRET""#, &plan()).unwrap_err();
    assert!(!e.to_string().contains("P-SECRET"), "{e}");
    let e = decode(br#""P-SECRET""#, &plan()).unwrap_err();
    assert!(!e.to_string().contains("P-SECRET"), "{e}");
    assert_eq!(
        without_values(r#"invalid type: string "x1", expected `y` at column 3"#),
        r#"invalid type: string "…", expected `…` at column 3"#
    );
    assert_eq!(without_values("expected `,` or `}` at column 9"), "expected `,` or `}` at column 9");
    assert_eq!(
        without_values(r#"invalid type: string "x\"4111111111111111", expected a map"#),
        r#"invalid type: string "…", expected a map"#
    );
    assert_eq!(without_values(r#"string "a\\" then "b""#), r#"string "…" then "…""#);
    let e = decode(br#"{"EventTime":1,"PatientId":null}"#, &plan()).unwrap_err();
    assert_eq!(e.to_string(), "field `PatientId`: expected a string or a number, found null");
}

#[test]
fn malformed_json_is_refused_with_its_position() {
    for bad in [&br#"{"a":1"#[..], br#"{"a":1} trailing"#, b"[1,2]", b"", b"nul"] {
        let e = decode(bad, &FieldPlan::default()).unwrap_err();
        assert_eq!(e.reason(), "invalid-json", "{e}");
    }
    let e = decode(br#"{"a":tru}"#, &FieldPlan::default()).unwrap_err();
    assert_eq!(e.to_string(), "malformed JSON: expected ident at column 9");
}

#[test]
fn without_a_plan_any_object_passes() {
    assert_eq!(decode(br#"{}"#, &FieldPlan::default()).unwrap(), Decoded { timestamp: None, key: None });
}

use proptest::strategy::Strategy;

/// A JSON-ish string: fragments of events, broken and whole.
fn jsonish() -> impl proptest::strategy::Strategy<Value = String> {
    let piece = proptest::prop_oneof![
        proptest::strategy::Just("{".to_string()),
        proptest::strategy::Just("}".to_string()),
        proptest::strategy::Just("[".to_string()),
        proptest::strategy::Just("]".to_string()),
        proptest::strategy::Just(",".to_string()),
        proptest::strategy::Just(":".to_string()),
        proptest::strategy::Just("\"EventTime\"".to_string()),
        proptest::strategy::Just("\"PatientId\"".to_string()),
        proptest::strategy::Just("\"Event\\u0054ime\"".to_string()),
        proptest::strategy::Just("null".to_string()),
        proptest::strategy::Just("true".to_string()),
        proptest::strategy::Just("\"\\ud800\"".to_string()),
        proptest::strategy::Just("1e999".to_string()),
        proptest::strategy::Just("-0".to_string()),
        proptest::num::i64::ANY.prop_map(|n| n.to_string()),
        proptest::num::f64::ANY.prop_map(|n| n.to_string()),
        "\"[0-9T:.+Z-]{0,30}\"",
        "\\PC{0,8}",
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest::proptest! {
    /// Fuzzing the decoder (issue 19): any bytes, any near-JSON, give a
    /// decoded event with its time inside the range or an error with a
    /// reason and a message — never a panic.
    #[test]
    fn any_input_decodes_or_is_refused_with_a_reason(
        text in jsonish(),
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        columns: bool,
    ) {
        let mut plan = plan();
        if columns {
            plan.columns = Some(std::sync::Arc::from(vec!["EventTime".to_string(), "PatientId".to_string(), "x".to_string()]));
        }
        for input in [text.as_bytes(), &bytes[..]] {
            match decode(input, &plan) {
                Ok(d) => {
                    let t = d.timestamp.unwrap();
                    proptest::prop_assert!(plan.time_range.min <= t && t <= plan.time_range.max);
                }
                Err(e) => {
                    proptest::prop_assert!(["invalid-json", "invalid-event"].contains(&e.reason()));
                    proptest::prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn the_fast_time_path_agrees_with_chrono(
        y in 0u32..10000, mo in 0u32..14, d in 0u32..33, h in 0u32..25, mi in 0u32..61, sec in 0u32..61,
        ms in proptest::option::of(0u32..1000),
    ) {
        let text = match ms {
            Some(ms) => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{ms:03}Z"),
            None => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}Z"),
        };
        let chrono = chrono::DateTime::parse_from_rfc3339(&text).ok().map(|t| t.timestamp_millis());
        let fast = utc_millis(text.as_bytes());
        // The fast path may decline (leap seconds), never disagree.
        proptest::prop_assert!(fast.is_none() || fast == chrono, "{text}: {fast:?} vs {chrono:?}");
        if sec < 60 {
            proptest::prop_assert_eq!(fast, chrono, "{}", text);
        }
    }
}
