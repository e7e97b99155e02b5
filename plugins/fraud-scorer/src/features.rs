//! The model's features, computed exactly as `examples/fraud-detection/train.py`
//! computes them for training (the end-to-end test compares the two).

use serde::Deserialize;
use std::collections::HashMap;

pub const COUNT: usize = 6;
const HOUR_MS: i64 = 3_600_000;
const NO_PREVIOUS_S: f64 = 86_400.0;
/// History older than this behind the newest transaction of a card is
/// dropped; it can only matter to an event more than an hour late.
const KEEP_MS: i64 = 2 * HOUR_MS;

/// Risk tables from the plugin's config.
#[derive(Deserialize)]
pub struct RiskTables {
    pub merchant_risk: HashMap<String, f32>,
    pub country_risk: HashMap<String, f32>,
}

/// The fields of a transaction the features read.
#[derive(Deserialize)]
pub struct Transaction<'a> {
    #[serde(borrow)]
    pub transaction_id: &'a str,
    pub card_id: &'a str,
    pub amount: f64,
    pub merchant_category: &'a str,
    pub country: &'a str,
}

/// Each card's earlier transactions: (event time ms, amount). Kept in the
/// instance's memory, so it starts empty after a restart; the keyed-state
/// API (weir:plugin 0.2) will make it durable.
#[derive(Default)]
pub struct Velocity {
    cards: HashMap<String, Vec<(i64, f64)>>,
}

impl Velocity {
    /// The features of `tx` at event time `t`, then remembers it:
    /// amount, merchant risk, country risk, and over the card's earlier
    /// transactions (arrival order) with time in (t − 1 h, t]: their count,
    /// their amount, and seconds since the latest at or before t.
    pub fn features(&mut self, tables: &RiskTables, tx: &Transaction<'_>, t: i64) -> [f32; COUNT] {
        let seen = match self.cards.get_mut(tx.card_id) {
            Some(s) => s,
            None => self.cards.entry(tx.card_id.to_string()).or_default(),
        };
        let (mut count, mut sum, mut latest) = (0u32, 0.0f64, None::<i64>);
        for &(ts, amount) in seen.iter() {
            if t - HOUR_MS < ts && ts <= t {
                count += 1;
                sum += amount;
            }
            if ts <= t {
                latest = Some(latest.map_or(ts, |l| l.max(ts)));
            }
        }
        let since = latest.map_or(NO_PREVIOUS_S, |l| ((t - l) as f64 / 1000.0).min(NO_PREVIOUS_S));
        let newest = seen.iter().map(|&(ts, _)| ts).max().unwrap_or(t).max(t);
        seen.retain(|&(ts, _)| ts > newest - KEEP_MS);
        seen.push((t, tx.amount));
        [
            tx.amount as f32,
            tables.merchant_risk.get(tx.merchant_category).copied().unwrap_or(0.5),
            tables.country_risk.get(tx.country).copied().unwrap_or(0.5),
            count as f32,
            sum as f32,
            since as f32,
        ]
    }
}
