//! The model's features, computed exactly as `examples/fraud-detection/train.py`
//! computes them for training (the end-to-end test compares the two).

use foldhash::HashMap;
use serde::Deserialize;
use std::collections::VecDeque;

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

/// Each card's recent transactions. The host keeps them (keyed state, under
/// the name `card:<id>`), so they survive a restart, a failed call and a
/// hot swap; the instance keeps a cache of them, which is dropped whenever
/// the instance is (after a failure, at a swap), so it never runs ahead of
/// the host's copy.
#[derive(Default)]
pub struct Velocity {
    cards: HashMap<String, Card>,
}

/// A card's transactions of the last two hours, sorted by event time, and
/// running totals of those in the hour up to the newest: in time order an
/// event costs O(1) (amortized) and touches only the ends of the queue.
#[derive(Default)]
struct Card {
    /// (event time ms, amount in cents).
    entries: VecDeque<(i64, i64)>,
    /// First entry inside (newest − 1 h, newest], and the cents from there on.
    lo: usize,
    cents: i64,
}

impl Velocity {
    /// The features of `tx` at event time `t`, then remembers it:
    /// amount, merchant risk, country risk, and over the card's earlier
    /// transactions with time in (t − 1 h, t]: their count, their amount
    /// (summed in whole cents), and seconds since the latest at or before t.
    pub fn features(
        &mut self,
        tables: &RiskTables,
        tx: &Transaction<'_>,
        t: i64,
        event: &weir_plugin_sdk::Event<'_>,
    ) -> [f32; COUNT] {
        let name = format!("card:{}", tx.card_id);
        let card = match self.cards.get_mut(tx.card_id) {
            Some(c) => c,
            None => {
                let kept = weir_plugin_sdk::state::get(event, &name).and_then(|b| Card::decode(&b));
                self.cards.entry(tx.card_id.to_string()).or_insert(kept.unwrap_or_default())
            }
        };
        let cents = (tx.amount * 100.0).round() as i64;
        let (count, sum, latest) = card.add(t, cents);
        weir_plugin_sdk::state::put(event, &name, &card.encode());
        let since = latest.map_or(NO_PREVIOUS_S, |l| ((t - l) as f64 / 1000.0).min(NO_PREVIOUS_S));
        [
            tx.amount as f32,
            tables.merchant_risk.get(tx.merchant_category).copied().unwrap_or(0.5),
            tables.country_risk.get(tx.country).copied().unwrap_or(0.5),
            count as f32,
            (sum as f64 / 100.0) as f32,
            since as f32,
        ]
    }
}

impl Card {
    /// `lo` and `cents` (8 bytes each), then (time, cents) per entry.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 16 * self.entries.len());
        out.extend_from_slice(&(self.lo as u64).to_le_bytes());
        out.extend_from_slice(&self.cents.to_le_bytes());
        for (t, c) in &self.entries {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Card> {
        if bytes.len() < 16 || bytes.len() % 16 != 0 {
            return None;
        }
        let word = |i: usize| i64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let entries: VecDeque<(i64, i64)> = (1..bytes.len() / 16).map(|k| (word(2 * k), word(2 * k + 1))).collect();
        let lo = word(0) as usize;
        (lo <= entries.len()).then_some(Card { entries, lo, cents: word(1) })
    }

    /// (count, cents, latest time) of the entries in (t − 1 h, t], then adds (t, cents).
    fn add(&mut self, t: i64, cents: i64) -> (usize, i64, Option<i64>) {
        let e = &mut self.entries;
        let result = match e.back() {
            Some(&(newest, _)) if t < newest => {
                // Out of order: count the window by search, insert in place.
                let lo = e.partition_point(|&(ts, _)| ts <= t - HOUR_MS);
                let hi = e.partition_point(|&(ts, _)| ts <= t);
                let sum = e.range(lo..hi).map(|&(_, c)| c).sum();
                let latest = hi.checked_sub(1).map(|i| e[i].0);
                e.insert(hi, (t, cents));
                if t > newest - HOUR_MS {
                    self.cents += cents;
                } else {
                    self.lo += 1;
                }
                (hi - lo, sum, latest)
            }
            newest => {
                // In order: slide the window to (t − 1 h, t].
                while self.lo < e.len() && e[self.lo].0 <= t - HOUR_MS {
                    self.cents -= e[self.lo].1;
                    self.lo += 1;
                }
                let result = (e.len() - self.lo, self.cents, newest.map(|&(ts, _)| ts));
                e.push_back((t, cents));
                self.cents += cents;
                result
            }
        };
        let newest = e.back().map_or(t, |&(ts, _)| ts);
        while self.lo > 0 && e.front().is_some_and(|&(ts, _)| ts <= newest - KEEP_MS) {
            e.pop_front();
            self.lo -= 1;
        }
        result
    }
}
