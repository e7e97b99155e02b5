//! The folder of checkpoint files: `epoch-<N>.ckpt` (whole) and
//! `epoch-<N>.delta` (incremental: the entries changed since the
//! checkpoint before it, its parent).
//!
//! Reading folds each chain of deltas onto the whole checkpoint below it.
//! Retention: the newest `keep` checkpoints are kept, with every file their
//! chains need, and, when they all stand on one whole file, the whole
//! checkpoint before it (a fallback should a file of the chain be
//! damaged); older files are deleted as each new one is written. After
//! `compact_after` deltas in a row a background thread folds the newest
//! chain into a whole file of the same epoch (a crash mid-fold leaves the
//! delta, which reads the same), so that a chain, and a restore's reading,
//! stay short without the pipeline ever writing its whole state again.

use super::{Checkpoint, Corrupt};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use weir_core::at_rest::{self, Keyring};
use weir_core::entries::{self, Changes, Entries};

/// A checkpoint folder.
#[derive(Debug)]
pub struct CheckpointStore {
    reader: Reader,
    keep: usize,
    /// Deltas in a row after which the chain is folded (0: never).
    compact_after: usize,
    /// The epoch the next checkpoint gets.
    next: u64,
    folder: Option<Folder>,
    /// Set when a fold failed (a damaged file in the chain, a full disk):
    /// the next checkpoint must be whole, which starts a new chain.
    need_whole: Arc<AtomicBool>,
}

/// Every checkpoint file of a folder read and checked, oldest first: what
/// a restore chooses from before it folds the state of the one it takes.
#[derive(Debug)]
pub struct Chains {
    /// Each file's checkpoint bytes (opened), or why they cannot be had.
    files: Vec<(FileAt, Result<Vec<u8>, Corrupt>)>,
}

/// What reads (and seals) the files: shared with the folding thread.
#[derive(Debug, Clone)]
struct Reader {
    dir: PathBuf,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Whole,
    Delta,
}

/// One file of the folder.
#[derive(Debug, Clone)]
struct FileAt {
    epoch: u64,
    kind: Kind,
    path: PathBuf,
}

/// A step's state as folded so far.
#[derive(Debug)]
enum Held {
    /// A whole snapshot in the step's own format.
    Bytes(Vec<u8>),
    /// Entries, which later deltas change.
    Entries(Entries),
}

type State = BTreeMap<String, Held>;

impl CheckpointStore {
    /// Opens (creating) `dir`; the next epoch follows the newest file there.
    pub fn open(dir: &Path, keep: usize) -> std::io::Result<Self> {
        fs::create_dir_all(dir).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let next = files(dir)?.last().map_or(1, |f| f.epoch + 1);
        let reader = Reader { dir: dir.to_path_buf(), keyring: None, plaintext_ok: false };
        let need_whole = Arc::new(AtomicBool::new(false));
        Ok(CheckpointStore { reader, keep, compact_after: 0, next, folder: None, need_whole })
    }

    /// Encrypts new checkpoints with the keyring's active key (and opens
    /// those written with any of its keys).
    pub fn with_keyring(mut self, keyring: Option<Arc<Keyring>>) -> Self {
        self.reader.keyring = keyring;
        self
    }

    /// With a keyring, reads plaintext checkpoints too (written before
    /// encryption was turned on) instead of refusing them.
    pub fn accepting_plaintext(mut self, yes: bool) -> Self {
        self.reader.plaintext_ok = yes;
        self
    }

    /// Folds a chain of `n` deltas in a row into a whole file, in the
    /// background (0: never).
    pub fn compacting_after(mut self, n: usize) -> Self {
        self.compact_after = n;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.reader.dir
    }

    /// Set when the next checkpoint must be whole: a fold of the chain
    /// failed, so the chain may be unreadable and must not grow.
    pub fn whole_wanted(&self) -> Arc<AtomicBool> {
        self.need_whole.clone()
    }

    /// Every checkpoint file read and checked (not folded yet).
    pub fn read_chains(&self) -> std::io::Result<Chains> {
        let (live, _) = newest_per_epoch(files(&self.reader.dir)?);
        Ok(Chains { files: live.into_iter().map(|f| (f.clone(), self.reader.open(&f))).collect() })
    }

    /// Every checkpoint in the folder, newest first, each read, checked and
    /// folded onto its parents (each one's whole state: for tests and
    /// tools; a restore folds only the one it takes, [`Chains::load`]).
    pub fn load_all(&self) -> std::io::Result<Vec<Loaded>> {
        let mut out = Vec::new();
        fold(self.read_chains()?.decoded(), |f, folded| {
            let checkpoint = folded.map(|(c, state)| materialized(c, state));
            out.push(Loaded { epoch: f.epoch, path: f.path.clone(), checkpoint: checkpoint.map_err(Clone::clone) });
        });
        out.reverse();
        Ok(out)
    }

    /// Removes the checkpoints newer than `epoch` (taken but never
    /// confirmed by their transaction, or damaged), so they are never
    /// mistaken for the newest again.
    pub fn discard_after(&mut self, epoch: u64) -> std::io::Result<()> {
        for f in files(&self.reader.dir)? {
            if f.epoch > epoch {
                fs::remove_file(&f.path)?;
            }
        }
        Ok(())
    }

    /// Moves every checkpoint into `replaced-<ms>/` (a replay starts afresh
    /// but keeps the old ones for whoever wants them).
    pub fn set_aside(&mut self) -> std::io::Result<Option<PathBuf>> {
        let files = files(&self.reader.dir)?;
        if files.is_empty() {
            return Ok(None);
        }
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let aside = self.reader.dir.join(format!("replaced-{ms}"));
        fs::create_dir_all(&aside)?;
        for f in files {
            fs::rename(&f.path, aside.join(f.path.file_name().expect("a file name")))?;
        }
        Ok(Some(aside))
    }

    /// The epoch the next [`CheckpointStore::write`] records.
    pub fn next_epoch(&self) -> u64 {
        self.next
    }

    /// Writes `c` (whose epoch must be [`CheckpointStore::next_epoch`], and
    /// whose parent, when it is incremental, the one written before it)
    /// durably and atomically, then drops what no kept checkpoint needs.
    /// Returns the file's size.
    pub fn write(&mut self, c: &Checkpoint) -> std::io::Result<u64> {
        debug_assert_eq!(c.epoch, self.next);
        let kind = if c.incremental() { Kind::Delta } else { Kind::Whole };
        let size = self.reader.write(c.epoch, kind, &c.encode())?;
        self.next = c.epoch + 1;
        let chain = self.prune()?;
        if kind == Kind::Delta && self.compact_after > 0 && chain >= self.compact_after {
            let reader = self.reader.clone();
            let need_whole = self.need_whole.clone();
            self.folder.get_or_insert_with(|| Folder::start(reader, need_whole)).fold(c.epoch);
        }
        Ok(size)
    }

    /// Deletes the files no kept checkpoint needs; returns the length of
    /// the newest chain of deltas.
    fn prune(&self) -> std::io::Result<usize> {
        let all = files(&self.reader.dir)?;
        let (live, shadowed) = newest_per_epoch(all);
        for f in shadowed {
            remove(&f.path)?;
        }
        let mut first = live.len().saturating_sub(self.keep);
        while first > 0 && live[first].kind == Kind::Delta {
            first -= 1;
        }
        // When every kept checkpoint stands on one whole file, the whole
        // checkpoint before it is kept too: should a file of that chain be
        // damaged, a restore falls back to it (older, but whole).
        let wholes = live[first..].iter().filter(|f| f.kind == Kind::Whole).count();
        let fallback = if wholes < 2 { live[..first].iter().rposition(|f| f.kind == Kind::Whole) } else { None };
        for (i, f) in live[..first].iter().enumerate() {
            if Some(i) != fallback {
                remove(&f.path)?;
            }
        }
        Ok(live.iter().rev().take_while(|f| f.kind == Kind::Delta).count())
    }
}

impl Reader {
    /// `f`'s checkpoint bytes: read, and opened when sealed.
    fn open(&self, f: &FileAt) -> Result<Vec<u8>, Corrupt> {
        let bytes = fs::read(&f.path).map_err(|e| Corrupt::Body(e.to_string()))?;
        if !at_rest::is_sealed_checkpoint(&bytes) {
            if self.keyring.is_some() && !self.plaintext_ok {
                return Err(Corrupt::Locked(
                    "it is not encrypted, and [encryption] is on: anyone who can write the folder could have put \
                     it there. If it was written before encryption was turned on, set [encryption] \
                     accept_plaintext_checkpoints = true for one restart"
                        .into(),
                ));
            }
            return Ok(bytes);
        }
        match at_rest::open_checkpoint(self.keyring.as_deref(), &bytes) {
            Ok(plain) => Ok(plain),
            Err(e) if e.is_locked() => Err(Corrupt::Locked(e.to_string())),
            Err(e) => Err(Corrupt::Sealed(e.to_string())),
        }
    }

    /// Writes `bytes` (sealed when there is a keyring) as epoch `epoch`'s
    /// file of `kind`: under a temporary name, synced, renamed, and the
    /// folder synced. Returns the size written.
    fn write(&self, epoch: u64, kind: Kind, bytes: &[u8]) -> std::io::Result<u64> {
        let sealed;
        let bytes = match &self.keyring {
            None => bytes,
            Some(keys) => {
                sealed = keys.seal_checkpoint(bytes)?;
                &sealed
            }
        };
        let path = self.dir.join(file_name(epoch, kind));
        let tmp = path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(bytes.len() as u64)
    }

    /// Rewrites delta `epoch` as a whole checkpoint of the same epoch and
    /// removes the delta.
    fn fold_into_whole(&self, epoch: u64) -> std::io::Result<u64> {
        let (live, _) = newest_per_epoch(files(&self.dir)?);
        let start = live.iter().rposition(|f| f.epoch <= epoch && f.kind == Kind::Whole).unwrap_or(0);
        let chain = live[start..].iter().filter(|f| f.epoch <= epoch).map(|f| (f.clone(), self.open(f))).collect();
        let (c, state) = Chains { files: chain }
            .fold_to(epoch)
            .map_err(|e| std::io::Error::other(format!("checkpoint {epoch} cannot be read: {e}")))?;
        // Its state whole: entries stay entries, which the deltas after it change.
        let mut whole = Checkpoint { parent: None, ..c };
        for (k, held) in state {
            match held {
                Held::Bytes(b) => whole.steps.insert(k, b).map(|_| ()),
                Held::Entries(e) => whole.changes.insert(k, Changes::whole(e.into_iter().collect())).map(|_| ()),
            };
        }
        let size = self.write(epoch, Kind::Whole, &whole.encode())?;
        remove(&self.dir.join(file_name(epoch, Kind::Delta)))?;
        Ok(size)
    }
}

impl Chains {
    /// Each checkpoint, newest first: its positions and sinks (`steps` and
    /// `changes` left out: only the first part of each body is decoded), or
    /// why it, or one its chain needs, cannot be read.
    pub fn headers(&self) -> Vec<Loaded> {
        let mut out = Vec::new();
        let mut before: Option<(u64, Result<(), Corrupt>)> = None;
        for (f, bytes) in &self.files {
            let head = bytes.as_ref().map_err(Clone::clone).and_then(|b| checked(f, Checkpoint::decode_head(b)));
            // A delta names its parent; whole checkpoints name none.
            let ok = head.and_then(|c| match c.parent {
                None => Ok(c),
                Some(_) => parent_ok(&c, before.as_ref().map(|(e, r)| (*e, r.as_ref()))).map(|()| c),
            });
            before = Some((f.epoch, ok.as_ref().map(|_| ()).map_err(Clone::clone)));
            out.push(Loaded { epoch: f.epoch, path: f.path.clone(), checkpoint: ok });
        }
        out.reverse();
        out
    }

    /// Each file decoded whole and checked.
    fn decoded(self) -> Vec<(FileAt, Result<Checkpoint, Corrupt>)> {
        self.files
            .into_iter()
            .map(|(f, bytes)| {
                let c = bytes.and_then(|b| checked(&f, Checkpoint::decode(&b)));
                (f, c)
            })
            .collect()
    }

    /// The whole state of checkpoint `epoch`, folded from the newest whole
    /// checkpoint at or below it.
    pub fn load(self, epoch: u64) -> Result<Checkpoint, Corrupt> {
        self.fold_to(epoch).map(|(c, state)| materialized(&c, &state))
    }

    /// Checkpoint `epoch` (`steps` and `changes` emptied) and its state.
    fn fold_to(mut self, epoch: u64) -> Result<(Checkpoint, State), Corrupt> {
        self.files.retain(|(f, _)| f.epoch <= epoch);
        if let Some(base) = self.files.iter().rposition(|(f, _)| f.kind == Kind::Whole) {
            self.files.drain(..base);
        }
        let chain = self.decoded();
        let mut header = None;
        let last = fold(chain, |f, folded| {
            if f.epoch == epoch {
                header = Some(folded.map(|(c, _)| c.clone()).map_err(Clone::clone));
            }
        });
        match (header, last) {
            (Some(Ok(c)), Some((e, Ok(state)))) if e == epoch => Ok((c, state)),
            (Some(Err(e)), _) => Err(e),
            _ => Err(Corrupt::Body(format!("checkpoint {epoch} is gone"))),
        }
    }
}

/// `c`, read from `f`, unless it holds another epoch than its name says.
fn checked(f: &FileAt, c: Result<Checkpoint, Corrupt>) -> Result<Checkpoint, Corrupt> {
    match c {
        Ok(c) if c.epoch != f.epoch => {
            // A checkpoint copied over another: its name is its place.
            Err(Corrupt::Body(format!("named for epoch {}, it holds epoch {}", f.epoch, c.epoch)))
        }
        c => c,
    }
}

/// Checkpoint `c` with its folded `state` as the steps' states.
fn materialized(c: &Checkpoint, state: &State) -> Checkpoint {
    Checkpoint {
        steps: state
            .iter()
            .map(|(k, held)| match held {
                Held::Bytes(b) => (k.clone(), b.clone()),
                Held::Entries(e) => (k.clone(), entries::encode(e)),
            })
            .collect(),
        changes: BTreeMap::new(),
        parent: None,
        ..c.clone()
    }
}

/// Whether incremental checkpoint `c` can be read, given the one read
/// before it (its epoch, and whether it could be read).
fn parent_ok<T>(c: &Checkpoint, before: Option<(u64, Result<T, &Corrupt>)>) -> Result<(), Corrupt> {
    let parent = c.parent.unwrap_or(0);
    match before {
        Some((epoch, Ok(_))) if epoch == parent => Ok(()),
        Some((epoch, Err(e))) if epoch == parent => Err(match e {
            Corrupt::Locked(why) => Corrupt::Locked(why.clone()),
            e => Corrupt::Body(format!("it changes checkpoint {parent}, which cannot be read: {e}")),
        }),
        _ => Err(Corrupt::Body(format!("it changes checkpoint {parent}, which is missing"))),
    }
}

/// Folds `files` (read, oldest first), each delta onto the state of its
/// parent; gives each checkpoint (`steps` and `changes` emptied, its state
/// in `State`) or why it cannot be read to `each`, and returns the last
/// one's epoch and state.
fn fold(
    files: Vec<(FileAt, Result<Checkpoint, Corrupt>)>,
    mut each: impl FnMut(&FileAt, Result<(&Checkpoint, &State), &Corrupt>),
) -> Option<(u64, Result<State, Corrupt>)> {
    // The state of the checkpoint read last, or why it could not be.
    let mut before: Option<(u64, Result<State, Corrupt>)> = None;
    for (f, read) in files {
        let read = read.and_then(|mut c| {
            let mut state = State::new();
            if c.incremental() {
                let prior = before.take();
                parent_ok(&c, prior.as_ref().map(|(e, r)| (*e, r.as_ref())))?;
                state = prior.and_then(|(_, r)| r.ok()).unwrap_or_default();
                // The entries of the steps that report changes now; a step
                // that reports none has no state any more.
                state.retain(|k, h| matches!(h, Held::Entries(_)) && c.changes.contains_key(k));
            }
            for (k, b) in std::mem::take(&mut c.steps) {
                state.insert(k, Held::Bytes(b));
            }
            for (k, changes) in std::mem::take(&mut c.changes) {
                let mut e = match state.remove(&k) {
                    Some(Held::Entries(e)) => e,
                    _ => Entries::new(),
                };
                changes.apply(&mut e);
                state.insert(k, Held::Entries(e));
            }
            Ok((c, state))
        });
        match &read {
            Ok((c, state)) => each(&f, Ok((c, state))),
            Err(e) => each(&f, Err(e)),
        }
        before = Some((f.epoch, read.map(|(_, s)| s)));
    }
    before
}

/// The thread that folds chains, one at a time; a request while it is busy
/// is dropped (the next delta asks again).
#[derive(Debug)]
struct Folder {
    tx: Option<crossbeam_channel::Sender<u64>>,
    busy: Arc<AtomicBool>,
    need_whole: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Folder {
    /// Starts the thread; a fold that fails sets `need_whole`.
    fn start(reader: Reader, need_whole: Arc<AtomicBool>) -> Self {
        let (tx, rx) = crossbeam_channel::bounded::<u64>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let (flag, wanted) = (busy.clone(), need_whole.clone());
        let thread = std::thread::Builder::new()
            .name("checkpoint-fold".into())
            .spawn(move || {
                // Not busy any more, also if a fold panics (then the next
                // checkpoint is whole, and no fold is asked for again).
                struct Done(Arc<AtomicBool>, Arc<AtomicBool>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        if std::thread::panicking() {
                            self.1.store(true, Ordering::Release);
                        }
                        self.0.store(false, Ordering::Release);
                    }
                }
                for epoch in rx {
                    let _done = Done(flag.clone(), need_whole.clone());
                    let started = std::time::Instant::now();
                    match reader.fold_into_whole(epoch) {
                        Ok(bytes) => tracing::debug!(
                            epoch,
                            bytes,
                            ms = started.elapsed().as_secs_f64() * 1e3,
                            "checkpoint chain folded into a whole checkpoint"
                        ),
                        // The next checkpoint is whole: a chain that cannot
                        // be folded may not be readable either, and must not grow.
                        Err(error) => {
                            need_whole.store(true, Ordering::Release);
                            tracing::error!(epoch, %error, "cannot fold the checkpoint chain: the next checkpoint is whole")
                        }
                    }
                }
            })
            .map_err(|e| tracing::warn!(error = %e, "cannot start the checkpoint folding thread"))
            .ok();
        Folder { tx: Some(tx), busy, need_whole: wanted, thread }
    }

    fn fold(&mut self, epoch: u64) {
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let sent = self.tx.as_ref().map(|tx| tx.try_send(epoch));
        if !matches!(sent, Some(Ok(()))) {
            self.busy.store(false, Ordering::Release);
        }
        if self.thread.is_none() || matches!(sent, Some(Err(crossbeam_channel::TrySendError::Disconnected(_)))) {
            // No thread to fold (it could not start, or it died): the
            // pipeline writes a whole checkpoint instead.
            self.need_whole.store(true, Ordering::Release);
        }
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        // A fold in progress finishes (or would leave only a temporary file).
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn remove(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn file_name(epoch: u64, kind: Kind) -> String {
    match kind {
        Kind::Whole => format!("epoch-{epoch:020}.ckpt"),
        Kind::Delta => format!("epoch-{epoch:020}.delta"),
    }
}

/// The checkpoint files in `dir`, oldest first (a whole file before a
/// delta of the same epoch).
fn files(dir: &Path) -> std::io::Result<Vec<FileAt>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("epoch-")) else {
            continue;
        };
        let (number, kind) = match (name.strip_suffix(".ckpt"), name.strip_suffix(".delta")) {
            (Some(n), _) => (n, Kind::Whole),
            (_, Some(n)) => (n, Kind::Delta),
            _ => continue,
        };
        if let Ok(epoch) = number.parse::<u64>() {
            out.push(FileAt { epoch, kind, path });
        }
    }
    out.sort_by_key(|f| (f.epoch, f.kind));
    Ok(out)
}

/// One file per epoch (a whole one over a delta of the same epoch, which a
/// fold left behind), and the files shadowed so.
fn newest_per_epoch(files: Vec<FileAt>) -> (Vec<FileAt>, Vec<FileAt>) {
    let (mut live, mut shadowed) = (Vec::<FileAt>::new(), Vec::new());
    for f in files {
        match live.last() {
            Some(last) if last.epoch == f.epoch => shadowed.push(f),
            _ => live.push(f),
        }
    }
    (live, shadowed)
}
