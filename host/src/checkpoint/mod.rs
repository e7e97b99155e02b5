//! Checkpoints: one file per epoch holding the position of every source and
//! the state of every step, written atomically and checksummed.
//!
//! A file is `WEIRCKP1`, the body's length (u64 LE), the body's SHA-256, and
//! the body (postcard). It is written under a temporary name, synced, and
//! renamed into place, so a reader sees a whole checkpoint or none; a
//! checkpoint damaged later (a torn disk write, a bad sector, an edit) fails
//! its checksum and the one before it is used, with a loud log line.

mod store;

pub use store::{CheckpointStore, Loaded};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a source is: what the next run resumes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Position {
    /// A file source: the byte offset of the next line, and lines read so far.
    File { offset: u64, line: u64 },
    /// A Kafka source: the next offset to read, per partition of its topic.
    Kafka { topic: String, offsets: BTreeMap<i32, i64> },
}

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
}

const MAGIC: &[u8; 8] = b"WEIRCKP1";
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
        if bytes.len() >= 8 && &bytes[..8] != MAGIC {
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
        postcard::from_bytes(body).map_err(|e| Corrupt::Body(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
