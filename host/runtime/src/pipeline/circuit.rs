//! The circuit breaker of a plugin step: closed → (N consecutive failed
//! batches) → open → (cool-down) → half-open → one trial batch → closed or
//! open again.

use crate::deploy::CircuitState;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use weir_config::CircuitSpec;
use weir_core::metrics::PluginMetrics;
use weir_core::metrics::events::{Circuit as Event, InternalEvent};

pub struct Circuit {
    failures: u32,
    cool_down: Duration,
    consecutive: u32,
    state: State,
    step: Arc<str>,
    /// Shown by the admin API.
    shared: Arc<AtomicU8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

impl Circuit {
    pub fn new(spec: &CircuitSpec, step: Arc<str>, shared: Arc<AtomicU8>) -> Self {
        Circuit {
            failures: spec.failures,
            cool_down: spec.cool_down,
            consecutive: 0,
            state: State::Closed,
            step,
            shared,
        }
    }

    /// Whether the next batch may call the plugin; turns open into
    /// half-open once the cool-down is over.
    pub fn admits(&mut self, now: Instant, m: &PluginMetrics) -> bool {
        match self.state {
            State::Closed | State::HalfOpen => true,
            State::Open { until } if now >= until => {
                self.set(State::HalfOpen);
                Event::HalfOpen { metrics: m, step: &self.step }.emit();
                true
            }
            State::Open { .. } => false,
        }
    }

    pub fn succeeded(&mut self, m: &PluginMetrics) {
        self.consecutive = 0;
        if self.state == State::HalfOpen {
            self.set(State::Closed);
            Event::Closed { metrics: m, step: &self.step, trial_passed: true }.emit();
        }
    }

    pub fn failed(&mut self, now: Instant, m: &PluginMetrics) {
        self.consecutive += 1;
        let trips = self.state == State::HalfOpen || (self.failures > 0 && self.consecutive >= self.failures);
        if trips && self.failures > 0 {
            self.set(State::Open { until: now + self.cool_down });
            let (step, failed_batches, cool_down) = (&*self.step, self.consecutive, self.cool_down);
            Event::Opened { metrics: m, step, failed_batches, cool_down }.emit();
        }
    }

    /// A new version starts with a closed circuit.
    pub fn reset(&mut self, m: &PluginMetrics) {
        self.consecutive = 0;
        self.set(State::Closed);
        Event::Closed { metrics: m, step: &self.step, trial_passed: false }.emit();
    }

    /// When the open circuit tries again, for dead-letter details.
    pub fn retry_in(&self, now: Instant) -> Duration {
        match self.state {
            State::Open { until } => until.saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }

    /// The state, as the admin API shows it; the metric follows in the event.
    fn set(&mut self, state: State) {
        self.state = state;
        let shown = match state {
            State::Closed => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen => CircuitState::HalfOpen,
        };
        self.shared.store(shown as u8, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_failures_tries_after_the_cool_down_and_closes_on_success() {
        let m = weir_core::metrics::Metrics::new("t").plugin("s");
        let spec = CircuitSpec { failures: 3, cool_down: Duration::from_secs(10), fallback: None };
        let shared = Arc::new(AtomicU8::new(0));
        let mut c = Circuit::new(&spec, "s".into(), shared.clone());
        let t0 = Instant::now();
        c.failed(t0, &m);
        c.failed(t0, &m);
        c.succeeded(&m);
        c.failed(t0, &m);
        c.failed(t0, &m);
        assert!(c.admits(t0, &m), "a success in between resets the count");
        c.failed(t0, &m);
        assert!(!c.admits(t0 + Duration::from_secs(9), &m), "open during the cool-down");
        assert_eq!((m.circuit_opens.get(), shared.load(Ordering::Relaxed)), (1, 1));
        assert!(c.admits(t0 + Duration::from_secs(10), &m), "half-open after it");
        assert_eq!(shared.load(Ordering::Relaxed), 2);
        c.failed(t0 + Duration::from_secs(10), &m);
        assert!(!c.admits(t0 + Duration::from_secs(19), &m), "a failed trial opens it again");
        assert_eq!(m.circuit_opens.get(), 2);
        assert!(c.admits(t0 + Duration::from_secs(20), &m));
        c.succeeded(&m);
        assert_eq!((shared.load(Ordering::Relaxed), m.circuit_state.get()), (0, 0), "a good trial closes it");
        c.failed(t0, &m);
        assert!(c.admits(t0, &m), "closed again: one failure does not open it");
    }

    #[test]
    fn zero_failures_never_opens() {
        let m = weir_core::metrics::Metrics::new("t").plugin("s");
        let spec = CircuitSpec { failures: 0, cool_down: Duration::from_secs(10), fallback: None };
        let mut c = Circuit::new(&spec, "s".into(), Arc::new(AtomicU8::new(0)));
        let t0 = Instant::now();
        for _ in 0..100 {
            c.failed(t0, &m);
        }
        assert!(c.admits(t0, &m));
    }
}
