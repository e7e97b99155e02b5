//! Checkpoints: one file per epoch holding the position of every source and
//! the state of every step, written atomically and checksummed.
//!
//! A checkpoint is whole (`epoch-N.ckpt`) or incremental (`epoch-N.delta`):
//! an incremental one holds, for the steps that keep their state as
//! entries, only the entries changed since its parent, the checkpoint
//! before it; reading it folds the chain down to the last whole one
//! ([`store`]). A background thread folds long chains into a whole file.
//!
//! A file is `WEIRCKP4`, the body's length (u64 LE), the body's SHA-256, and
//! the body (postcard: a head of positions and parent, then the state).
//! Files of versions 1 (`WEIRCKP1`, before sinks and the dead-letter
//! output had positions), 2 (`WEIRCKP2`, before incremental checkpoints)
//! and 3 (`WEIRCKP3`, the body in one part) are still read. It is written under a temporary name, synced, and
//! renamed into place, so a reader sees a whole checkpoint or none; a
//! checkpoint damaged later (a torn disk write, a bad sector, an edit) fails
//! its checksum and the one before it is used, with a loud log line.
//!
//! With `[encryption]`, the whole file is sealed (`WEIRCKE1` and one
//! AES-256-GCM frame, [`weir_core::at_rest`]); one whose key is missing
//! stops the start instead of being skipped.

mod store;

pub use store::{CheckpointStore, Loaded};
pub use weir_core::entries::Changes;
pub use weir_core::position::Position;

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub epoch: u64,
    pub pipeline: String,
    /// Wall-clock time it was taken, epoch milliseconds.
    pub created_ms: i64,
    /// Source name → position, for the sources that have one.
    pub sources: BTreeMap<String, Position>,
    /// State key (a step's name and shard) → state, for the steps that
    /// have some. As read back, every step's state is here, entries
    /// [`weir_core::entries::encode`]d.
    pub steps: BTreeMap<String, Vec<u8>>,
    /// State key → the entries changed since `parent` (or all, `whole`),
    /// for the steps that keep their state as entries; empty as read back.
    pub changes: BTreeMap<String, Changes>,
    /// The checkpoint whose state `changes` change, when any is not whole.
    pub parent: Option<u64>,
    /// Sink name → how much it had written, for the sinks that can go back (files).
    pub sinks: BTreeMap<String, Position>,
    /// How much of the dead-letter output was written.
    pub dead_letter: Option<Position>,
}

/// The body of a version 3 file (incremental, one part).
#[derive(Serialize, Deserialize)]
struct CheckpointV3 {
    epoch: u64,
    pipeline: String,
    created_ms: i64,
    sources: BTreeMap<String, Position>,
    steps: BTreeMap<String, Vec<u8>>,
    changes: BTreeMap<String, Changes>,
    parent: Option<u64>,
    sinks: BTreeMap<String, Position>,
    dead_letter: Option<Position>,
}

/// The body of a version 2 file.
#[derive(Serialize, Deserialize)]
struct CheckpointV2 {
    epoch: u64,
    pipeline: String,
    created_ms: i64,
    sources: BTreeMap<String, Position>,
    steps: BTreeMap<String, Vec<u8>>,
    sinks: BTreeMap<String, Position>,
    dead_letter: Option<Position>,
}

impl From<CheckpointV2> for Checkpoint {
    fn from(c: CheckpointV2) -> Self {
        let CheckpointV2 { epoch, pipeline, created_ms, sources, steps, sinks, dead_letter } = c;
        let (changes, parent) = (BTreeMap::new(), None);
        Checkpoint { epoch, pipeline, created_ms, sources, steps, changes, parent, sinks, dead_letter }
    }
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

const MAGIC: &[u8; 8] = b"WEIRCKP4";
const MAGIC_V3: &[u8; 8] = b"WEIRCKP3";
const MAGIC_V2: &[u8; 8] = b"WEIRCKP2";
const MAGIC_V1: &[u8; 8] = b"WEIRCKP1";
const HEADER: usize = 8 + 8 + 32;

/// Why a checkpoint file cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
    /// Whether this checkpoint changes another one (some step's changes
    /// are not its whole state).
    pub fn incremental(&self) -> bool {
        self.changes.values().any(|c| !c.whole)
    }

    /// The file's bytes. The body is the small part first (positions,
    /// parent) and then the steps' state, so that a reader choosing among
    /// checkpoints decodes only the first ([`Checkpoint::decode_head`]).
    pub fn encode(&self) -> Vec<u8> {
        use sha2::Digest;
        let head = Head {
            epoch: self.epoch,
            pipeline: Cow::Borrowed(self.pipeline.as_str()),
            created_ms: self.created_ms,
            sources: Cow::Borrowed(&self.sources),
            sinks: Cow::Borrowed(&self.sinks),
            dead_letter: Cow::Borrowed(&self.dead_letter),
            parent: self.parent,
        };
        let mut body = postcard::to_stdvec(&head).expect("a checkpoint serializes");
        let state = State { steps: Cow::Borrowed(&self.steps), changes: Cow::Borrowed(&self.changes) };
        body.extend(postcard::to_stdvec(&state).expect("a checkpoint serializes"));
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&sha2::Sha256::digest(&body));
        out.extend_from_slice(&body);
        out
    }

    /// Reads a file's bytes, checking magic, length and checksum.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, Corrupt> {
        Self::decode_as(bytes, true)
    }

    /// As [`Checkpoint::decode`], leaving the steps' state out (`steps`
    /// and `changes` empty) for files of this version: what choosing a
    /// checkpoint needs. Older versions are read whole.
    pub fn decode_head(bytes: &[u8]) -> Result<Checkpoint, Corrupt> {
        Self::decode_as(bytes, false)
    }

    fn decode_as(bytes: &[u8], with_state: bool) -> Result<Checkpoint, Corrupt> {
        use sha2::Digest;
        let v1 = bytes.len() >= 8 && &bytes[..8] == MAGIC_V1;
        let v2 = bytes.len() >= 8 && &bytes[..8] == MAGIC_V2;
        let v3 = bytes.len() >= 8 && &bytes[..8] == MAGIC_V3;
        if bytes.len() >= 8 && &bytes[..8] != MAGIC && !v1 && !v2 && !v3 {
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
        let unreadable = |e: postcard::Error| Corrupt::Body(e.to_string());
        if v1 {
            let c: CheckpointV1 = postcard::from_bytes(body).map_err(unreadable)?;
            let (sinks, dead_letter) = (BTreeMap::new(), None);
            let CheckpointV1 { epoch, pipeline, created_ms, sources, steps } = c;
            return Ok(CheckpointV2 { epoch, pipeline, created_ms, sources, steps, sinks, dead_letter }.into());
        }
        if v2 {
            let c: CheckpointV2 = postcard::from_bytes(body).map_err(unreadable)?;
            return Ok(c.into());
        }
        if v3 {
            let c: CheckpointV3 = postcard::from_bytes(body).map_err(unreadable)?;
            let CheckpointV3 { epoch, pipeline, created_ms, sources, steps, changes, parent, sinks, dead_letter } = c;
            return Ok(Checkpoint { epoch, pipeline, created_ms, sources, steps, changes, parent, sinks, dead_letter });
        }
        let (head, rest): (Head<'static>, &[u8]) = postcard::take_from_bytes(body).map_err(unreadable)?;
        let state: State<'static> = match with_state {
            true => postcard::from_bytes(rest).map_err(unreadable)?,
            false => State { steps: Cow::Owned(BTreeMap::new()), changes: Cow::Owned(BTreeMap::new()) },
        };
        Ok(Checkpoint {
            epoch: head.epoch,
            pipeline: head.pipeline.into_owned(),
            created_ms: head.created_ms,
            sources: head.sources.into_owned(),
            steps: state.steps.into_owned(),
            changes: state.changes.into_owned(),
            parent: head.parent,
            sinks: head.sinks.into_owned(),
            dead_letter: head.dead_letter.into_owned(),
        })
    }
}

/// The first part of a version 3 body: what choosing a checkpoint reads.
#[derive(Serialize, Deserialize)]
struct Head<'a> {
    epoch: u64,
    pipeline: Cow<'a, str>,
    created_ms: i64,
    sources: Cow<'a, BTreeMap<String, Position>>,
    sinks: Cow<'a, BTreeMap<String, Position>>,
    dead_letter: Cow<'a, Option<Position>>,
    parent: Option<u64>,
}

/// The second part of a version 3 body: the steps' state.
#[derive(Serialize, Deserialize)]
struct State<'a> {
    steps: Cow<'a, BTreeMap<String, Vec<u8>>>,
    changes: Cow<'a, BTreeMap<String, Changes>>,
}

#[cfg(test)]
mod tests;
