//! Group keys as bytes: each value is tagged, numbers by their f64 bits
//! (so 1 and 1.0 are one group), strings escaped and terminated, so that
//! bytewise order sorts by the first key, then the next.

use super::eval::Value;
use std::borrow::Cow;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const NUM: u8 = 3;
const STR: u8 = 4;
const NESTED: u8 = 5;

/// Appends the encoding of `v` to `out`.
pub fn encode(v: &Value<'_>, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Num(n) => {
            out.push(NUM);
            let n = if *n == 0.0 { 0.0 } else { *n }; // -0 and 0 are one group
            // Order-preserving bits: flip the sign bit of positives, all bits of negatives.
            let bits = n.to_bits();
            let ordered = if bits >> 63 == 0 { bits | 1 << 63 } else { !bits };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::Str(s) => {
            out.push(STR);
            for &b in s.as_bytes() {
                out.push(b);
                if b == 0 {
                    out.push(0xff);
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
        Value::Nested => out.push(NESTED),
    }
}

/// The values of an encoded key, in order.
pub fn decode(mut bytes: &[u8]) -> Vec<Value<'static>> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        out.push(match tag {
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            NUM => {
                let (raw, rest) = bytes.split_at(8);
                bytes = rest;
                let ordered = u64::from_be_bytes(raw.try_into().expect("8 bytes"));
                let bits = if ordered >> 63 == 1 { ordered & !(1 << 63) } else { !ordered };
                Value::Num(f64::from_bits(bits))
            }
            STR => {
                let mut s = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == 0 {
                        if bytes[i + 1] == 0 {
                            i += 2;
                            break;
                        }
                        s.push(0);
                        i += 2;
                    } else {
                        s.push(bytes[i]);
                        i += 1;
                    }
                }
                bytes = &bytes[i..];
                Value::Str(Cow::Owned(String::from_utf8(s).expect("keys are encoded from strings")))
            }
            NESTED => Value::Nested,
            _ => Value::Null,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value<'static>> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>().prop_filter("finite", |n| n.is_finite()).prop_map(Value::Num),
            ".*".prop_map(|s: String| Value::Str(Cow::Owned(s))),
        ]
    }

    proptest! {
        #[test]
        fn keys_round_trip_and_sort_like_their_values(a in proptest::collection::vec(value(), 1..4), b in proptest::collection::vec(value(), 1..4)) {
            let enc = |vs: &[Value<'_>]| { let mut out = Vec::new(); for v in vs { encode(v, &mut out); } out };
            let (ea, eb) = (enc(&a), enc(&b));
            let norm = |vs: &[Value<'static>]| vs.iter().map(|v| match v { Value::Num(n) if *n == 0.0 => Value::Num(0.0), v => v.clone() }).collect::<Vec<_>>();
            prop_assert_eq!(decode(&ea), norm(&a));
            // Same first value kind and number: the encoding orders like the numbers.
            if let (Value::Num(x), Value::Num(y)) = (&a[0], &b[0]) && x != y {
                prop_assert_eq!(ea.cmp(&eb), x.partial_cmp(y).unwrap());
            }
            if let (Value::Str(x), Value::Str(y)) = (&a[0], &b[0]) && x != y {
                prop_assert_eq!(ea.cmp(&eb), x.cmp(y));
            }
        }
    }
}
