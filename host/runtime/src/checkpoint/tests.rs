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

fn changes() -> impl Strategy<Value = Changes> {
    let key = || proptest::collection::vec(0u8..4, 0..3);
    (
        any::<bool>(),
        proptest::collection::vec((key(), key()), 0..2),
        proptest::collection::vec(key(), 0..3),
        proptest::collection::vec((key(), proptest::collection::vec(any::<u8>(), 0..3)), 0..5),
    )
        .prop_map(|(whole, removed_ranges, removed, put)| Changes { whole, removed_ranges, removed, put })
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
        proptest::collection::btree_map("[a-z]{1,6}", changes(), 0..3),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(epoch, pipeline, created_ms, sources, steps, sinks, dead_letter, changes, parent)| {
            Checkpoint { epoch, pipeline, created_ms, sources, steps, changes, parent, sinks, dead_letter }
        })
}

proptest! {
    #[test]
    fn a_checkpoint_reads_back_identical(c in checkpoint()) {
        let head = Checkpoint { steps: BTreeMap::new(), changes: BTreeMap::new(), ..c.clone() };
        prop_assert_eq!(Checkpoint::decode_head(&c.encode()), Ok(head));
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
        changes: BTreeMap::new(),
        parent: None,
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
fn a_version_3_file_still_reads() {
    use sha2::Digest;
    let c = delta(5, Some(4), Changes { put: vec![(b"k".to_vec(), b"v".to_vec())], ..Changes::default() });
    let v3 = CheckpointV3 {
        epoch: c.epoch,
        pipeline: c.pipeline.clone(),
        created_ms: c.created_ms,
        sources: c.sources.clone(),
        steps: c.steps.clone(),
        changes: c.changes.clone(),
        parent: c.parent,
        sinks: c.sinks.clone(),
        dead_letter: c.dead_letter.clone(),
    };
    let body = postcard::to_stdvec(&v3).unwrap();
    let mut bytes = b"WEIRCKP3".to_vec();
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&sha2::Sha256::digest(&body));
    bytes.extend_from_slice(&body);
    assert_eq!(Checkpoint::decode(&bytes).unwrap(), c);
    assert_eq!(Checkpoint::decode_head(&bytes).unwrap(), c, "an older version is read whole");
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

/// Epoch `epoch` of a chain: `w` whole (in its own format), `e` as entries
/// changed by `changes` on `parent`.
fn delta(epoch: u64, parent: Option<u64>, changes: Changes) -> Checkpoint {
    Checkpoint { changes: [("e".to_string(), changes)].into(), parent, ..at_epoch(epoch) }
}

fn entries_of(c: &Checkpoint) -> weir_core::entries::Entries {
    weir_core::entries::decode(&c.steps["e"]).expect("entries").unwrap()
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut n: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    n.sort();
    n
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any sequence of changes, written as a chain (the first whole), with
    /// retention and background folding at work, reads back as the state
    /// they add up to, at every kept epoch.
    #[test]
    fn a_chain_of_changes_reads_back_as_the_state_they_add_up_to(
        steps in proptest::collection::vec(changes(), 1..14),
        keep in 2usize..4,
        compact_after in 1usize..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = BTreeMap::new();
        {
            let mut store = CheckpointStore::open(dir.path(), keep).unwrap().compacting_after(compact_after);
            let mut state = weir_core::entries::Entries::new();
            for (i, mut c) in steps.into_iter().enumerate() {
                c.whole |= i == 0;
                let epoch = store.next_epoch();
                let parent = (!c.whole).then(|| epoch - 1);
                c.clone().apply(&mut state);
                expected.insert(epoch, state.clone());
                store.write(&delta(epoch, parent, c)).unwrap();
            }
        } // the folding thread is joined
        let store = CheckpointStore::open(dir.path(), keep).unwrap();
        let all = store.load_all().unwrap();
        prop_assert!(all.len() >= keep.min(expected.len()), "{:?}", names(dir.path()));
        for l in &all {
            let c = l.checkpoint.as_ref().unwrap();
            prop_assert_eq!(&entries_of(c), &expected[&l.epoch], "epoch {}", l.epoch);
            prop_assert_eq!(&c.steps["w"], &vec![l.epoch as u8; 4]);
            prop_assert!(c.changes.is_empty() && c.parent.is_none());
        }
    }
}

#[test]
fn a_delta_whose_parent_is_damaged_does_not_read_and_the_chain_base_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = CheckpointStore::open(dir.path(), 2).unwrap();
    let put = |k: &str, v: u8| Changes { put: vec![(k.as_bytes().to_vec(), vec![v])], ..Changes::default() };
    store.write(&delta(1, None, Changes::whole(vec![(b"a".to_vec(), vec![1])]))).unwrap();
    for epoch in 2..=4 {
        store.write(&delta(epoch, Some(epoch - 1), put("b", epoch as u8))).unwrap();
    }
    // The newest two are kept, and the whole checkpoint and delta their chain needs.
    let files = names(dir.path());
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(files[0].ends_with("01.ckpt") && files[3].ends_with("04.delta"), "{files:?}");
    let all = store.load_all().unwrap();
    let newest = all[0].checkpoint.as_ref().unwrap();
    assert_eq!(entries_of(newest), [(b"a".to_vec(), vec![1]), (b"b".to_vec(), vec![4])].into());

    // Epoch 3 damaged: 4, which changes it, cannot be read either; 2 can.
    let path = dir.path().join(&files[2]);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let all = store.load_all().unwrap();
    let e = all[0].checkpoint.as_ref().unwrap_err();
    assert!(e.to_string().contains("it changes checkpoint 3, which cannot be read"), "{e}");
    assert_eq!(all[1].checkpoint, Err(Corrupt::Checksum));
    assert_eq!(entries_of(all[2].checkpoint.as_ref().unwrap())[b"b".as_slice()], vec![2]);

    // A delta with no parent on disk cannot be read.
    std::fs::remove_file(dir.path().join(&files[0])).unwrap();
    let e = store.load_all().unwrap().pop().unwrap().checkpoint.unwrap_err();
    assert!(e.to_string().contains("it changes checkpoint 1, which is missing"), "{e}");
}

#[test]
fn a_folded_chain_is_one_whole_file_and_the_files_below_it_go() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = CheckpointStore::open(dir.path(), 2).unwrap().compacting_after(3);
        store.write(&delta(1, None, Changes::whole(vec![(b"a".to_vec(), vec![1])]))).unwrap();
        for epoch in 2..=4 {
            let c = Changes { put: vec![(vec![epoch as u8], vec![epoch as u8])], ..Changes::default() };
            store.write(&delta(epoch, Some(epoch - 1), c)).unwrap();
        }
    } // joins the fold of epoch 4
    let files = names(dir.path());
    assert!(files.iter().any(|f| f.ends_with("04.ckpt")), "{files:?}");
    assert!(!files.iter().any(|f| f.ends_with("04.delta")), "the delta goes once folded: {files:?}");
    let mut store = CheckpointStore::open(dir.path(), 2).unwrap();
    let c = Changes { removed: vec![b"a".to_vec()], ..Changes::default() };
    store.write(&delta(5, Some(4), c)).unwrap();
    let files = names(dir.path());
    assert_eq!(files.len(), 3, "4 (whole) and 5, and 1 (whole) should 4 be damaged: {files:?}");
    assert!(files[0].ends_with("01.ckpt"), "{files:?}");
    let newest = store.load_all().unwrap().swap_remove(0).checkpoint.unwrap();
    assert_eq!(entries_of(&newest), [(vec![2], vec![2]), (vec![3], vec![3]), (vec![4], vec![4])].into());

    // 4 damaged: 5 stands on it, and 1 is what a restore falls back to.
    let four = dir.path().join(&files[1]);
    let mut bytes = std::fs::read(&four).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&four, bytes).unwrap();
    let chains = store.read_chains().unwrap();
    let readable: Vec<u64> = chains.headers().iter().filter(|l| l.checkpoint.is_ok()).map(|l| l.epoch).collect();
    assert_eq!(readable, [1]);
    let one = chains.load(1).unwrap();
    assert_eq!(entries_of(&one), [(b"a".to_vec(), vec![1])].into());
}

#[test]
fn a_chain_that_cannot_be_folded_asks_for_a_whole_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = CheckpointStore::open(dir.path(), 3).unwrap().compacting_after(2);
    let wanted = store.whole_wanted();
    store.write(&delta(1, None, Changes::whole(vec![(b"a".to_vec(), vec![1])]))).unwrap();
    store.write(&delta(2, Some(1), Changes::default())).unwrap();
    assert!(!wanted.load(std::sync::atomic::Ordering::Acquire));
    std::fs::write(dir.path().join(names(dir.path())[1].clone()), b"damaged").unwrap();
    store.write(&delta(3, Some(2), Changes::default())).unwrap(); // asks for a fold of 1..3
    drop(store); // joins the folding thread
    assert!(wanted.load(std::sync::atomic::Ordering::Acquire), "the next checkpoint must be whole");
}
