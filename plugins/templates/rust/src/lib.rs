//! Vital-signs early warning: scores heart rate, respiration rate, SpO2 and
//! temperature on early-warning bands and sends an alert to the `alerts`
//! output when the total reaches the threshold (the step's `config`, 5 by
//! default). An event without one of the fields is refused with the reason.
//!
//! Build: `weir plugin build`; test: `weir plugin test . --input
//! sample/input.ndjson --expect sample/expected.ndjson`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use weir_plugin_sdk::{Batch, Event, Outcomes, Processor, export_processor};

struct VitalsAlert {
    threshold: u32,
}

/// The fields the rule reads, borrowed from the payload as raw JSON so that
/// a missing field and a field of the wrong type (`null` included) get
/// different reasons.
#[derive(Deserialize)]
struct Vitals<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    patient: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    hr: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    rr: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    spo2: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    temp: Option<&'a RawValue>,
}

/// A field that is there, even as `null` (which `Option` alone reads as absent).
fn present<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'a RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Serialize)]
struct Alert<'a> {
    patient: &'a RawValue,
    score: u32,
    level: &'static str,
}

/// Points for `value` on a scale: the first band whose upper edge is at or
/// above it, else the last score.
fn band(value: f64, edges: &[f64], scores: &[u32]) -> u32 {
    edges.iter().position(|&edge| value <= edge).map_or(scores[scores.len() - 1], |i| scores[i])
}

fn number(field: Option<&RawValue>, name: &str) -> Result<f64, String> {
    let raw = field.ok_or_else(|| format!("missing field `{name}`"))?.get();
    match raw.as_bytes()[0] {
        b'-' | b'0'..=b'9' => raw.parse().map_err(|_| format!("field `{name}` is not a number")),
        _ => Err(format!("field `{name}` is not a number")),
    }
}

fn score(v: &Vitals<'_>) -> Result<u32, String> {
    let hr = number(v.hr, "hr")?;
    let rr = number(v.rr, "rr")?;
    let spo2 = number(v.spo2, "spo2")?;
    let temp = number(v.temp, "temp")?;
    Ok(band(hr, &[40.0, 50.0, 90.0, 110.0, 130.0], &[3, 1, 0, 1, 2, 3])
        + band(rr, &[8.0, 11.0, 20.0, 24.0], &[3, 1, 0, 2, 3])
        + band(spo2, &[91.0, 93.0, 95.0], &[3, 2, 1, 0])
        + band(temp, &[35.0, 36.0, 38.0, 39.0], &[3, 1, 0, 1, 2]))
}

impl VitalsAlert {
    fn check(&self, event: &Event<'_>, out: &mut Outcomes) -> Result<(), String> {
        let vitals: Vitals<'_> = event.json().map_err(|e| format!("invalid event: {e}"))?;
        let patient = vitals.patient.ok_or("missing field `patient`")?;
        if !patient.get().starts_with('"') {
            return Err("field `patient` is not a string".into());
        }
        let score = score(&vitals)?;
        if score >= self.threshold {
            let level = if score >= 7 { "high" } else { "medium" };
            out.emit_json_to(event, "alerts", &Alert { patient, score, level });
        }
        Ok(())
    }
}

impl Processor for VitalsAlert {
    fn init(config: &str) -> Result<Self, String> {
        let threshold = match config.trim() {
            "" => 5,
            text => text.parse().map_err(|_| format!("config: the threshold must be a whole number, not `{text}`"))?,
        };
        Ok(VitalsAlert { threshold })
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        for event in batch {
            if let Err(reason) = self.check(&event, out) {
                out.reject(&event, reason);
            }
        }
    }
}

export_processor!(VitalsAlert);
