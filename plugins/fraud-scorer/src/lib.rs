//! Fraud scoring with a model the host runs: features for the whole batch,
//! one `infer` call, an alert for each transaction scored at or above the
//! threshold (or a score for every transaction with `"emit": "all"`).
//!
//! Config (JSON): `model` (the name in the pipeline's `[models]`),
//! `threshold` (0..1), `emit` ("alerts" or "all"), `merchant_risk` and
//! `country_risk` (tables; a value not listed counts 0.5). The model takes
//! `features: float32[?,6]` and gives `label: int64[?]` and
//! `probabilities: float32[?,2]` (scikit-learn through skl2onnx, zipmap off).

mod features;

use features::{RiskTables, Transaction, Velocity};
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
    #[serde(flatten)]
    tables: RiskTables,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Emit {
    #[default]
    Alerts,
    All,
}

struct FraudScorer {
    config: Config,
    velocity: Velocity,
}

#[derive(Serialize)]
struct Scored<'a> {
    transaction_id: &'a str,
    card_id: &'a str,
    amount: f64,
    merchant_category: &'a str,
    country: &'a str,
    fraud: bool,
    score: f32,
    label: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    features: Option<&'a [f32]>,
    model: &'a str,
    model_version: &'a str,
}

impl Processor for FraudScorer {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = serde_json::from_str(config).map_err(|e| format!("fraud-scorer config: {e}"))?;
        if !(0.0..=1.0).contains(&config.threshold) {
            return Err(format!("fraud-scorer config: threshold {} is not between 0 and 1", config.threshold));
        }
        Ok(FraudScorer { config, velocity: Velocity::default() })
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        let mut rows = Vec::with_capacity(batch.len());
        let mut data = Vec::with_capacity(batch.len() * features::COUNT);
        for event in batch {
            match event.json::<Transaction<'_>>() {
                Ok(tx) => {
                    data.extend_from_slice(&self.velocity.features(
                        &self.config.tables,
                        &tx,
                        event.timestamp_ms(),
                        &event,
                    ));
                    rows.push((event, tx));
                }
                Err(e) => out.reject(&event, format!("not a card transaction: {e}")),
            }
        }
        if rows.is_empty() {
            return;
        }
        let input = Tensor::float32_rows("features", rows.len(), data);
        let scored = infer(&self.config.model, std::slice::from_ref(&input)).and_then(|inference| {
            let labels = inference.output("label")?.as_i64().ok_or("output `label` is not int64")?.to_vec();
            let p = inference.output("probabilities")?.as_f32().ok_or("output `probabilities` is not float32")?;
            let fraud: Vec<f32> = p.chunks_exact(2).map(|c| c[1]).collect();
            if labels.len() != rows.len() || fraud.len() != rows.len() {
                return Err(format!("the model scored {} of {} rows", fraud.len(), rows.len()));
            }
            Ok((labels, fraud, inference.version))
        });
        let (labels, fraud, version) = match scored {
            Ok(s) => s,
            Err(e) => {
                for (event, _) in &rows {
                    out.reject(event, format!("model `{}`: {e}", self.config.model));
                }
                return;
            }
        };
        let all = self.config.emit == Emit::All;
        let feats = input.as_f32().expect("built as float32");
        for (i, (event, tx)) in rows.iter().enumerate() {
            let alert = fraud[i] >= self.config.threshold;
            if !(alert || all) {
                continue;
            }
            let scored = Scored {
                transaction_id: tx.transaction_id,
                card_id: tx.card_id,
                amount: tx.amount,
                merchant_category: tx.merchant_category,
                country: tx.country,
                fraud: alert,
                score: fraud[i],
                label: labels[i],
                features: all.then(|| &feats[i * features::COUNT..(i + 1) * features::COUNT]),
                model: &self.config.model,
                model_version: &version,
            };
            out.emit_json(event, &scored);
        }
    }
}

export_processor!(FraudScorer);
