//! The dead-letter output: every event the pipeline could not take, with the
//! reason, where it came from, and its original bytes. Nothing is dropped
//! without a record here and a count in `weir_dead_letter_events_total`.

use crate::event::Origin;
use crate::metrics::Metrics;
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
}

/// The dead-letter writer, shared by all stages. The file is created on the
/// first record, so a clean run leaves none.
pub struct DeadLetters {
    path: PathBuf,
    file: Mutex<Option<BufWriter<File>>>,
    sources: Vec<String>,
    metrics: Metrics,
}

impl DeadLetters {
    pub fn new(path: PathBuf, sources: Vec<String>, metrics: Metrics) -> Self {
        DeadLetters { path, file: Mutex::new(None), sources, metrics }
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
            let text = std::str::from_utf8(dl.original).ok();
            let record = Record {
                reason: dl.reason,
                detail: dl.detail,
                source: self.sources.get(dl.origin.source as usize).map_or("", String::as_str),
                step: dl.step,
                line: (dl.origin.line > 0).then_some(dl.origin.line),
                offset: dl.origin.offset,
                original: text,
                original_hex: text.is_none().then(|| hex::encode(dl.original)),
            };
            serde_json::to_writer(&mut *w, &record)?;
            w.write_all(b"\n")?;
            self.metrics.dead_letter(dl.reason).inc();
            wrote = true;
        }
        if wrote && let Some(w) = guard.as_mut() {
            w.flush()?;
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
