//! Drug-interaction check for medication orders.
//!
//! Input: an order `{"order_id", "patient_id", "drug", "active_medications": [..]}`.
//! Output: one alert per active medication that interacts with the new drug,
//! with the severity and rationale from the interaction table in the step's
//! config (`{"interactions": [{"drugs": [a, b], "severity", "rationale"}]}`).
//! An order without a drug, patient or medication list is rejected.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use weir_plugin_sdk::{Batch, Event, Outcomes, Processor, export_processor};

#[derive(Deserialize)]
struct Config {
    interactions: Vec<Interaction>,
}

#[derive(Deserialize)]
struct Interaction {
    drugs: [String; 2],
    severity: String,
    rationale: String,
}

#[derive(Deserialize)]
struct Order<'a> {
    #[serde(borrow)]
    order_id: Option<&'a str>,
    #[serde(borrow)]
    patient_id: Option<&'a str>,
    drug: Option<String>,
    active_medications: Option<Vec<String>>,
}

#[derive(Serialize)]
struct Alert<'a> {
    alert: &'static str,
    order_id: Option<&'a str>,
    patient_id: &'a str,
    drug: &'a str,
    interacts_with: &'a str,
    severity: &'a str,
    rationale: &'a str,
}

struct DrugInteraction {
    /// (drug, drug) in lower case, both orders → index into `interactions`.
    table: HashMap<(String, String), usize>,
    interactions: Vec<Interaction>,
}

fn normalize(drug: &str) -> String {
    drug.trim().to_lowercase()
}

impl Processor for DrugInteraction {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
        if config.interactions.is_empty() {
            return Err("invalid config: `interactions` is empty".into());
        }
        let mut table = HashMap::new();
        for (i, it) in config.interactions.iter().enumerate() {
            let (a, b) = (normalize(&it.drugs[0]), normalize(&it.drugs[1]));
            table.insert((a.clone(), b.clone()), i);
            table.insert((b, a), i);
        }
        Ok(DrugInteraction { table, interactions: config.interactions })
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        for event in batch {
            if let Err(reason) = self.check(&event, out) {
                out.reject(&event, reason);
            }
        }
    }
}

impl DrugInteraction {
    fn check(&self, event: &Event<'_>, out: &mut Outcomes) -> Result<(), String> {
        let order: Order = event.json().map_err(|e| format!("invalid order: {e}"))?;
        let patient_id = order.patient_id.ok_or("missing field `patient_id`")?;
        let drug = order.drug.ok_or("missing field `drug`")?;
        let active = order.active_medications.ok_or("missing field `active_medications`")?;
        let new_drug = normalize(&drug);
        for med in &active {
            if let Some(&i) = self.table.get(&(new_drug.clone(), normalize(med))) {
                let it = &self.interactions[i];
                let alert = Alert {
                    alert: "drug-interaction",
                    order_id: order.order_id,
                    patient_id,
                    drug: &drug,
                    interacts_with: med,
                    severity: &it.severity,
                    rationale: &it.rationale,
                };
                out.emit_json(event, &alert);
            }
        }
        Ok(())
    }
}

export_processor!(DrugInteraction);
