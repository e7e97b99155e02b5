//! The dead-letter output: every event the pipeline could not take, with the
//! reason, where it came from, and its original bytes. Nothing is dropped
//! without a record here and a count in `weir_dead_letter_events_total`.

use crate::event::Origin;
use crate::metrics::Metrics;
use crate::metrics::events::{DeadLettered, InternalEvent};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;

/// Where dead letters go when the pipeline file names no `[dead_letter]` path.
pub const DEFAULT_PATH: &str = "dead-letter.ndjson";

/// One refused event.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// A short, fixed reason: `invalid-json`, `invalid-event`, `rejected`, `plugin-trap`, ...
    pub reason: &'a str,
    /// The full explanation (a parser message, the plugin's own reason, ...).
    pub detail: &'a str,
    /// The step that refused it; `None` at ingestion.
    pub step: Option<&'a str>,
    pub origin: Origin,
    /// The bytes as they reached the refusing stage.
    pub original: &'a [u8],
}

#[derive(Serialize)]
struct Record<'a> {
    reason: &'a str,
    detail: &'a str,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    original: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_hex: Option<String>,
    /// With redaction on, an original that is not JSON is withheld; its size.
    #[serde(skip_serializing_if = "Option::is_none")]
    withheld_bytes: Option<usize>,
}

/// The dead-letter writer, shared by all stages. The file is created on the
/// first record, so a clean run leaves none.
pub struct DeadLetters {
    path: PathBuf,
    file: Mutex<Option<BufWriter<File>>>,
    sources: Vec<String>,
    metrics: Metrics,
    redact: Vec<String>,
}

impl DeadLetters {
    pub fn new(path: PathBuf, sources: Vec<String>, metrics: Metrics) -> Self {
        DeadLetters { path, file: Mutex::new(None), sources, metrics, redact: Vec::new() }
    }

    /// Masks the values of these fields ("***", at any depth) in the
    /// original events of the records; an original that is not JSON is
    /// withheld (only its size is written).
    pub fn with_redact(mut self, fields: Vec<String>) -> Self {
        self.redact = fields;
        self
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes one record (and flushes it: dead letters are rare and must survive a crash).
    pub fn send(&self, dl: DeadLetter<'_>) -> std::io::Result<()> {
        self.send_all(std::iter::once(dl))
    }

    /// Writes several records under one lock and one flush.
    pub fn send_all<'a>(&self, records: impl IntoIterator<Item = DeadLetter<'a>>) -> std::io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut wrote = false;
        for dl in records {
            if guard.is_none() {
                *guard = Some(self.open()?);
            }
            let w = guard.as_mut().expect("opened above");
            let masked;
            let (original, withheld_bytes) = if self.redact.is_empty() {
                (dl.original, None)
            } else {
                match serde_json::from_slice::<serde_json::Value>(dl.original) {
                    Ok(mut v) => {
                        mask(&mut v, &self.redact);
                        masked = serde_json::to_vec(&v).expect("JSON to memory");
                        (&masked[..], None)
                    }
                    Err(_) => (&[][..], Some(dl.original.len())),
                }
            };
            let text = if withheld_bytes.is_some() { None } else { std::str::from_utf8(original).ok() };
            let record = Record {
                reason: dl.reason,
                detail: dl.detail,
                source: self.sources.get(dl.origin.source as usize).map_or("", String::as_str),
                step: dl.step,
                line: (dl.origin.line > 0).then_some(dl.origin.line),
                offset: dl.origin.offset,
                original: text,
                original_hex: (text.is_none() && withheld_bytes.is_none()).then(|| hex::encode(original)),
                withheld_bytes,
            };
            serde_json::to_writer(&mut *w, &record)?;
            w.write_all(b"\n")?;
            let counter = self.metrics.dead_letter(dl.reason);
            DeadLettered { counter: &counter, reason: dl.reason, step: dl.step }.emit();
            wrote = true;
        }
        if wrote && let Some(w) = guard.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    /// Where the output stands (every record is flushed as it is written):
    /// what a checkpoint records.
    pub fn position(&self) -> std::io::Result<crate::position::Position> {
        let _guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let offset = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(crate::position::Position::File { offset, line: 0 })
    }

    /// Cuts the output back to a position a checkpoint recorded: records
    /// written after it are written again by the restarted run, once.
    pub fn resume(&self, position: &crate::position::Position) -> std::io::Result<()> {
        let crate::position::Position::File { offset, .. } = *position else { return Ok(()) };
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        *guard = None;
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        // Only a regular file is cut back (never a pipe or /dev/stderr).
        if meta.is_file() && offset < meta.len() {
            OpenOptions::new().write(true).open(&self.path)?.set_len(offset)?;
        }
        Ok(())
    }

    fn open(&self) -> std::io::Result<BufWriter<File>> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        Ok(BufWriter::new(file))
    }
}

/// Replaces the value of every member named in `fields`, at any depth, with "***".
fn mask(v: &mut serde_json::Value, fields: &[String]) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if fields.iter().any(|f| f == k) {
                    *val = serde_json::Value::String("***".into());
                } else {
                    mask(val, fields);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| mask(i, fields)),
        _ => {}
    }
}

#[cfg(test)]
mod resume_tests {
    use super::*;
    use crate::position::Position;

    #[test]
    fn the_output_is_cut_back_to_a_checkpoint_but_a_device_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.ndjson");
        let dead = DeadLetters::new(path.clone(), vec!["s".into()], Metrics::new("t"));
        let record = |i: u64| DeadLetter {
            reason: "rejected",
            detail: "no",
            step: None,
            origin: crate::event::Origin { source: 0, line: i, offset: i, partition: 0 },
            original: b"{}",
        };
        dead.send(record(1)).unwrap();
        let at = dead.position().unwrap();
        dead.send(record(2)).unwrap();
        dead.resume(&at).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        dead.send(record(3)).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"line\":3"));
        let null = DeadLetters::new("/dev/null".into(), vec![], Metrics::new("t"));
        null.resume(&Position::File { offset: 0, line: 0 }).unwrap();
        assert!(std::path::Path::new("/dev/null").exists());
    }
}

#[cfg(test)]
mod redact_tests {
    #[test]
    fn named_fields_are_masked_at_any_depth() {
        let mut v = serde_json::json!({"PatientId": "P1", "vitals": [{"ssn": "123", "hr": 80}], "hr": 70});
        super::mask(&mut v, &["PatientId".into(), "ssn".into()]);
        assert_eq!(v, serde_json::json!({"PatientId": "***", "vitals": [{"ssn": "***", "hr": 80}], "hr": 70}));
    }
}
