//! The National Early Warning Score 2 (Royal College of Physicians, 2017),
//! SpO2 scale 1. Each parameter scores 0–3; the sum and the single highest
//! score give the clinical risk.

use serde::Serialize;

/// The vital signs NEWS2 reads.
pub struct Vitals {
    pub respiratory_rate: f64,
    pub spo2: f64,
    pub on_oxygen: bool,
    pub systolic_bp: f64,
    pub heart_rate: f64,
    /// A, C, V, P or U (ACVPU): anything but Alert scores 3.
    pub consciousness: char,
    pub temperature: f64,
}

/// What was observed: a measurement, or a level ("oxygen", "V", ...).
#[derive(Serialize, Clone, Copy)]
#[serde(untagged)]
pub enum Reading {
    Number(f64),
    Level(&'static str),
}

/// One parameter's value and score.
#[derive(Serialize, Clone, Copy)]
pub struct Part {
    pub parameter: &'static str,
    pub value: Reading,
    pub score: u8,
}

pub fn respiratory_rate(v: f64) -> u8 {
    match v {
        v if v <= 8.0 => 3,
        v if v <= 11.0 => 1,
        v if v <= 20.0 => 0,
        v if v <= 24.0 => 2,
        _ => 3,
    }
}

pub fn spo2_scale1(v: f64) -> u8 {
    match v {
        v if v <= 91.0 => 3,
        v if v <= 93.0 => 2,
        v if v <= 95.0 => 1,
        _ => 0,
    }
}

pub fn systolic_bp(v: f64) -> u8 {
    match v {
        v if v <= 90.0 => 3,
        v if v <= 100.0 => 2,
        v if v <= 110.0 => 1,
        v if v <= 219.0 => 0,
        _ => 3,
    }
}

pub fn pulse(v: f64) -> u8 {
    match v {
        v if v <= 40.0 => 3,
        v if v <= 50.0 => 1,
        v if v <= 90.0 => 0,
        v if v <= 110.0 => 1,
        v if v <= 130.0 => 2,
        _ => 3,
    }
}

pub fn temperature(v: f64) -> u8 {
    match v {
        v if v <= 35.0 => 3,
        v if v <= 36.0 => 1,
        v if v <= 38.0 => 0,
        v if v <= 39.0 => 1,
        _ => 2,
    }
}

/// The score of every parameter, in the chart's order.
pub fn parts(v: &Vitals) -> [Part; 7] {
    let num = |parameter, value, score| Part { parameter, value: Reading::Number(value), score };
    let level = |parameter, value, score| Part { parameter, value: Reading::Level(value), score };
    let acvpu = match v.consciousness {
        'A' => "A",
        'C' => "C",
        'V' => "V",
        'P' => "P",
        _ => "U",
    };
    [
        num("RespiratoryRate", v.respiratory_rate, respiratory_rate(v.respiratory_rate)),
        num("SpO2", v.spo2, spo2_scale1(v.spo2)),
        level("OnOxygen", if v.on_oxygen { "oxygen" } else { "air" }, if v.on_oxygen { 2 } else { 0 }),
        num("SystolicBP", v.systolic_bp, systolic_bp(v.systolic_bp)),
        num("HeartRate", v.heart_rate, pulse(v.heart_rate)),
        level("Consciousness", acvpu, if acvpu == "A" { 0 } else { 3 }),
        num("Temperature", v.temperature, temperature(v.temperature)),
    ]
}

/// The clinical risk band: high (7+), medium (5–6), low-medium (a single
/// parameter scoring 3), low.
pub fn risk(total: u8, parts: &[Part]) -> &'static str {
    match total {
        7.. => "high",
        5..=6 => "medium",
        _ if parts.iter().any(|p| p.score == 3) => "low-medium",
        _ => "low",
    }
}
