//! Risk from patient-monitoring window results: a query step computes each
//! patient's average heart rate and highest temperature per window; this
//! plugin turns them into a risk level with its reasons.
//!
//! Score: average heart rate above 100 scores 1, above 120 scores 2;
//! highest temperature of 38.0 °C or more scores 1, of 39.0 °C or more
//! scores 2. A score of 3 or more is "high", 2 "medium"; lower scores emit
//! nothing. Results without the two fields are refused.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use weir_plugin_sdk::{Batch, Outcomes, Processor, export_processor};

struct WindowRisk;

#[derive(Deserialize)]
struct WindowResult<'a> {
    #[serde(rename = "PatientId", borrow)]
    patient: Cow<'a, str>,
    #[serde(borrow)]
    window_end: Cow<'a, str>,
    #[serde(rename = "AvgHeartRate")]
    avg_heart_rate: Option<f64>,
    #[serde(rename = "MaxTemperature")]
    max_temperature: Option<f64>,
}

#[derive(Serialize)]
struct Risk<'a> {
    patient_id: &'a str,
    window_end: &'a str,
    risk: &'static str,
    score: u32,
    reasons: Vec<String>,
}

impl Processor for WindowRisk {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(WindowRisk)
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        for event in batch {
            let r: WindowResult = match serde_json::from_slice(event.payload()) {
                Ok(r) => r,
                Err(e) => {
                    out.reject(&event, e.to_string());
                    continue;
                }
            };
            let (Some(hr), Some(temp)) = (r.avg_heart_rate, r.max_temperature) else {
                out.reject(&event, "a window result needs AvgHeartRate and MaxTemperature");
                continue;
            };
            let mut reasons = Vec::new();
            let hr_score = if hr > 120.0 { 2 } else { u32::from(hr > 100.0) };
            if hr_score > 0 {
                reasons.push(format!("average heart rate {hr:.1}"));
            }
            let temp_score = if temp >= 39.0 { 2 } else { u32::from(temp >= 38.0) };
            if temp_score > 0 {
                reasons.push(format!("temperature {temp:.1}"));
            }
            let score = hr_score + temp_score;
            let risk = match score {
                0 | 1 => continue,
                2 => "medium",
                _ => "high",
            };
            out.emit_json(&event, &Risk { patient_id: &r.patient, window_end: &r.window_end, risk, score, reasons });
        }
    }
}

export_processor!(WindowRisk);
