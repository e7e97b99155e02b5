//! Reading the fields a query uses from one JSON event, in one pass,
//! borrowing strings from the event where they hold no escapes.

use super::eval::Value;
use crate::event::DecodeError;
use crate::event::decode::{FieldName, TimestampSeed, json_error};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// The fields to read, and the event-time field if the query names one.
#[derive(Debug, Clone)]
pub struct Extractor {
    fields: Vec<String>,
    timestamp: Option<String>,
}

impl Extractor {
    pub fn new(fields: Vec<String>, timestamp: Option<String>) -> Self {
        Extractor { fields, timestamp }
    }

    /// Fills `values` (one per field; missing fields are null) and returns
    /// the event time when the query names its field.
    pub fn extract<'a>(&self, bytes: &'a [u8], values: &mut Vec<Value<'a>>) -> Result<Option<i64>, DecodeError> {
        values.clear();
        values.resize(self.fields.len(), Value::Null);
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let ts = Fill { ex: self, values }.deserialize(&mut de).and_then(|ts| de.end().map(|()| ts));
        let ts = ts.map_err(json_error)?;
        match (&self.timestamp, ts) {
            (Some(field), None) => Err(DecodeError::MissingField(field.clone())),
            (_, ts) => Ok(ts),
        }
    }
}

struct Fill<'e, 'v, 'a> {
    ex: &'e Extractor,
    values: &'v mut Vec<Value<'a>>,
}

impl<'de> DeserializeSeed<'de> for Fill<'_, '_, 'de> {
    type Value = Option<i64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<i64>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_, '_, 'de> {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<i64>, A::Error> {
        let ts_field = self.ex.timestamp.as_deref();
        let mut ts = None;
        while let Some(name) = map.next_key::<FieldName<'de>>()? {
            if let Some(i) = self.ex.fields.iter().position(|f| name.is(Some(f))) {
                self.values[i] = map.next_value_seed(ValueSeed)?;
                if name.is(ts_field) {
                    // The time field is also selected: read it from the value.
                    let field = ts_field.unwrap_or_default();
                    ts = Some(time_of(&self.values[i], field)?);
                }
            } else if name.is(ts_field) {
                ts = Some(map.next_value_seed(TimestampSeed { field: ts_field.unwrap_or_default() })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(ts)
    }
}

pub(crate) fn time_of<E: de::Error>(v: &Value<'_>, field: &str) -> Result<i64, E> {
    let seed = TimestampSeed { field };
    match v {
        Value::Num(n) => seed.visit_f64(*n),
        Value::Str(s) => seed.visit_str(s),
        Value::Bool(b) => seed.visit_bool(*b),
        Value::Null => seed.visit_unit(),
        Value::Nested => {
            Err(crate::event::decode::bad_field(field, "expected epoch milliseconds or an RFC 3339 string"))
        }
    }
}

struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Num(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Num(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Num(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v.to_string())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Nested)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Nested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_fields_and_the_time() {
        let ex = Extractor::new(vec!["id".into(), "hr".into(), "tags".into(), "gone".into()], Some("t".into()));
        let mut v = Vec::new();
        let line = br#"{"id":"P\u00e9","hr":101.5,"t":"2026-01-01T00:00:00Z","tags":[1,{"a":2}],"x":null}"#;
        let ts = ex.extract(line, &mut v).unwrap();
        assert_eq!(ts, Some(1_767_225_600_000));
        assert_eq!(v, vec![Value::Str("Pé".into()), Value::Num(101.5), Value::Nested, Value::Null]);
        let e = ex.extract(br#"{"id":"a"}"#, &mut v).unwrap_err();
        assert_eq!(e.to_string(), "missing field `t`");
        let e = ex.extract(br#"{"id":"a","t":true}"#, &mut v).unwrap_err();
        assert!(e.to_string().starts_with("field `t`: expected epoch milliseconds"), "{e}");
        assert_eq!(ex.extract(br#"{"id":"a","t":1}x"#, &mut v).unwrap_err().reason(), "invalid-json");
    }

    #[test]
    fn a_selected_time_field_is_read_once() {
        let ex = Extractor::new(vec!["t".into()], Some("t".into()));
        let mut v = Vec::new();
        assert_eq!(ex.extract(br#"{"t":1500}"#, &mut v).unwrap(), Some(1500));
        assert_eq!(v, vec![Value::Num(1500.0)]);
    }
}
