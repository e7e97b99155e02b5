//! A token bucket: `burst` at once, then `per_second`, counting what it
//! refuses so the next admitted item can say how many were dropped before
//! it. Plugin log lines and the audit log's sample of refused requests
//! are bounded by it.

use std::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    /// Refused since the last one admitted.
    suppressed: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: f64, burst: f64) -> Self {
        TokenBucket { per_second, burst, tokens: burst, refilled: Instant::now(), suppressed: 0 }
    }

    /// `Some(refused before it)` when one more may pass now, else `None`.
    pub fn admit(&mut self) -> Option<u64> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * self.per_second).min(self.burst);
        self.refilled = now;
        if self.tokens < 1.0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_burst_passes_then_the_rest_is_counted() {
        let mut b = super::TokenBucket::new(0.0, 3.0);
        assert_eq!((b.admit(), b.admit(), b.admit()), (Some(0), Some(0), Some(0)));
        assert_eq!((b.admit(), b.admit()), (None, None));
        assert_eq!(b.suppressed, 2);
    }
}
