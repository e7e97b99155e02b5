//! Checkpoints: one file per epoch holding the position of every source and
//! the state of every step, written atomically and checksummed.
//!
//! A file is `WEIRCKP2`, the body's length (u64 LE), the body's SHA-256, and
//! the body (postcard). Files of version 1 (`WEIRCKP1`, before sinks and
//! the dead-letter output had positions) are still read. It is written under a temporary name, synced, and
//! renamed into place, so a reader sees a whole checkpoint or none; a
//! checkpoint damaged later (a torn disk write, a bad sector, an edit) fails
//! its checksum and the one before it is used, with a loud log line.
//!
//! With `[encryption]`, the whole file is sealed (`WEIRCKE1` and one
//! AES-256-GCM frame, [`weir_core::at_rest`]); one whose key is missing
//! stops the start instead of being skipped.

mod store;

pub use store::{CheckpointStore, Loaded};
pub use weir_core::position::Position;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epoch: u64,
    pub pipeline: String,
    /// Wall-clock time it was taken, epoch milliseconds.
    pub created_ms: i64,
    /// Source name → position, for the sources that have one.
    pub sources: BTreeMap<String, Position>,
    /// Step name → state, for the steps that have some (windows).
    pub steps: BTreeMap<String, Vec<u8>>,
    /// Sink name → how much it had written, for the sinks that can go back (files).
    pub sinks: BTreeMap<String, Position>,
    /// How much of the dead-letter output was written.
    pub dead_letter: Option<Position>,
}

/// The body of a version 1 file.
#[derive(Serialize, Deserialize)]
struct CheckpointV1 {
    epoch: u64,
    pipeline: String,
    created_ms: i64,
    sources: BTreeMap<String, Position>,
    steps: BTreeMap<String, Vec<u8>>,
}

const MAGIC: &[u8; 8] = b"WEIRCKP2";
const MAGIC_V1: &[u8; 8] = b"WEIRCKP1";
const HEADER: usize = 8 + 8 + 32;

/// Why a checkpoint file cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Corrupt {
    #[error("not a Weir checkpoint (bad magic)")]
    Magic,
    #[error("truncated: {have} bytes, the header says {want}")]
    Truncated { have: usize, want: usize },
    #[error("checksum mismatch (the file was damaged after it was written)")]
    Checksum,
    #[error("unreadable body: {0}")]
    Body(String),
    /// Encrypted, and the keyring lacks its key (or there is none): the
    /// run must not go on as if there were no checkpoint.
    #[error("{0}")]
    Locked(String),
    /// Encrypted, and it does not authenticate: damaged like a bad checksum.
    #[error("{0}")]
    Sealed(String),
}

impl Checkpoint {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        use sha2::Digest;
        let body = postcard::to_stdvec(self).expect("a checkpoint serializes");
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&sha2::Sha256::digest(&body));
        out.extend_from_slice(&body);
        out
    }

    /// Reads a file's bytes, checking magic, length and checksum.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, Corrupt> {
        use sha2::Digest;
        let v1 = bytes.len() >= 8 && &bytes[..8] == MAGIC_V1;
        if bytes.len() >= 8 && &bytes[..8] != MAGIC && !v1 {
            return Err(Corrupt::Magic);
        }
        if bytes.len() < HEADER {
            return Err(Corrupt::Truncated { have: bytes.len(), want: HEADER });
        }
        let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let body = &bytes[HEADER..];
        if body.len() != len {
            return Err(Corrupt::Truncated { have: bytes.len(), want: HEADER.saturating_add(len) });
        }
        if sha2::Sha256::digest(body).as_slice() != &bytes[16..48] {
            return Err(Corrupt::Checksum);
        }
        if v1 {
            let c: CheckpointV1 = postcard::from_bytes(body).map_err(|e| Corrupt::Body(e.to_string()))?;
            return Ok(Checkpoint {
                epoch: c.epoch,
                pipeline: c.pipeline,
                created_ms: c.created_ms,
                sources: c.sources,
                steps: c.steps,
                sinks: BTreeMap::new(),
                dead_letter: None,
            });
        }
        postcard::from_bytes(body).map_err(|e| Corrupt::Body(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
