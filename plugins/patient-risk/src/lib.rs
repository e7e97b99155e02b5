//! Patient deterioration: the NEWS2 early-warning score from each vitals
//! event, plus the probability from a deterioration model the host runs on
//! the whole batch. An alert when NEWS2 says medium or high risk, a single
//! parameter scores 3, or the probability reaches the threshold; it carries
//! the score, the probability and the vitals that contributed.
//!
//! Config (JSON): `model` (name in `[models]`), `threshold` (0..1), `emit`
//! ("alerts" or "all"). The model takes `vitals: float32[?,5]` (HeartRate,
//! RespiratoryRate, SpO2, SystolicBP, Temperature) and gives `label` and
//! `probabilities: float32[?,2]`.

mod news2;

use news2::{Part, Vitals};
use serde::{Deserialize, Serialize};
use weir_plugin_sdk::models::{Tensor, infer};
use weir_plugin_sdk::{Batch, Outcomes, Processor, export_processor};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    model: String,
    threshold: f32,
    #[serde(default)]
    emit: Emit,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Emit {
    #[default]
    Alerts,
    All,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Event<'a> {
    #[serde(borrow)]
    PatientId: &'a str,
    #[serde(borrow, default)]
    EventTime: Option<&'a str>,
    HeartRate: f64,
    RespiratoryRate: f64,
    SpO2: f64,
    SystolicBP: f64,
    Temperature: f64,
    #[serde(default)]
    OnOxygen: bool,
    #[serde(borrow, default)]
    Consciousness: Option<&'a str>,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct Assessment<'a> {
    PatientId: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    EventTime: Option<&'a str>,
    alert: bool,
    news2: u8,
    risk: &'static str,
    /// Parameters that scored above 0.
    contributing: Vec<Part>,
    deterioration_probability: f32,
    model: &'a str,
    model_version: &'a str,
}

struct PatientRisk {
    config: Config,
}

impl Processor for PatientRisk {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = serde_json::from_str(config).map_err(|e| format!("patient-risk config: {e}"))?;
        if !(0.0..=1.0).contains(&config.threshold) {
            return Err(format!("patient-risk config: threshold {} is not between 0 and 1", config.threshold));
        }
        Ok(PatientRisk { config })
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        let mut rows = Vec::with_capacity(batch.len());
        let mut data = Vec::with_capacity(batch.len() * 5);
        for event in batch {
            let e = match event.json::<Event<'_>>() {
                Ok(e) => e,
                Err(err) => {
                    out.reject(&event, format!("not a vitals event NEWS2 can score: {err}"));
                    continue;
                }
            };
            let consciousness = match e.Consciousness.unwrap_or("A") {
                c @ ("A" | "C" | "V" | "P" | "U") => c.chars().next().expect("one letter"),
                other => {
                    out.reject(&event, format!("Consciousness `{other}` is not one of A, C, V, P, U (ACVPU)"));
                    continue;
                }
            };
            let vitals = Vitals {
                respiratory_rate: e.RespiratoryRate,
                spo2: e.SpO2,
                on_oxygen: e.OnOxygen,
                systolic_bp: e.SystolicBP,
                heart_rate: e.HeartRate,
                consciousness,
                temperature: e.Temperature,
            };
            data.extend([e.HeartRate, e.RespiratoryRate, e.SpO2, e.SystolicBP, e.Temperature].map(|v| v as f32));
            rows.push((event, e, news2::parts(&vitals)));
        }
        if rows.is_empty() {
            return;
        }
        let input = Tensor::float32_rows("vitals", rows.len(), data);
        let scored = infer(&self.config.model, std::slice::from_ref(&input)).and_then(|inference| {
            let p = inference.output("probabilities")?.as_f32().ok_or("output `probabilities` is not float32")?;
            let risk: Vec<f32> = p.chunks_exact(2).map(|c| c[1]).collect();
            if risk.len() != rows.len() {
                return Err(format!("the model scored {} of {} rows", risk.len(), rows.len()));
            }
            Ok((risk, inference.version))
        });
        let (probability, version) = match scored {
            Ok(s) => s,
            Err(e) => {
                for (event, _, _) in &rows {
                    out.reject(event, format!("model `{}`: {e}", self.config.model));
                }
                return;
            }
        };
        for (i, (event, e, parts)) in rows.iter().enumerate() {
            let total: u8 = parts.iter().map(|p| p.score).sum();
            let risk = news2::risk(total, parts);
            let alert = risk != "low" || probability[i] >= self.config.threshold;
            if !alert && self.config.emit == Emit::Alerts {
                continue;
            }
            let assessment = Assessment {
                PatientId: e.PatientId,
                EventTime: e.EventTime,
                alert,
                news2: total,
                risk,
                contributing: parts.iter().filter(|p| p.score > 0).copied().collect(),
                deterioration_probability: probability[i],
                model: &self.config.model,
                model_version: &version,
            };
            out.emit_json(event, &assessment);
        }
    }
}

export_processor!(PatientRisk);
