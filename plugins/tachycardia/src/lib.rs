//! The README's five-minute plugin, kept here so that it is built and tested.

use serde::Deserialize;
use weir_plugin_sdk::{Batch, Outcomes, Processor, export_processor};

struct Tachycardia {
    threshold: f64,
}

#[derive(Deserialize)]
struct Vitals {
    #[serde(rename = "HeartRate")]
    heart_rate: Option<f64>,
}

impl Processor for Tachycardia {
    fn init(config: &str) -> Result<Self, String> {
        let threshold = if config.is_empty() { 100.0 } else { config.parse().map_err(|e| format!("{e}"))? };
        Ok(Tachycardia { threshold })
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        for event in batch {
            match event.json::<Vitals>() {
                Ok(Vitals { heart_rate: Some(hr) }) if hr > self.threshold => out.emit(&event, event.payload()),
                Ok(Vitals { heart_rate: Some(_) }) => {} // dropped on purpose
                Ok(_) => out.reject(&event, "missing field `HeartRate`"), // → dead letters
                Err(e) => out.reject(&event, e.to_string()),
            }
        }
    }
}

export_processor!(Tachycardia);
