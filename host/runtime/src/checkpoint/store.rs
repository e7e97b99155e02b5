//! The folder of checkpoint files: `epoch-<N>.ckpt`, the newest `keep` kept.

use super::{Checkpoint, Corrupt};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_core::at_rest::{self, Keyring};

/// A checkpoint folder.
#[derive(Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
    keep: usize,
    /// The epoch the next checkpoint gets.
    next: u64,
    /// Seals new checkpoints and opens sealed ones.
    keyring: Option<Arc<Keyring>>,
    /// With a keyring, whether plaintext checkpoints are read (once, to
    /// turn encryption on).
    plaintext_ok: bool,
}

/// A checkpoint read back, or why it could not be.
#[derive(Debug)]
pub struct Loaded {
    pub epoch: u64,
    pub path: PathBuf,
    pub checkpoint: Result<Checkpoint, Corrupt>,
}

impl CheckpointStore {
    /// Opens (creating) `dir`; the next epoch follows the newest file there.
    pub fn open(dir: &Path, keep: usize) -> std::io::Result<Self> {
        fs::create_dir_all(dir).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let next = epochs(dir)?.last().map_or(1, |(e, _)| e + 1);
        Ok(CheckpointStore { dir: dir.to_path_buf(), keep, next, keyring: None, plaintext_ok: false })
    }

    /// Encrypts new checkpoints with the keyring's active key (and opens
    /// those written with any of its keys).
    pub fn with_keyring(mut self, keyring: Option<Arc<Keyring>>) -> Self {
        self.keyring = keyring;
        self
    }

    /// With a keyring, reads plaintext checkpoints too (written before
    /// encryption was turned on) instead of refusing them.
    pub fn accepting_plaintext(mut self, yes: bool) -> Self {
        self.plaintext_ok = yes;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every checkpoint in the folder, newest first, each read and checked.
    pub fn load_all(&self) -> std::io::Result<Vec<Loaded>> {
        let mut out = Vec::new();
        for (epoch, path) in epochs(&self.dir)?.into_iter().rev() {
            let checkpoint = match fs::read(&path) {
                Ok(bytes) => self.decode(&bytes).and_then(|c| match c.epoch == epoch {
                    true => Ok(c),
                    // A checkpoint copied over another: its name is its place.
                    false => Err(Corrupt::Body(format!("named for epoch {epoch}, it holds epoch {}", c.epoch))),
                }),
                Err(e) => Err(Corrupt::Body(e.to_string())),
            };
            out.push(Loaded { epoch, path, checkpoint });
        }
        Ok(out)
    }

    /// A file's bytes, opened when sealed, read and checked.
    fn decode(&self, bytes: &[u8]) -> Result<Checkpoint, Corrupt> {
        if !at_rest::is_sealed_checkpoint(bytes) {
            if self.keyring.is_some() && !self.plaintext_ok {
                return Err(Corrupt::Locked(
                    "it is not encrypted, and [encryption] is on: anyone who can write the folder could have put \
                     it there. If it was written before encryption was turned on, set [encryption] \
                     accept_plaintext_checkpoints = true for one restart"
                        .into(),
                ));
            }
            return Checkpoint::decode(bytes);
        }
        match at_rest::open_checkpoint(self.keyring.as_deref(), bytes) {
            Ok(plain) => Checkpoint::decode(&plain),
            Err(e) if e.is_locked() => Err(Corrupt::Locked(e.to_string())),
            Err(e) => Err(Corrupt::Sealed(e.to_string())),
        }
    }

    /// Removes the checkpoints newer than `epoch` (taken but never
    /// confirmed by their transaction, or damaged), so they are never
    /// mistaken for the newest again.
    pub fn discard_after(&mut self, epoch: u64) -> std::io::Result<()> {
        for (e, path) in epochs(&self.dir)? {
            if e > epoch {
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Moves every checkpoint into `replaced-<ms>/` (a replay starts afresh
    /// but keeps the old ones for whoever wants them).
    pub fn set_aside(&mut self) -> std::io::Result<Option<PathBuf>> {
        let files = epochs(&self.dir)?;
        if files.is_empty() {
            return Ok(None);
        }
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let aside = self.dir.join(format!("replaced-{ms}"));
        fs::create_dir_all(&aside)?;
        for (_, path) in files {
            fs::rename(&path, aside.join(path.file_name().expect("a file name")))?;
        }
        Ok(Some(aside))
    }

    /// The epoch the next [`CheckpointStore::write`] records.
    pub fn next_epoch(&self) -> u64 {
        self.next
    }

    /// Writes `c` (whose epoch must be [`CheckpointStore::next_epoch`])
    /// durably and atomically, then drops the oldest beyond `keep`.
    /// Returns the file's size.
    pub fn write(&mut self, c: &Checkpoint) -> std::io::Result<u64> {
        debug_assert_eq!(c.epoch, self.next);
        let bytes = match &self.keyring {
            None => c.encode(),
            Some(keys) => keys.seal_checkpoint(&c.encode())?,
        };
        let path = self.dir.join(file_name(c.epoch));
        let tmp = path.with_extension("ckpt.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        self.next = c.epoch + 1;
        let all = epochs(&self.dir)?;
        for (_, old) in all.iter().take(all.len().saturating_sub(self.keep)) {
            fs::remove_file(old)?;
        }
        Ok(bytes.len() as u64)
    }
}

fn file_name(epoch: u64) -> String {
    format!("epoch-{epoch:020}.ckpt")
}

/// The checkpoint files in `dir`, oldest first.
fn epochs(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let epoch = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("epoch-"))
            .and_then(|n| n.strip_suffix(".ckpt"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(e) = epoch {
            out.push((e, path));
        }
    }
    out.sort();
    Ok(out)
}
