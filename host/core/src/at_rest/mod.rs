//! Encryption at rest: AES-256-GCM (ring) for what Weir writes to disk that
//! holds event data — checkpoints, the dead-letter output, file sinks.
//!
//! Keys come in a [`Keyring`] read from a file or an environment variable
//! (never from the pipeline file): the first key seals every new write,
//! every key listed opens. Rotating is putting a new key first and keeping
//! the old ones until no file sealed with them is needed.
//!
//! Everything sealed is made of frames: `u32 LE` length of the rest, the
//! key id's length (`u8`) and the key id, the key's 4-byte check value
//! (so that another key under the same id is told from damage), a random
//! 96-bit nonce, and the ciphertext with its 16-byte tag. The additional
//! data a frame is authenticated with is what it belongs to (its file's
//! random id and its byte offset there, or "a checkpoint") and its key id
//! and check value, so a frame that is edited, moved within or between
//! files, or given another key's id does not open.
//!
//! An appended file (dead letters, a file sink) is [`FILE_MAGIC`], a random
//! 16-byte file id, then frames, one per write-out; cutting it back to a
//! checkpoint's length cuts at a frame boundary. A checkpoint is
//! [`CHECKPOINT_MAGIC`] then one frame holding the plaintext checkpoint
//! file.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// The first bytes of an encrypted appended file.
pub const FILE_MAGIC: &[u8; 8] = b"WEIRENC1";
/// The first bytes of an encrypted checkpoint.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"WEIRCKE1";
/// The magic and the file id.
pub const FILE_HEADER: usize = 8 + 16;
const TAG: usize = 16;
const CHECK: usize = 4;
const MAX_KEYS: usize = 64;
/// The smallest frame: length, a one-character key id, check value, nonce, tag.
const MIN_FRAME: u64 = 4 + 1 + 1 + CHECK as u64 + NONCE_LEN as u64 + TAG as u64;

struct Key {
    id: String,
    check: [u8; CHECK],
    key: LessSafeKey,
}

/// The keys: the first seals, all open.
pub struct Keyring {
    keys: Vec<Key>,
    random: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("Keyring").field("ids", &self.ids().collect::<Vec<_>>()).finish()
    }
}

/// Why a keyring's text is refused: the entry (1-based) and what is wrong,
/// never the entry's text (it holds key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {entry}: {message}")]
pub struct KeyringError {
    pub entry: usize,
    pub message: String,
}

/// Why something sealed does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsealed {
    #[error("it is encrypted, and no keys are configured ([encryption] keys_file or keys_env)")]
    NoKeys,
    #[error("it is encrypted with key `{0}`, which the keyring does not hold")]
    UnknownKey(String),
    #[error("it is encrypted with another key than the keyring's `{0}` (the id is the same, the key differs)")]
    WrongKey(String),
    #[error("a frame at byte {0} does not authenticate (damaged, edited, moved, or another key under the same id)")]
    Forged(u64),
    #[error("a frame at byte {0} is cut short")]
    Truncated(u64),
    #[error("not an encrypted Weir file (bad magic)")]
    Magic,
}

impl Unsealed {
    /// Whether a key would open it (as opposed to the bytes being damaged).
    pub fn is_locked(&self) -> bool {
        matches!(self, Unsealed::NoKeys | Unsealed::UnknownKey(_) | Unsealed::WrongKey(_))
    }
}

impl Keyring {
    /// Reads keys: entries separated by newlines or commas, each `<id>
    /// <64 hex digits>` (32 bytes); blank entries and `#` comments are
    /// skipped. Ids are 1 to 32 of `A-Z a-z 0-9 . _ -` and differ.
    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        let mut keys: Vec<Key> = Vec::new();
        let entries = text.split(['\n', ',']).map(|e| e.split('#').next().unwrap_or("").trim());
        for (i, entry) in entries.enumerate().filter(|(_, e)| !e.is_empty()) {
            let refuse = |message: &str| KeyringError { entry: i + 1, message: message.into() };
            let mut parts = entry.split_whitespace();
            let (Some(id), Some(hex_key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(refuse("expected `<key id> <64 hex digits>`"));
            };
            if !id_ok(id.as_bytes()) {
                return Err(refuse("a key id is 1 to 32 of A-Z a-z 0-9 . _ -"));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(refuse(&format!("the key id `{id}` is used twice")));
            }
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            if hex::decode_to_slice(hex_key, &mut bytes[..]).is_err() {
                return Err(refuse(&format!("key `{id}` must be 64 hex digits (32 bytes)")));
            }
            if bytes.iter().all(|b| *b == bytes[0]) {
                return Err(refuse(&format!(
                    "key `{id}` is one byte repeated: generate it with `openssl rand -hex 32`"
                )));
            }
            let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes[..]).expect("32 bytes is an AES-256 key"));
            let mut check = [0u8; CHECK];
            let digest =
                ring::digest::digest(&ring::digest::SHA256, &[b"weir:key-check:".as_slice(), &bytes[..]].concat());
            check.copy_from_slice(&digest.as_ref()[..CHECK]);
            keys.push(Key { id: id.to_string(), check, key });
            if keys.len() > MAX_KEYS {
                return Err(refuse(&format!("more than {MAX_KEYS} keys")));
            }
        }
        if keys.is_empty() {
            return Err(KeyringError { entry: 0, message: "no keys".into() });
        }
        Ok(Keyring { keys, random: SystemRandom::new() })
    }

    /// The id of the key new writes are sealed with.
    pub fn active(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key id, the active one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Appends to `out` one frame holding `plaintext` (at most 4 GiB less
    /// a few bytes), sealed with the active key for `context`.
    pub fn seal(&self, context: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let Key { id, check, key } = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| std::io::Error::other("the system's random source failed"))?;
        let len = 1 + id.len() + CHECK + NONCE_LEN + plaintext.len() + TAG;
        if len > u32::MAX as usize {
            return Err(std::io::Error::other(format!(
                "{} bytes are more than one encrypted frame holds (4 GiB)",
                plaintext.len()
            )));
        }
        out.reserve(4 + len);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(check);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let aad = additional(context, id, check);
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad[..]), &mut out[start..])
            .map_err(|_| std::io::Error::other("AES-GCM refused to seal"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens the frame at the start of `bytes` (sealed for `context`;
    /// `at` is its offset, for errors): its plaintext and the frame's
    /// length.
    pub fn open(&self, context: &[u8], bytes: &[u8], at: u64) -> Result<(Vec<u8>, usize), Unsealed> {
        let f = split_frame(bytes, at)?;
        let key = self.key_for(&f)?;
        let mut buf = f.sealed.to_vec();
        let aad = additional(context, f.id, &f.check);
        let nonce = Nonce::assume_unique_for_key(f.nonce);
        let n = key.key.open_in_place(nonce, Aad::from(&aad[..]), &mut buf).map_err(|_| Unsealed::Forged(at))?.len();
        buf.truncate(n);
        Ok((buf, f.whole))
    }

    /// The key a frame names, if this keyring holds that very key.
    fn key_for(&self, f: &Frame<'_>) -> Result<&Key, Unsealed> {
        let key = self.keys.iter().find(|k| k.id == f.id).ok_or_else(|| Unsealed::UnknownKey(f.id.to_string()))?;
        if key.check != f.check {
            return Err(Unsealed::WrongKey(f.id.to_string()));
        }
        Ok(key)
    }

    /// A checkpoint file's bytes, sealed.
    pub fn seal_checkpoint(&self, plaintext: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + 64);
        out.extend_from_slice(CHECKPOINT_MAGIC);
        self.seal(CHECKPOINT_CONTEXT, plaintext, &mut out)?;
        Ok(out)
    }

    /// The bytes to append to a sealed file that is `at` bytes long now,
    /// holding `plaintext`. An empty file (`at` 0) gets its header first,
    /// with a new random id put in `file_id`; a longer one must have its
    /// id there (read with [`read_file_id`]).
    pub fn seal_append(&self, at: u64, file_id: &mut Option<[u8; 16]>, plaintext: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + 96);
        if at == 0 {
            let mut id = [0u8; 16];
            self.random.fill(&mut id).map_err(|_| std::io::Error::other("the system's random source failed"))?;
            out.extend_from_slice(FILE_MAGIC);
            out.extend_from_slice(&id);
            *file_id = Some(id);
        }
        let id = file_id.ok_or_else(|| std::io::Error::other("an encrypted file's id was not read"))?;
        self.seal(&frame_context(&id, at + out.len() as u64), plaintext, &mut out)?;
        Ok(out)
    }
}

fn id_ok(id: &[u8]) -> bool {
    (1..=32).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

const CHECKPOINT_CONTEXT: &[u8] = b"weir:checkpoint";

fn frame_context(file_id: &[u8; 16], offset: u64) -> [u8; 35] {
    let mut c = [0u8; 35];
    c[..11].copy_from_slice(b"weir:frame:");
    c[11..27].copy_from_slice(file_id);
    c[27..].copy_from_slice(&offset.to_le_bytes());
    c
}

fn additional(context: &[u8], id: &str, check: &[u8; CHECK]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(context.len() + 1 + id.len() + CHECK);
    aad.extend_from_slice(context);
    aad.push(id.len() as u8);
    aad.extend_from_slice(id.as_bytes());
    aad.extend_from_slice(check);
    aad
}

/// One frame, split.
struct Frame<'a> {
    id: &'a str,
    check: [u8; CHECK],
    nonce: [u8; NONCE_LEN],
    sealed: &'a [u8],
    /// Its whole length, the length field included.
    whole: usize,
}

/// Splits the frame at the start of `bytes` (at offset `at`, for errors).
fn split_frame(bytes: &[u8], at: u64) -> Result<Frame<'_>, Unsealed> {
    let short = Unsealed::Truncated(at);
    let len = u32::from_le_bytes(bytes.get(..4).ok_or(short.clone())?.try_into().expect("4 bytes")) as usize;
    if (len as u64) < MIN_FRAME - 4 {
        return Err(Unsealed::Forged(at));
    }
    let body = bytes.get(4..4 + len).ok_or(short)?;
    let id_len = body[0] as usize;
    if body.len() < 1 + id_len + CHECK + NONCE_LEN + TAG || !id_ok(&body[1..1 + id_len]) {
        return Err(Unsealed::Forged(at));
    }
    let id = std::str::from_utf8(&body[1..1 + id_len]).expect("checked: ASCII");
    let rest = &body[1 + id_len..];
    Ok(Frame {
        id,
        check: rest[..CHECK].try_into().expect("check length"),
        nonce: rest[CHECK..CHECK + NONCE_LEN].try_into().expect("nonce length"),
        sealed: &rest[CHECK + NONCE_LEN..],
        whole: 4 + len,
    })
}

/// Whether a checkpoint file's bytes are sealed.
pub fn is_sealed_checkpoint(bytes: &[u8]) -> bool {
    bytes.starts_with(CHECKPOINT_MAGIC)
}

/// Opens a sealed checkpoint file's bytes.
pub fn open_checkpoint(keyring: Option<&Keyring>, bytes: &[u8]) -> Result<Vec<u8>, Unsealed> {
    let rest = bytes.strip_prefix(CHECKPOINT_MAGIC).ok_or(Unsealed::Magic)?;
    let Some(keys) = keyring else { return Err(Unsealed::NoKeys) };
    let (plain, whole) = keys.open(CHECKPOINT_CONTEXT, rest, 8)?;
    if whole != rest.len() {
        return Err(Unsealed::Forged(8 + whole as u64));
    }
    Ok(plain)
}

/// What a sealed appended file holds: its plaintext, and frames per key id.
#[derive(Debug, Default)]
pub struct Opened {
    pub plaintext: Vec<u8>,
    pub frames_by_key: std::collections::BTreeMap<String, u64>,
}

/// Opens a whole sealed appended file (header and frames). A torn last
/// frame (a crash while it was written) is an error here; a run that
/// appends to the file cuts it off first.
pub fn open_file(keyring: Option<&Keyring>, bytes: &[u8]) -> Result<Opened, Unsealed> {
    if !bytes.starts_with(FILE_MAGIC) {
        return Err(Unsealed::Magic);
    }
    let file_id: [u8; 16] = bytes.get(8..FILE_HEADER).ok_or(Unsealed::Truncated(8))?.try_into().expect("16 bytes");
    let mut rest = &bytes[FILE_HEADER..];
    let mut at = FILE_HEADER as u64;
    let mut out = Opened::default();
    while !rest.is_empty() {
        let Some(keys) = keyring else { return Err(Unsealed::NoKeys) };
        let (plain, whole) = keys.open(&frame_context(&file_id, at), rest, at)?;
        let id = split_frame(rest, at)?.id;
        *out.frames_by_key.entry(id.to_string()).or_default() += 1;
        out.plaintext.extend_from_slice(&plain);
        rest = &rest[whole..];
        at += whole as u64;
    }
    Ok(out)
}

/// Whether the first `len` bytes of `file` are a sealed appended file
/// (`None`: empty, nothing to tell). A file shorter than the magic that
/// begins like it is a torn sealed one.
pub fn file_is_sealed(file: &mut File, len: u64) -> std::io::Result<Option<bool>> {
    if len == 0 {
        return Ok(None);
    }
    let mut head = [0u8; 8];
    let n = head.len().min(len as usize);
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head[..n])?;
    Ok(Some(head[..n] == FILE_MAGIC[..n]))
}

/// The random id of a sealed appended file.
pub fn read_file_id(file: &mut File) -> std::io::Result<[u8; 16]> {
    let mut head = [0u8; FILE_HEADER];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    if &head[..8] != FILE_MAGIC {
        return Err(std::io::Error::other("not an encrypted Weir file (bad magic)"));
    }
    Ok(head[8..].try_into().expect("16 bytes"))
}

/// Frames at the end of a file checked by opening them when a crash may
/// have left them torn or half-written.
const TAIL_CHECKED: usize = 4;

/// Where the last whole frame of a sealed appended file of `len` bytes
/// ends (0 when even the header is torn). Frames are walked by their
/// lengths; a length no frame can have ends the walk (a zero-filled tail
/// after a power loss), and the last few frames are opened, when the
/// keyring holds their key, so that one whose bytes never reached the disk
/// is cut off with what follows it.
pub fn whole_frames_end(file: &mut File, len: u64, keyring: Option<&Keyring>) -> std::io::Result<u64> {
    if len < FILE_HEADER as u64 {
        return Ok(0);
    }
    let file_id = read_file_id(file)?;
    let mut starts = Vec::new();
    let mut at = FILE_HEADER as u64;
    let mut head = [0u8; 4];
    while at + 4 <= len {
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut head)?;
        let frame_len = u64::from(u32::from_le_bytes(head));
        let next = at + 4 + frame_len;
        if frame_len < MIN_FRAME - 4 || next > len {
            break;
        }
        starts.push(at);
        at = next;
    }
    let Some(keys) = keyring else { return Ok(at) };
    let mut end = at;
    for &start in starts.iter().rev().take(TAIL_CHECKED) {
        let mut bytes = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut bytes)?;
        match keys.open(&frame_context(&file_id, start), &bytes, start) {
            Ok(_) | Err(Unsealed::UnknownKey(_)) => return Ok(end),
            Err(e @ Unsealed::WrongKey(_)) => return Err(std::io::Error::other(e.to_string())),
            Err(_) => end = start,
        }
    }
    Ok(end)
}

/// The error a writer gives for a file whose form (sealed or plaintext)
/// is not the one it writes.
pub fn mixed(what: &str, path: &std::path::Path, sealed_on_disk: bool) -> std::io::Error {
    let shown = path.display();
    std::io::Error::other(if sealed_on_disk {
        format!(
            "{what}: `{shown}` is encrypted but encryption is off for it; appending plaintext would mix the two: \
             move the file away (read it with `weir decrypt`) or turn encryption on"
        )
    } else {
        format!(
            "{what}: `{shown}` holds plaintext from an earlier run but is to be encrypted now; appending would \
             mix the two: move the file away (or encrypt it) before starting"
        )
    })
}

#[cfg(test)]
mod tests;
