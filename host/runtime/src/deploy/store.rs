//! Deployed plugin versions that outlive the process. With `[checkpoint]`,
//! every version deployed through the API or the watched folder is kept in
//! `<checkpoint dir>/plugins/<sha256>.wasm`, and `plugins/versions.json`
//! records, per step, the version that runs and the history the admin API
//! shows. A restart runs the recorded version (not the pipeline file's),
//! says so in the log and shows it with origin `restored`.
//!
//! Files are written aside and renamed into place, so a crash leaves the
//! old record or the new one, never half of one.

use super::{Origin, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where a pipeline keeps its deployed versions.
#[derive(Debug)]
pub struct VersionStore {
    dir: PathBuf,
    /// One writer of the record at a time (every shard's step reports).
    writing: Mutex<()>,
}

/// What `versions.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub steps: BTreeMap<String, StepRecord>,
}

/// One step: the version that runs, and the versions before it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub active: String,
    pub history: Vec<Kept>,
}

/// A version as the record keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Kept {
    pub digest: String,
    pub origin: Origin,
    pub status: Status,
    pub loaded_at: String,
}

const RECORD: &str = "versions.json";

impl VersionStore {
    /// The store in `dir`, created with the first version kept (a pipeline
    /// that never deploys leaves no trace).
    pub fn open(dir: &Path) -> std::io::Result<VersionStore> {
        Ok(VersionStore { dir: dir.to_path_buf(), writing: Mutex::new(()) })
    }

    /// Where the component with `digest` is kept.
    pub fn path_of(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.wasm"))
    }

    /// Keeps a component's bytes (once per digest).
    pub fn keep(&self, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path_of(digest);
        if path.is_file() {
            return Ok(());
        }
        write_atomically(&path, bytes)
    }

    /// The kept component a step runs instead of its pipeline file's
    /// `file`, with its digest: when `record` says another version ran
    /// before the restart and its file is here. Says so in the log.
    pub fn instead_of(&self, step: &str, record: Option<&StepRecord>, file: &Path) -> Option<(PathBuf, String)> {
        let active = record.map(|r| r.active.as_str()).filter(|a| !a.is_empty())?;
        let file_digest = std::fs::read(file).map(|b| weir_plugin_host::digest(&b)).ok();
        if file_digest.as_deref() == Some(active) {
            return None; // the file's version is the one that ran
        }
        let path = self.path_of(active);
        if !path.is_file() {
            tracing::warn!(step, digest = active, missing = %path.display(),
                "the version deployed before the restart is gone; the pipeline file's version runs");
            return None;
        }
        // A warning: what runs is not what the pipeline file says.
        tracing::warn!(step, digest = active, file = %file.display(),
            "the step runs the version deployed before the restart, not the pipeline file's");
        Some((path, active.to_string()))
    }

    /// The record, or an empty one when there is none (or it cannot be read:
    /// then the pipeline file's versions run, with a warning).
    pub fn read(&self) -> Record {
        let path = self.dir.join(RECORD);
        let Ok(bytes) = std::fs::read(&path) else { return Record::default() };
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "the record of deployed versions is unreadable; the pipeline file's versions run");
            Record::default()
        })
    }

    /// Replaces the record of `step`.
    pub fn write_step(&self, step: &str, record: StepRecord) -> std::io::Result<()> {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = self.read();
        if all.steps.get(step) == Some(&record) {
            return Ok(());
        }
        all.steps.insert(step.to_string(), record);
        let text = serde_json::to_vec_pretty(&all).expect("JSON to memory");
        write_atomically(&self.dir.join(RECORD), &text)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create `{}`: {e}", dir.display())))?;
    }
    let aside = path.with_extension("part");
    let mut f = std::fs::File::create(&aside)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&aside, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_and_each_step_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = VersionStore::open(&dir.path().join("plugins")).unwrap();
        store.keep("ab", b"\0asm-a").unwrap();
        assert_eq!(std::fs::read(store.path_of("ab")).unwrap(), b"\0asm-a");
        let kept = Kept { digest: "ab".into(), origin: Origin::Api, status: Status::Active, loaded_at: "t".into() };
        let a = StepRecord { active: "ab".into(), history: vec![kept] };
        store.write_step("a", a.clone()).unwrap();
        store.write_step("b", StepRecord { active: "cd".into(), history: Vec::new() }).unwrap();
        let again = VersionStore::open(&dir.path().join("plugins")).unwrap().read();
        assert_eq!(again.steps["a"], a);
        assert_eq!(again.steps["b"].active, "cd");
        std::fs::write(dir.path().join("plugins").join(RECORD), "{broken").unwrap();
        assert!(store.read().steps.is_empty(), "an unreadable record is no record");
    }
}
