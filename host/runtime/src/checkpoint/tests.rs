//! Checkpoint files: what is written reads back identical, and any damage
//! is detected, never read as a different state.

use super::*;
use proptest::prelude::*;

fn position() -> impl Strategy<Value = Position> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(offset, line)| Position::File { offset, line }),
        ("[a-z.-]{1,12}", proptest::collection::btree_map(0i32..64, 0i64..i64::MAX, 0..8))
            .prop_map(|(topic, offsets)| Position::Partitioned { topic, offsets }),
        (any::<u64>(), any::<i64>()).prop_map(|(next, start_ms)| Position::Sequence { next, start_ms }),
    ]
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        1u64..1_000_000,
        "[a-z]{1,8}",
        any::<i64>(),
        proptest::collection::btree_map("[a-z]{1,6}", position(), 0..4),
        proptest::collection::btree_map("[a-z]{1,6}", proptest::collection::vec(any::<u8>(), 0..300), 0..4),
        proptest::collection::btree_map("[a-z]{1,6}", position(), 0..3),
        proptest::option::of(position()),
    )
        .prop_map(|(epoch, pipeline, created_ms, sources, steps, sinks, dead_letter)| Checkpoint {
            epoch,
            pipeline,
            created_ms,
            sources,
            steps,
            sinks,
            dead_letter,
        })
}

proptest! {
    #[test]
    fn a_checkpoint_reads_back_identical(c in checkpoint()) {
        prop_assert_eq!(Checkpoint::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn any_damage_is_detected(c in checkpoint(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut bytes = c.encode();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        prop_assert!(Checkpoint::decode(&bytes).is_err());
    }

    #[test]
    fn a_torn_write_is_detected(c in checkpoint(), at in any::<prop::sample::Index>()) {
        let bytes = c.encode();
        let cut = at.index(bytes.len());
        prop_assert!(Checkpoint::decode(&bytes[..cut]).is_err());
    }
}

fn at_epoch(epoch: u64) -> Checkpoint {
    Checkpoint {
        epoch,
        pipeline: "p".into(),
        created_ms: 0,
        sources: [("f".to_string(), Position::File { offset: epoch * 10, line: epoch })].into(),
        steps: [("w".to_string(), vec![epoch as u8; 4])].into(),
        sinks: [("out".to_string(), Position::File { offset: epoch * 7, line: 0 })].into(),
        dead_letter: Some(Position::File { offset: epoch, line: 0 }),
    }
}

#[test]
fn a_version_1_file_still_reads() {
    use sha2::Digest;
    let c = at_epoch(4);
    let v1 = CheckpointV1 {
        epoch: c.epoch,
        pipeline: c.pipeline.clone(),
        created_ms: c.created_ms,
        sources: c.sources.clone(),
        steps: c.steps.clone(),
    };
    let body = postcard::to_stdvec(&v1).unwrap();
    let mut bytes = b"WEIRCKP1".to_vec();
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&sha2::Sha256::digest(&body));
    bytes.extend_from_slice(&body);
    let read = Checkpoint::decode(&bytes).unwrap();
    assert_eq!((read.epoch, &read.sources, &read.steps), (4, &c.sources, &c.steps));
    assert!(read.sinks.is_empty() && read.dead_letter.is_none());
}

#[test]
fn the_store_keeps_the_newest_and_reports_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = CheckpointStore::open(dir.path(), 2).unwrap();
    for _ in 0..3 {
        let c = at_epoch(store.next_epoch());
        store.write(&c).unwrap();
    }
    let all = store.load_all().unwrap();
    assert_eq!(all.iter().map(|l| l.epoch).collect::<Vec<_>>(), vec![3, 2]);
    assert_eq!(all[0].checkpoint.as_ref().unwrap(), &at_epoch(3));

    // Damage the newest: it is reported, the one before still reads.
    let mut bytes = std::fs::read(&all[0].path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&all[0].path, bytes).unwrap();
    let all = store.load_all().unwrap();
    assert_eq!(all[0].checkpoint, Err(Corrupt::Checksum));
    assert_eq!(all[1].checkpoint.as_ref().unwrap(), &at_epoch(2));

    // A reopened store never reuses an epoch; discarding drops the newer.
    let mut store = CheckpointStore::open(dir.path(), 2).unwrap();
    assert_eq!(store.next_epoch(), 4);
    store.discard_after(2).unwrap();
    assert_eq!(store.load_all().unwrap().iter().map(|l| l.epoch).collect::<Vec<_>>(), vec![2]);
    assert!(store.set_aside().unwrap().is_some());
    assert!(store.load_all().unwrap().is_empty());
}

#[test]
fn an_encrypted_store_opens_with_old_keys_skips_damage_and_locks_without_its_key() {
    use std::sync::Arc;
    use weir_core::at_rest::Keyring;
    let k1 = format!("k1 {}", "5a".repeat(32).replacen("5a", "6b", 1));
    let k2 = format!("k2 {}", "7c".repeat(32).replacen("7c", "8d", 1));
    let keys = |text: &str| Some(Arc::new(Keyring::parse(text).unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let mut store = CheckpointStore::open(dir.path(), 3).unwrap().with_keyring(keys(&k1));
    store.write(&at_epoch(store.next_epoch())).unwrap();
    let mut store = CheckpointStore::open(dir.path(), 3).unwrap().with_keyring(keys(&format!("{k2}\n{k1}")));
    store.write(&at_epoch(store.next_epoch())).unwrap();
    let all = store.load_all().unwrap();
    assert_eq!(all[0].checkpoint.as_ref().unwrap(), &at_epoch(2), "sealed with k2");
    assert_eq!(all[1].checkpoint.as_ref().unwrap(), &at_epoch(1), "sealed with k1, still read");
    let raw = std::fs::read(&all[0].path).unwrap();
    assert!(raw.starts_with(b"WEIRCKE1"));

    // Damaged: like a bad checksum, the one before is used.
    let mut bytes = raw.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&all[0].path, bytes).unwrap();
    assert!(matches!(store.load_all().unwrap()[0].checkpoint, Err(Corrupt::Sealed(_))));
    std::fs::write(&all[0].path, raw).unwrap();

    // Without k1, or without keys: locked, which stops a restore.
    let store = CheckpointStore::open(dir.path(), 3).unwrap().with_keyring(keys(&k2));
    let e = store.load_all().unwrap().swap_remove(1).checkpoint.unwrap_err();
    assert_eq!(e, Corrupt::Locked("it is encrypted with key `k1`, which the keyring does not hold".into()));
    let mut store = CheckpointStore::open(dir.path(), 3).unwrap();
    assert!(matches!(store.load_all().unwrap()[0].checkpoint, Err(Corrupt::Locked(_))));
    let metrics = weir_core::metrics::Metrics::new("p").durability();
    let from = weir_core::position::StartFrom::Checkpoint;
    let e = crate::pipeline::restore::choose(&mut store, "p", &[], from, &metrics).unwrap_err();
    assert!(e.to_string().contains("no keys are configured"), "{e}");
    assert_eq!(store.load_all().unwrap().len(), 2, "nothing removed");
}
