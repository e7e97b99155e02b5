//! Keyed state for plugins (`weir:plugin/state`); its view of a store is
//! the call's [`StateCall`], linked by [`add_to_linker`]. The host keeps it per
//! step — instances only cache — so it survives instance restarts and hot
//! swaps, and the step writes it into every checkpoint.

use super::bindings::weir::plugin::state;
use super::instance::StoreData;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasSelf, Linker};
use weir_core::event::{Cell, FieldPlan};

/// (key, name) → value.
pub type StateMap = BTreeMap<(Vec<u8>, String), Vec<u8>>;

/// The keyed state of one plugin step.
#[derive(Debug, Default)]
pub struct KeyedState {
    pub values: Mutex<StateMap>,
    /// The field whose value is an event's key (the source's `key_field`).
    key: Option<FieldPlan>,
}

impl KeyedState {
    pub fn new(key_field: Option<String>) -> Arc<Self> {
        Arc::new(KeyedState {
            values: Mutex::new(StateMap::new()),
            key: key_field.map(|k| FieldPlan { columns: Some(Arc::from(vec![k])), ..FieldPlan::default() }),
        })
    }

    /// The state as bytes, for a checkpoint; `None` when there is none.
    pub fn snapshot(&self) -> Option<Vec<u8>> {
        let values = self.values.lock().expect("state lock");
        (!values.is_empty()).then(|| postcard::to_stdvec(&*values).expect("state serializes"))
    }

    /// Puts back what [`KeyedState::snapshot`] recorded.
    pub fn restore(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let values: StateMap =
            postcard::from_bytes(bytes).map_err(|e| anyhow::anyhow!("plugin state is unreadable: {e}"))?;
        *self.values.lock().expect("state lock") = values;
        Ok(())
    }

    /// Puts back, from the snapshots of a run with another number of
    /// shards, the entries of the keys `mine` owns. Keys are stored as
    /// their canonical bytes, which is what key groups hash.
    pub fn restore_rescaled(&self, states: &[&[u8]], mine: &weir_core::keys::KeyFilter) -> anyhow::Result<()> {
        let mut values = StateMap::new();
        for bytes in states {
            let part: StateMap =
                postcard::from_bytes(bytes).map_err(|e| anyhow::anyhow!("plugin state is unreadable: {e}"))?;
            values.extend(part.into_iter().filter(|((key, _), _)| mine.owns(key)));
        }
        *self.values.lock().expect("state lock") = values;
        Ok(())
    }

    /// The key of each event of a batch.
    fn keys(&self, payloads: &[u8], ends: &[u32]) -> Vec<Vec<u8>> {
        let Some(plan) = &self.key else { return vec![Vec::new(); ends.len()] };
        let (mut cells, mut escaped) = (Vec::new(), Vec::new());
        let mut start = 0;
        ends.iter()
            .map(|&end| {
                let payload = &payloads[start..end as usize];
                start = end as usize;
                cells.clear();
                escaped.clear();
                if weir_core::event::decode_into(payload, plan, &mut cells, &mut escaped).is_err() {
                    return Vec::new();
                }
                match cells.first() {
                    Some(Cell::Str { start, end }) => payload[*start as usize..*end as usize].to_vec(),
                    Some(Cell::Escaped(i)) => escaped[*i as usize].as_bytes().to_vec(),
                    Some(Cell::Num(n)) => weir_core::keys::number(*n).into_bytes(),
                    Some(Cell::Bool(b)) => b.to_string().into_bytes(),
                    _ => Vec::new(),
                }
            })
            .collect()
    }
}

/// One call's view of the state: the batch's keys, and its writes, applied
/// only if the call succeeds.
#[derive(Debug, Default)]
pub struct StateCall {
    shared: Option<Arc<KeyedState>>,
    keys: Vec<Vec<u8>>,
    writes: BTreeMap<(Vec<u8>, String), Option<Vec<u8>>>,
}

impl StateCall {
    pub fn new(shared: Option<Arc<KeyedState>>) -> Self {
        StateCall { shared, keys: Vec::new(), writes: BTreeMap::new() }
    }

    /// Before a call: the keys of its batch.
    pub fn begin(&mut self, payloads: &[u8], ends: &[u32]) {
        self.writes.clear();
        self.keys = match &self.shared {
            Some(s) => s.keys(payloads, ends),
            None => Vec::new(),
        };
    }

    /// After a call: its writes become the state (`ok`) or are dropped.
    pub fn end(&mut self, ok: bool) {
        let writes = std::mem::take(&mut self.writes);
        if let (true, Some(shared)) = (ok, &self.shared) {
            let mut values = shared.values.lock().expect("state lock");
            for (k, v) in writes {
                match v {
                    Some(v) => values.insert(k, v),
                    None => values.remove(&k),
                };
            }
        }
    }

    fn slot(&self, event: u32, name: String) -> Option<(Vec<u8>, String)> {
        Some((self.keys.get(event as usize)?.clone(), name))
    }
}

/// Links `weir:plugin/state` to each store's [`StateCall`].
pub fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    state::add_to_linker::<StoreData, HasSelf<StateCall>>(linker, |s| &mut s.state)
}

impl state::Host for StateCall {
    fn get(&mut self, event: u32, name: String) -> Option<Vec<u8>> {
        let slot = self.slot(event, name)?;
        if let Some(v) = self.writes.get(&slot) {
            return v.clone();
        }
        self.shared.as_ref()?.values.lock().expect("state lock").get(&slot).cloned()
    }

    fn put(&mut self, event: u32, name: String, value: Vec<u8>) {
        if let Some(slot) = self.slot(event, name) {
            self.writes.insert(slot, Some(value));
        }
    }

    fn delete(&mut self, event: u32, name: String) {
        if let Some(slot) = self.slot(event, name) {
            self.writes.insert(slot, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_snapshot_restores_identical_state(
            entries in proptest::collection::btree_map(
                (proptest::collection::vec(any::<u8>(), 0..8), "[a-z]{0,6}"),
                proptest::collection::vec(any::<u8>(), 0..32),
                0..50,
            )
        ) {
            let a = KeyedState::new(Some("k".into()));
            *a.values.lock().unwrap() = entries.clone();
            let b = KeyedState::new(Some("k".into()));
            if let Some(bytes) = a.snapshot() {
                b.restore(&bytes).unwrap();
            }
            prop_assert_eq!(&*b.values.lock().unwrap(), &entries);
        }
    }

    #[test]
    fn writes_of_a_failed_call_are_dropped() {
        let shared = KeyedState::new(Some("k".into()));
        let mut call = StateCall::new(Some(shared.clone()));
        let (payloads, ends) = (br#"{"k":"a"}{"k":7}{}"#.to_vec(), vec![9, 16, 18]);
        call.begin(&payloads, &ends);
        assert_eq!(call.keys, vec![b"a".to_vec(), b"7".to_vec(), Vec::new()]);
        call.writes.insert(call.slot(0, "n".into()).unwrap(), Some(vec![1]));
        call.end(false);
        assert!(shared.values.lock().unwrap().is_empty());
        call.begin(&payloads, &ends);
        call.writes.insert(call.slot(1, "n".into()).unwrap(), Some(vec![2]));
        call.end(true);
        assert_eq!(shared.values.lock().unwrap().get(&(b"7".to_vec(), "n".into())), Some(&vec![2]));
    }
}
