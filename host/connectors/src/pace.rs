//! What the synthetic sources (generator, nexmark) share: the event time
//! of their first event from an RFC 3339 `start`, and pacing to a rate.

use std::time::Instant;
use weir_config::{ConfigError, SourceSpec};

/// `start` (RFC 3339) as epoch milliseconds; `None` when not given.
pub fn start_ms(s: &SourceSpec, start: Option<&str>) -> Result<Option<i64>, ConfigError> {
    let Some(t) = start else { return Ok(None) };
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| Some(t.timestamp_millis()))
        .map_err(|e| s.options.error("start", format!("`{t}` is not an RFC 3339 time ({e})")))
}

/// A rate limit counted from when the source started (or resumed).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Events per second; 0 is as fast as possible.
    pub rate: u64,
    pub started: Instant,
    /// Events produced before this run (a resumed source).
    pub resumed_at: u64,
}

impl Pace {
    pub fn new(rate: u64) -> Self {
        Pace { rate, started: Instant::now(), resumed_at: 0 }
    }

    /// Events due by now, `produced` so far (all remaining when unthrottled).
    pub fn due(&self, produced: u64) -> u64 {
        if self.rate == 0 {
            return u64::MAX;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        ((elapsed * self.rate as f64) as u64).saturating_sub(produced - self.resumed_at)
    }
}
