//! Keyed state for plugins (`weir:plugin/state`); its view of a store is
//! the call's [`StateCall`], linked by [`add_to_linker`]. The host keeps it per
//! step — instances only cache — so it survives instance restarts and hot
//! swaps, and the step writes it into every checkpoint.
//!
//! It is bounded ([`Quota`]: `limits.state_bytes` and `limits.state_keys`
//! per shard): a `put` that would pass the quota traps the call, whose
//! writes are then dropped with it, and its events are dead-lettered as
//! `plugin-state-quota`.

use super::bindings::weir::plugin::state;
use super::instance::StoreData;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasSelf, Linker};
use weir_core::entries::{self, Changes};
use weir_core::event::{Cell, FieldPlan};

/// (key, name) → value.
pub type StateMap = BTreeMap<(Vec<u8>, String), Vec<u8>>;

/// What one entry costs besides its key, name and value: the map's node
/// share and three vector headers, roughly.
pub const ENTRY_OVERHEAD: u64 = 64;

/// The most keyed state one shard of a step may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub bytes: u64,
    pub keys: u64,
}

impl Default for Quota {
    fn default() -> Self {
        let l = weir_config::Limits::default();
        Quota { bytes: l.state_bytes.as_u64(), keys: l.state_keys }
    }
}

/// The bytes an entry is counted at.
fn cost(key: &[u8], name: &str, value: &[u8]) -> u64 {
    (key.len() + name.len() + value.len()) as u64 + ENTRY_OVERHEAD
}

/// The keyed state of one plugin step.
#[derive(Debug, Default)]
pub struct KeyedState {
    pub values: Mutex<StateMap>,
    /// The field whose value is an event's key (the source's `key_field`).
    key: Option<FieldPlan>,
    quota: Quota,
    /// Bytes held, as [`cost`] counts them.
    bytes: AtomicU64,
    gauges: Option<(prometheus::IntGauge, prometheus::IntGauge)>,
    /// The slots written since the last [`KeyedState::changes`].
    changed: Mutex<std::collections::BTreeSet<(Vec<u8>, String)>>,
    /// Whether writes are tracked: from the first [`KeyedState::changes`]
    /// on, so that a pipeline without incremental checkpoints keeps no set.
    tracking: std::sync::atomic::AtomicBool,
}

impl KeyedState {
    pub fn new(key_field: Option<String>) -> Arc<Self> {
        Self::bounded(key_field, Quota::default(), None)
    }

    /// With a quota, and the gauges (bytes, keys) it adds its size to.
    pub fn bounded(
        key_field: Option<String>,
        quota: Quota,
        gauges: Option<(prometheus::IntGauge, prometheus::IntGauge)>,
    ) -> Arc<Self> {
        Arc::new(KeyedState {
            values: Mutex::new(StateMap::new()),
            key: key_field.map(|k| FieldPlan { columns: Some(Arc::from(vec![k])), ..FieldPlan::default() }),
            quota,
            bytes: AtomicU64::new(0),
            gauges,
            changed: Mutex::default(),
            tracking: Default::default(),
        })
    }

    /// Replaces the values, keeping the byte count and gauges true.
    fn replace(&self, values: StateMap) {
        let mut held = self.values.lock().expect("state lock");
        let bytes: u64 = values.iter().map(|((k, n), v)| cost(k, n, v)).sum();
        if bytes > self.quota.bytes || values.len() as u64 > self.quota.keys {
            tracing::warn!(
                bytes,
                entries = values.len(),
                quota_bytes = self.quota.bytes,
                quota_keys = self.quota.keys,
                "keyed state restored over its quota (fewer shards, or a lower limit): puts that grow it fail until deletes bring it under"
            );
        }
        self.account(bytes as i64 - self.bytes.load(Ordering::Relaxed) as i64, values.len() as i64 - held.len() as i64);
        *held = values;
        self.changed.lock().expect("state lock").clear();
        self.tracking.store(false, Ordering::Relaxed); // the next changes are all of it
    }

    fn account(&self, bytes: i64, keys: i64) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed); // wraps back for negative deltas
        if let Some((b, k)) = &self.gauges {
            b.add(bytes);
            k.add(keys);
        }
    }

    /// (bytes, entries) held now.
    pub fn size(&self) -> (u64, u64) {
        (self.bytes.load(Ordering::Relaxed), self.values.lock().expect("state lock").len() as u64)
    }

    /// The state as bytes, for a checkpoint; `None` when there is none.
    pub fn snapshot(&self) -> Option<Vec<u8>> {
        let values = self.values.lock().expect("state lock");
        (!values.is_empty()).then(|| postcard::to_stdvec(&*values).expect("state serializes"))
    }

    /// The entries written since the last call (`whole`, or the first call:
    /// all of them), for an incremental checkpoint; each entry's key is the
    /// (key, name) slot.
    pub fn changes(&self, whole: bool) -> Changes {
        let values = self.values.lock().expect("state lock");
        // Untracked until now (new or restored): all of it.
        let tracked = self.tracking.swap(true, Ordering::Relaxed);
        let whole = whole || !tracked;
        let changed = std::mem::take(&mut *self.changed.lock().expect("state lock"));
        let entry = |slot: &(Vec<u8>, String)| postcard::to_stdvec(slot).expect("a state slot serializes");
        if whole {
            return Changes::whole(values.iter().map(|(slot, v)| (entry(slot), v.clone())).collect());
        }
        let mut out = Changes::default();
        for slot in changed {
            match values.get(&slot) {
                Some(v) => out.put.push((entry(&slot), v.clone())),
                None => out.removed.push(entry(&slot)),
            }
        }
        out
    }

    /// The values of a state recorded as entries ([`KeyedState::changes`])
    /// or as a whole snapshot of an older version.
    fn read(bytes: &[u8]) -> anyhow::Result<StateMap> {
        let unreadable = |e: &dyn std::fmt::Display| anyhow::anyhow!("plugin state is unreadable: {e}");
        match entries::decode(bytes) {
            Some(state) => state
                .map_err(|e| unreadable(&e))?
                .into_iter()
                .map(|(k, v)| Ok((postcard::from_bytes(&k).map_err(|e| unreadable(&e))?, v)))
                .collect(),
            None => postcard::from_bytes(bytes).map_err(|e| unreadable(&e)),
        }
    }

    /// Puts back what [`KeyedState::snapshot`] or the changes recorded.
    pub fn restore(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.replace(Self::read(bytes)?);
        Ok(())
    }

    /// Puts back, from the snapshots of a run with another number of
    /// shards, the entries of the keys `mine` owns. Keys are stored as
    /// their canonical bytes, which is what key groups hash.
    pub fn restore_rescaled(&self, states: &[&[u8]], mine: &weir_core::keys::KeyFilter) -> anyhow::Result<()> {
        let mut values = StateMap::new();
        for bytes in states {
            values.extend(Self::read(bytes)?.into_iter().filter(|((key, _), _)| mine.owns(key)));
        }
        self.replace(values);
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
    /// What the writes add to the state: bytes, entries.
    delta: (i64, i64),
    /// Set when a `put` was refused for the quota: why.
    pub over_quota: Option<String>,
}

impl StateCall {
    pub fn new(shared: Option<Arc<KeyedState>>) -> Self {
        StateCall { shared, ..StateCall::default() }
    }

    /// Before a call: the keys of its batch.
    pub fn begin(&mut self, payloads: &[u8], ends: &[u32]) {
        self.writes.clear();
        self.delta = (0, 0);
        self.over_quota = None;
        self.keys = match &self.shared {
            Some(s) => s.keys(payloads, ends),
            None => Vec::new(),
        };
    }

    /// After a call: its writes become the state (`ok`) or are dropped.
    pub fn end(&mut self, ok: bool) {
        let writes = std::mem::take(&mut self.writes);
        let delta = std::mem::take(&mut self.delta);
        if let (true, Some(shared)) = (ok, &self.shared) {
            let mut values = shared.values.lock().expect("state lock");
            if shared.tracking.load(Ordering::Relaxed) {
                shared.changed.lock().expect("state lock").extend(writes.keys().cloned());
            }
            for (k, v) in writes {
                match v {
                    Some(v) => values.insert(k, v),
                    None => values.remove(&k),
                };
            }
            drop(values);
            shared.account(delta.0, delta.1);
        }
    }

    fn slot(&self, event: u32, name: String) -> Option<(Vec<u8>, String)> {
        Some((self.keys.get(event as usize)?.clone(), name))
    }

    /// The value `slot` has now, as this call sees it.
    fn current(&self, slot: &(Vec<u8>, String)) -> Option<Vec<u8>> {
        if let Some(v) = self.writes.get(slot) {
            return v.clone();
        }
        self.shared.as_ref()?.values.lock().expect("state lock").get(slot).cloned()
    }

    /// Records the write of `value` (or a delete) to `slot`, with its cost.
    fn write(&mut self, slot: (Vec<u8>, String), value: Option<Vec<u8>>) -> Result<(), String> {
        let before = self.current(&slot).map(|v| cost(&slot.0, &slot.1, &v));
        let after = value.as_ref().map(|v| cost(&slot.0, &slot.1, v));
        let bytes = after.unwrap_or(0) as i64 - before.unwrap_or(0) as i64;
        let keys = i64::from(after.is_some()) - i64::from(before.is_some());
        if let Some(shared) = &self.shared
            && (bytes > 0 || keys > 0)
        {
            let (held, entries) = shared.size();
            let q = shared.quota;
            let (b, k) = (held as i64 + self.delta.0 + bytes, entries as i64 + self.delta.1 + keys);
            if b > q.bytes as i64 || k > q.keys as i64 {
                let why = format!(
                    "keyed state over its quota: this put would hold {} in {k} entries; the limit is {} in {} \
                     entries (limits.state_bytes, limits.state_keys)",
                    human(b as u64),
                    human(q.bytes),
                    q.keys
                );
                self.over_quota = Some(why.clone());
                return Err(why);
            }
        }
        self.delta = (self.delta.0 + bytes, self.delta.1 + keys);
        self.writes.insert(slot, value);
        Ok(())
    }
}

fn human(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// Links `weir:plugin/state` to each store's [`StateCall`].
pub fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    state::add_to_linker::<StoreData, HasSelf<StateCall>>(linker, |s| &mut s.state)
}

impl state::Host for StateCall {
    fn get(&mut self, event: u32, name: String) -> Option<Vec<u8>> {
        let slot = self.slot(event, name)?;
        self.current(&slot)
    }

    /// Traps the call when the quota would be passed (WIT 0.1 has no error
    /// to return here).
    fn put(&mut self, event: u32, name: String, value: Vec<u8>) -> wasmtime::Result<()> {
        if let Some(slot) = self.slot(event, name) {
            self.write(slot, Some(value)).map_err(wasmtime::Error::msg)?;
        }
        Ok(())
    }

    fn delete(&mut self, event: u32, name: String) {
        if let Some(slot) = self.slot(event, name) {
            let _ = self.write(slot, None);
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

    #[test]
    fn the_quota_counts_what_the_state_would_hold_after_the_call() {
        let quota = Quota { bytes: 1_000, keys: 2 };
        let shared = KeyedState::bounded(Some("k".into()), quota, None);
        let mut call = StateCall::new(Some(shared.clone()));
        let (payloads, ends) = (br#"{"k":"a"}"#.to_vec(), vec![9]);
        call.begin(&payloads, &ends);
        call.write(call.slot(0, "x".into()).unwrap(), Some(vec![0; 10])).unwrap();
        call.write(call.slot(0, "y".into()).unwrap(), Some(vec![0; 10])).unwrap();
        let err = call.write(call.slot(0, "z".into()).unwrap(), Some(vec![0; 1])).unwrap_err();
        assert!(err.contains("3 entries"), "{err}");
        assert!(call.over_quota.is_some());
        // Overwriting and deleting are counted, not added.
        call.write(call.slot(0, "x".into()).unwrap(), Some(vec![0; 20])).unwrap();
        call.write(call.slot(0, "y".into()).unwrap(), None).unwrap();
        call.write(call.slot(0, "z".into()).unwrap(), Some(vec![0; 1])).unwrap();
        call.end(true);
        assert_eq!(shared.size(), (cost(b"a", "x", &[0; 20]) + cost(b"a", "z", &[0; 1]), 2));
        // Bytes: a value that would pass 1,000 is refused; a failed call adds nothing.
        call.begin(&payloads, &ends);
        assert!(call.write(call.slot(0, "x".into()).unwrap(), Some(vec![0; 1_000])).is_err());
        call.write(call.slot(0, "x".into()).unwrap(), Some(vec![0; 100])).unwrap();
        call.end(false);
        assert_eq!(shared.size().1, 2);
        assert_eq!(shared.size().0, cost(b"a", "x", &[0; 20]) + cost(b"a", "z", &[0; 1]));
        // A restore counts what it puts back.
        let again = KeyedState::bounded(Some("k".into()), quota, None);
        again.restore(&shared.snapshot().unwrap()).unwrap();
        assert_eq!(again.size(), shared.size());
    }

    #[test]
    fn changes_hold_only_the_entries_written_since_the_last_and_restore_from_entries() {
        let shared = KeyedState::new(Some("k".into()));
        let mut call = StateCall::new(Some(shared.clone()));
        let (payloads, ends) = (br#"{"k":"a"}{"k":"b"}"#.to_vec(), vec![9, 18]);
        let write = |call: &mut StateCall, event, name: &str, value: Option<Vec<u8>>, ok| {
            call.begin(&payloads, &ends);
            call.write(call.slot(event, name.into()).unwrap(), value).unwrap();
            call.end(ok);
        };
        write(&mut call, 0, "x", Some(vec![1]), true);
        write(&mut call, 1, "x", Some(vec![2]), true);
        let mut state = entries::Entries::new();
        let first = shared.changes(true);
        assert!(first.whole && first.put.len() == 2);
        first.apply(&mut state);
        assert_eq!(shared.changes(false), Changes::default(), "nothing written since");

        write(&mut call, 0, "x", None, true);
        write(&mut call, 1, "y", Some(vec![3]), true);
        write(&mut call, 1, "z", Some(vec![4]), false); // a failed call changes nothing
        let next = shared.changes(false);
        assert_eq!((next.removed.len(), next.put.len()), (1, 1), "{next:?}");
        next.apply(&mut state);

        let restored = KeyedState::new(Some("k".into()));
        restored.restore(&entries::encode(&state)).unwrap();
        assert_eq!(*restored.values.lock().unwrap(), *shared.values.lock().unwrap());
        assert_eq!(restored.size(), shared.size());
    }
}
