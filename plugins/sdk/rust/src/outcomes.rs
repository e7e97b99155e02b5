//! Outcomes of a batch, collected in the flat layout the host expects.

use crate::batch::Event;
use crate::bindings::weir::plugin::types;
use serde::Serialize;

/// The name of the output that feeds the next step.
pub const MAIN_OUTPUT: &str = "out";

/// What the plugin does with each event of a batch: emit to an output, or reject.
///
/// Emitting an input event's own payload unchanged (a filter, a router) sends
/// no bytes back: the event is marked as forwarded and the host reuses the
/// bytes it already holds.
pub struct Outcomes {
    outputs: Vec<String>,
    emitted: types::Emitted,
    rejected: Vec<types::Rejection>,
}

impl Outcomes {
    pub(crate) fn with_capacity(events: usize, bytes: usize) -> Self {
        Outcomes {
            outputs: vec![MAIN_OUTPUT.to_string()],
            emitted: types::Emitted {
                payloads: Vec::with_capacity(bytes),
                ends: Vec::with_capacity(events),
                inputs: Vec::with_capacity(events),
                ports: Vec::with_capacity(events),
            },
            rejected: Vec::new(),
        }
    }

    /// Emits `payload` (one JSON object) on the main output, derived from `input`.
    #[inline]
    pub fn emit(&mut self, input: &Event<'_>, payload: &[u8]) {
        self.push(input, 0, payload);
    }

    /// Emits `value` serialized as JSON on the main output.
    pub fn emit_json<T: Serialize + ?Sized>(&mut self, input: &Event<'_>, value: &T) {
        self.emit_json_to(input, MAIN_OUTPUT, value);
    }

    /// Emits `payload` on the named output.
    pub fn emit_to(&mut self, input: &Event<'_>, output: &str, payload: &[u8]) {
        let port = self.port(output);
        self.push(input, port, payload);
    }

    /// Emits `value` serialized as JSON on the named output.
    pub fn emit_json_to<T: Serialize + ?Sized>(&mut self, input: &Event<'_>, output: &str, value: &T) {
        let port = self.port(output);
        serde_json::to_writer(&mut self.emitted.payloads, value).expect("serializing to a Vec cannot fail");
        self.finish(input, port);
    }

    /// Refuses `input`: it goes to the dead-letter output with `reason`.
    pub fn reject(&mut self, input: &Event<'_>, reason: impl Into<String>) {
        self.rejected.push(types::Rejection { input: input.index(), reason: reason.into() });
    }

    /// Emitted events so far, as (output name, input index, payload); an
    /// empty payload is the input event forwarded unchanged.
    pub fn emitted(&self) -> impl Iterator<Item = (&str, u32, &[u8])> {
        let this = self;
        let e = &this.emitted;
        (0..e.ends.len()).map(move |i| {
            let start = if i == 0 { 0 } else { e.ends[i - 1] as usize };
            let payload = &e.payloads[start..e.ends[i] as usize];
            (this.outputs[e.ports[i] as usize].as_str(), e.inputs[i], payload)
        })
    }

    /// Rejections so far, as (input index, reason).
    pub fn rejected(&self) -> impl Iterator<Item = (u32, &str)> {
        self.rejected.iter().map(|r| (r.input, r.reason.as_str()))
    }

    fn port(&mut self, output: &str) -> u16 {
        match self.outputs.iter().position(|o| o == output) {
            Some(i) => i as u16,
            None => {
                self.outputs.push(output.to_string());
                (self.outputs.len() - 1) as u16
            }
        }
    }

    #[inline]
    fn push(&mut self, input: &Event<'_>, port: u16, payload: &[u8]) {
        let forwarded = payload.as_ptr() == input.payload().as_ptr() && payload.len() == input.payload().len();
        if !forwarded {
            self.emitted.payloads.extend_from_slice(payload);
        }
        self.finish(input, port);
    }

    #[inline]
    fn finish(&mut self, input: &Event<'_>, port: u16) {
        self.emitted.ends.push(self.emitted.payloads.len() as u32);
        self.emitted.inputs.push(input.index());
        self.emitted.ports.push(port);
    }

    pub(crate) fn into_wit(self) -> types::Outcomes {
        types::Outcomes { outputs: self.outputs, emitted: self.emitted, rejected: self.rejected }
    }
}

impl Outcomes {
    /// Outcomes for a plugin unit test.
    pub fn new() -> Self {
        Self::with_capacity(0, 0)
    }
}

impl Default for Outcomes {
    fn default() -> Self {
        Self::new()
    }
}
