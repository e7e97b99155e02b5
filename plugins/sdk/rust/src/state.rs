//! Keyed state kept by the host (`weir:plugin/state`): values scoped to the
//! key of an event (the source's `key_field`) and a name. The host
//! checkpoints them and restores them after a restart; they outlive the
//! instance, so a plugin keeps nothing it cannot lose in its own memory.
//! Writes of a batch whose call fails (trap, deadline) are discarded.
//!
//! ```ignore
//! let seen = state::get(&event, "count").map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
//! state::put(&event, "count", &(seen + 1).to_le_bytes());
//! ```

use crate::Event;
use crate::bindings::weir::plugin::state;

/// The value `name` of `event`'s key, if one was put.
pub fn get(event: &Event<'_>, name: &str) -> Option<Vec<u8>> {
    state::get(event.index(), name)
}

/// Sets the value `name` of `event`'s key.
pub fn put(event: &Event<'_>, name: &str, value: &[u8]) {
    state::put(event.index(), name, value)
}

/// Removes the value `name` of `event`'s key.
pub fn delete(event: &Event<'_>, name: &str) {
    state::delete(event.index(), name)
}
