//! The dead-letter output: every event the pipeline could not take, with the
//! reason, where it came from, and its original bytes. Nothing is dropped
//! without a record here and a count in `weir_dead_letter_events_total`.

use crate::at_rest::Keyring;
use crate::event::Origin;
use crate::metrics::Metrics;
use crate::metrics::events::{DeadLettered, InternalEvent};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
/// first record, so a clean run leaves none. With a keyring, each write-out
/// (one batch's records) is one encrypted frame ([`crate::at_rest`]).
pub struct DeadLetters {
    path: PathBuf,
    /// The open file, and its id when sealed.
    file: Mutex<Option<(File, Option<[u8; 16]>)>>,
    sources: Vec<String>,
    metrics: Metrics,
    redact: Vec<String>,
    keyring: Option<Arc<Keyring>>,
}

impl DeadLetters {
    pub fn new(path: PathBuf, sources: Vec<String>, metrics: Metrics) -> Self {
        DeadLetters { path, file: Mutex::new(None), sources, metrics, redact: Vec::new(), keyring: None }
    }

    /// Encrypts the output with the keyring's active key.
    pub fn with_keyring(mut self, keyring: Option<Arc<Keyring>>) -> Self {
        self.keyring = keyring;
        self
    }

    /// Refuses a file whose form (encrypted or plaintext) is not the one
    /// this run writes (appending would mix the two), and an encrypted
    /// output that is not a regular file; cuts a torn last encrypted frame
    /// off (a crash while it was written), so that later ones stay readable.
    pub fn check_form(&self) -> std::io::Result<()> {
        let what = "the dead-letter output";
        let mut file = match OpenOptions::new().read(true).write(true).open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if self.keyring.is_none() => return Ok(()), // a device only writable, say
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return match self.keyring {
                Some(_) => Err(std::io::Error::other(format!(
                    "{what}: `{}` is not a regular file; only files are encrypted",
                    self.path.display()
                ))),
                None => Ok(()),
            };
        }
        match crate::at_rest::file_is_sealed(&mut file, meta.len())? {
            Some(sealed) if sealed != self.keyring.is_some() => Err(crate::at_rest::mixed(what, &self.path, sealed)),
            Some(true) => {
                let whole = crate::at_rest::whole_frames_end(&mut file, meta.len(), self.keyring.as_deref())?;
                if whole < meta.len() {
                    tracing::warn!(path = %self.path.display(), bytes = meta.len() - whole,
                        "a torn last encrypted frame of the dead-letter output was cut off");
                    file.set_len(whole)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
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
        let mut out = Vec::new();
        for dl in records {
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
            serde_json::to_writer(&mut out, &record)?;
            out.push(b'\n');
            let counter = self.metrics.dead_letter(dl.reason);
            DeadLettered { counter: &counter, reason: dl.reason, step: dl.step }.emit();
        }
        if out.is_empty() {
            return Ok(());
        }
        if guard.is_none() {
            *guard = Some((self.open()?, None));
        }
        let (file, file_id) = guard.as_mut().expect("opened above");
        match &self.keyring {
            None => file.write_all(&out),
            Some(keys) => {
                let at = file.metadata()?.len();
                if at > 0 && file_id.is_none() {
                    *file_id = Some(crate::at_rest::read_file_id(&mut File::open(&self.path)?)?);
                }
                let sealed = keys.seal_append(at, file_id, &out)?;
                file.write_all(&sealed)
            }
        }
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

    fn open(&self) -> std::io::Result<File> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        self.check_form()?;
        OpenOptions::new().create(true).append(true).open(&self.path)
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

/// A refused event at line `i`, for tests.
#[cfg(test)]
fn test_record(i: u64, original: &[u8]) -> DeadLetter<'_> {
    DeadLetter {
        reason: "rejected",
        detail: "no",
        step: None,
        origin: crate::event::Origin { source: 0, line: i, offset: i, partition: 0 },
        original,
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
        let record = |i: u64| test_record(i, b"{}");
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
mod sealed_tests {
    use super::*;
    use crate::at_rest::{Keyring, open_file};

    #[test]
    fn an_encrypted_output_is_cut_back_at_a_frame_and_never_mixed_with_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.bin");
        let keys = Arc::new(Keyring::parse(&format!("k1 {}", "12".repeat(31) + "34")).unwrap());
        let dead = DeadLetters::new(path.clone(), vec!["s".into()], Metrics::new("t")).with_keyring(Some(keys.clone()));
        let record = test_record;
        dead.send(record(1, br#"{"PatientName":"Ada"}"#)).unwrap();
        let at = dead.position().unwrap();
        dead.send(record(2, br#"{"PatientName":"Bob"}"#)).unwrap();
        dead.resume(&at).unwrap();
        dead.send(record(3, br#"{"PatientName":"Cy"}"#)).unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(11).any(|w| w == b"PatientName"), "no field name in the raw file");
        let text = String::from_utf8(open_file(Some(&keys), &raw).unwrap().plaintext).unwrap();
        let lines: Vec<_> = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).collect();
        assert_eq!(lines.iter().map(|l| l["line"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 3]);
        // The same file without encryption is refused, and the other way round.
        let plain = DeadLetters::new(path.clone(), vec!["s".into()], Metrics::new("t"));
        assert!(plain.check_form().unwrap_err().to_string().contains("is encrypted but encryption is off"));
        assert!(plain.send(record(4, b"{}")).is_err(), "nothing plaintext is appended");
        let other = dir.path().join("plain.ndjson");
        std::fs::write(&other, "{}\n").unwrap();
        let sealed = DeadLetters::new(other, vec![], Metrics::new("t")).with_keyring(Some(keys.clone()));
        assert!(sealed.check_form().unwrap_err().to_string().contains("holds plaintext"));
        // A torn last frame (a crash) is cut off before anything is added.
        let mut torn = raw.clone();
        torn.extend_from_slice(&[200, 0, 0, 0, 2, b'k']);
        std::fs::write(&path, &torn).unwrap();
        let again =
            DeadLetters::new(path.clone(), vec!["s".into()], Metrics::new("t")).with_keyring(Some(keys.clone()));
        again.send(record(5, b"{}")).unwrap();
        let text =
            String::from_utf8(open_file(Some(&keys), &std::fs::read(&path).unwrap()).unwrap().plaintext).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        // Encrypted output goes to regular files only.
        let device = DeadLetters::new("/dev/null".into(), vec![], Metrics::new("t")).with_keyring(Some(keys));
        assert!(device.check_form().unwrap_err().to_string().contains("not a regular file"));
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
