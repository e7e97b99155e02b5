use super::*;
use std::io::Write;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
const B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn ring(text: &str) -> Keyring {
    Keyring::parse(text).unwrap()
}

#[test]
fn a_keyring_is_read_with_its_first_key_active_and_bad_entries_named_without_their_text() {
    let k = ring(&format!("# rotated 2026-12\nk2 {B}\n\nk1 {A}  # old\n"));
    assert_eq!(k.active(), "k2");
    assert_eq!(k.ids().collect::<Vec<_>>(), ["k2", "k1"]);
    assert_eq!(ring(&format!("k2 {B},k1 {A}")).ids().count(), 2, "commas separate entries too (one env variable)");
    assert!(!format!("{k:?}").contains(B), "Debug shows ids only");
    let cases = [
        (format!("k1 {}", &A[..62]), "64 hex digits"),
        (format!("k1 {A}\nk1 {B}"), "used twice"),
        (format!("k/1 {A}"), "key id"),
        (format!("k1={A}"), "expected"),
        (format!("k1 {}", "00".repeat(32)), "one byte repeated"),
        ("# nothing\n".to_string(), "no keys"),
    ];
    for (text, wanted) in cases {
        let e = Keyring::parse(&text).unwrap_err().to_string();
        assert!(e.contains(wanted), "{text}: {e}");
        assert!(!e.contains(&A[..20]) && !e.contains(&B[..20]), "the key never appears in the error: {e}");
    }
}

#[test]
fn a_checkpoint_opens_with_its_key_and_fails_closed_without_it() {
    let plain = b"WEIRCKP2 the state of patient P-1".to_vec();
    let sealed = ring(&format!("k1 {A}")).seal_checkpoint(&plain).unwrap();
    assert!(is_sealed_checkpoint(&sealed));
    assert!(memchr_all(&sealed, b"P-1").is_empty(), "no plaintext in the sealed bytes");
    let rotated = ring(&format!("k2 {B}\nk1 {A}"));
    assert_eq!(open_checkpoint(Some(&rotated), &sealed).unwrap(), plain, "an old key still opens");
    let only_new = ring(&format!("k2 {B}"));
    let e = open_checkpoint(Some(&only_new), &sealed).unwrap_err();
    assert_eq!(e, Unsealed::UnknownKey("k1".into()));
    assert!(e.is_locked());
    assert!(open_checkpoint(None, &sealed).unwrap_err().is_locked());
    // The same id with other key material: told from damage, and locked.
    let impostor = ring(&format!("k1 {B}"));
    assert_eq!(open_checkpoint(Some(&impostor), &sealed).unwrap_err(), Unsealed::WrongKey("k1".into()));
    for i in 8..sealed.len() {
        let mut damaged = sealed.clone();
        damaged[i] ^= 1;
        let e = open_checkpoint(Some(&rotated), &damaged).unwrap_err();
        // A damaged key id or check value reads as a key the keyring
        // lacks (and fails closed); anything else is damage.
        let in_the_id_or_check = (12..19).contains(&i);
        assert!(in_the_id_or_check || !e.is_locked(), "byte {i}: {e}");
    }
}

#[test]
fn an_appended_file_opens_frame_by_frame_and_refuses_moved_or_edited_frames() {
    let old = ring(&format!("k1 {A}"));
    let new = ring(&format!("k2 {B}\nk1 {A}"));
    let mut file = Vec::new();
    let mut id = None;
    let first = old.seal_append(0, &mut id, b"{\"patient\":\"P-1\"}\n").unwrap();
    file.extend_from_slice(&first);
    file.extend_from_slice(&old.seal_append(file.len() as u64, &mut id, b"{\"patient\":\"P-2\"}\n").unwrap());
    file.extend_from_slice(&new.seal_append(file.len() as u64, &mut id, b"{\"patient\":\"P-3\"}\n").unwrap());
    assert!(memchr_all(&file, b"patient").is_empty());
    let opened = open_file(Some(&new), &file).unwrap();
    assert_eq!(opened.plaintext, b"{\"patient\":\"P-1\"}\n{\"patient\":\"P-2\"}\n{\"patient\":\"P-3\"}\n");
    assert_eq!(opened.frames_by_key, [("k1".to_string(), 2), ("k2".to_string(), 1)].into());
    // Swapping the first two frames: each is authenticated with its offset.
    let h = FILE_HEADER;
    let (a, rest) = file[h..].split_at(first.len() - h);
    let second_len = 4 + u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
    let mut swapped = file[..h].to_vec();
    swapped.extend_from_slice(&rest[..second_len]);
    swapped.extend_from_slice(a);
    swapped.extend_from_slice(&rest[second_len..]);
    assert_eq!(open_file(Some(&new), &swapped).unwrap_err(), Unsealed::Forged(h as u64));
    // A frame of another file at the same offset: each file has its id.
    let mut other_id = None;
    let other = old.seal_append(0, &mut other_id, b"{\"patient\":\"P-9\"}\n").unwrap();
    let mut spliced = file[..h].to_vec();
    spliced.extend_from_slice(&other[h..]);
    assert_eq!(open_file(Some(&new), &spliced).unwrap_err(), Unsealed::Forged(h as u64));
    // A torn last frame is reported, and a writer finds where to cut.
    let torn = &file[..file.len() - 3];
    assert!(matches!(open_file(Some(&new), torn).unwrap_err(), Unsealed::Truncated(_)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::File::create(&path).unwrap().write_all(torn).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    assert_eq!(file_is_sealed(&mut f, torn.len() as u64).unwrap(), Some(true));
    assert_eq!(file_is_sealed(&mut f, 5).unwrap(), Some(true), "a torn magic is a sealed file's");
    for keys in [None, Some(&new)] {
        let end = whole_frames_end(&mut f, torn.len() as u64, keys).unwrap();
        assert_eq!(open_file(Some(&new), &file[..end as usize]).unwrap().frames_by_key.values().sum::<u64>(), 2);
    }
    assert_eq!(whole_frames_end(&mut f, 5, None).unwrap(), 0, "a torn header: nothing to keep");
    // A power loss can leave the size grown and the bytes zero, or a
    // frame's length written and not its body: the walk stops at a length
    // no frame has, and the frames at the tail are opened.
    let mut zeroed = file.clone();
    zeroed.extend_from_slice(&[0u8; 300]);
    let mut garbage = file.clone();
    garbage.extend_from_slice(&[40, 0, 0, 0]);
    garbage.extend_from_slice(&[7u8; 40]);
    for (name, bytes) in [("zeroed", &zeroed), ("garbage", &garbage)] {
        std::fs::write(&path, bytes).unwrap();
        let mut f = std::fs::File::open(&path).unwrap();
        let end = whole_frames_end(&mut f, bytes.len() as u64, Some(&new)).unwrap();
        assert_eq!(end as usize, file.len(), "{name}");
    }
    // Frames of another key under the same id: appending is refused.
    let impostor = ring(&format!("k2 {A}"));
    std::fs::write(&path, &file).unwrap();
    let e = whole_frames_end(&mut std::fs::File::open(&path).unwrap(), file.len() as u64, Some(&impostor)).unwrap_err();
    assert!(e.to_string().contains("another key than the keyring's `k2`"), "{e}");
}

fn memchr_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect()
}

proptest::proptest! {
    #[test]
    fn whatever_is_sealed_opens_to_itself(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..8)) {
        let keys = ring(&format!("k1 {A}"));
        let (mut file, mut id) = (Vec::new(), None);
        for c in &chunks {
            let sealed = keys.seal_append(file.len() as u64, &mut id, c).unwrap();
            file.extend_from_slice(&sealed);
        }
        let want: Vec<u8> = chunks.concat();
        if !chunks.is_empty() {
            let opened = open_file(Some(&keys), &file).unwrap();
            proptest::prop_assert_eq!(opened.plaintext, want);
            proptest::prop_assert_eq!(opened.frames_by_key.values().sum::<u64>(), chunks.len() as u64);
        }
    }
}
