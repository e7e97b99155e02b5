//! NDJSON to a writer: one payload and a newline per event. The file sink
//! writes to a file; the stdout sink writes with it too.
//!
//! Lines reach the file whole: they are gathered in a buffer that is only
//! ever written out between lines, in one `write` each time, so a process
//! killed at any moment leaves whole lines (a torn line can only come from
//! a crash of the machine, and the next run cuts it off).
//!
//! A file sink knows how many bytes of its file are its own and flushed:
//! a checkpoint records that, and a restart from the checkpoint cuts the
//! file back to it, so what was written after the checkpoint (and is
//! written again by the restarted run) appears once. Without a checkpoint
//! to resume from, `mode` says what happens to what the file holds
//! ([`SinkMode`]). Buffered lines are written out every `flush_interval`,
//! at every checkpoint and at the end.
//!
//! Encrypted ([`weir_core::at_rest`]), each write-out is one frame: the file
//! is cut back at frame boundaries, and a torn last frame is cut off as a
//! torn line is.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::at_rest::{self, Keyring};
use weir_core::event::Batch;
use weir_core::position::Position;
use weir_core::sink::{RunStart, Sink, metadata_member, write_with_member};

/// Bytes gathered before they are written out.
const BUFFER: usize = 1 << 20;

/// What a file sink does with the lines its file already holds when the
/// run does not resume from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkMode {
    /// Empty the file when every source starts from the beginning of its
    /// input (the run writes everything again); otherwise append (the
    /// default).
    #[default]
    Auto,
    /// Always empty the file.
    Truncate,
    /// Keep the lines and add after them (a torn last line is cut off).
    Append,
}

impl SinkMode {
    fn name(self) -> &'static str {
        match self {
            SinkMode::Auto => "auto",
            SinkMode::Truncate => "truncate",
            SinkMode::Append => "append",
        }
    }
}

/// Opens a file sink: NDJSON to `path`. Nothing in the file changes until
/// [`Sink::begin`].
#[cfg(test)]
pub fn open_file(name: &str, path: &Path, metadata: bool) -> std::io::Result<FileSink> {
    open_file_with(name, path, metadata, SinkMode::default(), Duration::from_secs(1), None)
}

/// [`open_file`] with its `mode`, `flush_interval`, and the keyring that
/// encrypts it (none: plaintext).
pub fn open_file_with(
    name: &str,
    path: &Path,
    metadata: bool,
    mode: SinkMode,
    flush_interval: Duration,
    keyring: Option<Arc<Keyring>>,
) -> std::io::Result<FileSink> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file: File = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("sink `{name}`: {}: {e}", path.display())))?;
    let written = file.metadata()?.len();
    let mut counted = Counted { file, written, keyring, file_id: None };
    // Refused now, before anything changes, unless the mode empties it.
    if mode != SinkMode::Truncate {
        counted.check_form(name, path)?;
    }
    Ok(FileSink {
        out: Ndjson::new(counted, metadata, false),
        name: name.into(),
        path: path.to_path_buf(),
        mode,
        flush_interval,
        flushed_at: Instant::now(),
    })
}

/// A file and the bytes that reached it.
pub struct Counted {
    file: File,
    written: u64,
    /// Each write is sealed as one frame.
    keyring: Option<Arc<Keyring>>,
    /// The sealed file's id, once read or written.
    file_id: Option<[u8; 16]>,
}

impl Write for Counted {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let Some(keys) = &self.keyring else {
            let n = self.file.write(bytes)?;
            self.written += n as u64;
            return Ok(n);
        };
        if self.written > 0 && self.file_id.is_none() {
            self.file_id = Some(at_rest::read_file_id(&mut self.file)?);
        }
        let sealed = keys.seal_append(self.written, &mut self.file_id, bytes)?;
        if let Err(e) = self.file.write_all(&sealed) {
            // Part of the frame may be there: the next one is sealed for
            // where the file really ends (the run stops on this error).
            self.written = self.file.metadata().map_or(self.written, |m| m.len());
            return Err(e);
        }
        self.written += sealed.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Counted {
    fn is_file(&self) -> std::io::Result<bool> {
        Ok(self.file.metadata()?.is_file())
    }

    fn cut(&mut self, to: u64) -> std::io::Result<()> {
        self.file.set_len(to)?;
        self.written = to;
        if to == 0 {
            self.file_id = None;
        }
        Ok(())
    }

    /// Refuses a file whose form (encrypted or plaintext) is not the one
    /// this sink writes: appending would mix the two.
    fn check_form(&mut self, name: &str, path: &Path) -> std::io::Result<()> {
        match at_rest::file_is_sealed(&mut self.file, self.written)? {
            Some(sealed) if sealed != self.keyring.is_some() => {
                Err(at_rest::mixed(&format!("sink `{name}`"), path, sealed))
            }
            _ => Ok(()),
        }
    }

    /// Where the file's last whole line (or encrypted frame) ends.
    fn last_line_end(&mut self) -> std::io::Result<u64> {
        if let Some(keys) = &self.keyring {
            return at_rest::whole_frames_end(&mut self.file, self.written, Some(keys));
        }
        let mut end = self.written;
        let mut chunk = vec![0u8; 64 << 10];
        while end > 0 {
            let from = end.saturating_sub(chunk.len() as u64);
            let n = (end - from) as usize;
            self.file.seek(SeekFrom::Start(from))?;
            self.file.read_exact(&mut chunk[..n])?;
            if let Some(i) = memchr::memrchr(b'\n', &chunk[..n]) {
                return Ok(from + i as u64 + 1);
            }
            end = from;
        }
        Ok(0)
    }
}

/// The file sink.
pub struct FileSink {
    out: Ndjson<Counted>,
    name: String,
    path: PathBuf,
    mode: SinkMode,
    flush_interval: Duration,
    flushed_at: Instant,
}

impl Sink for FileSink {
    fn write(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize> {
        let n = self.out.write(batch, indices)?;
        self.tick(Instant::now())?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flushed_at = Instant::now();
        self.out.flush()
    }

    fn tick(&mut self, now: Instant) -> std::io::Result<()> {
        if now.duration_since(self.flushed_at) >= self.flush_interval && self.out.pending() > 0 {
            self.flush()?;
        }
        Ok(())
    }

    fn begin(&mut self, start: RunStart) -> std::io::Result<Option<String>> {
        let counted = &mut self.out.out;
        if !counted.is_file()? || counted.written == 0 {
            return Ok(None);
        }
        if start == RunStart::Resumed {
            counted.check_form(&self.name, &self.path)?;
            // Resumed without being cut back (a push source): a torn
            // frame would make every later one unreadable.
            let held = counted.written;
            let whole = if counted.keyring.is_some() { counted.last_line_end()? } else { held };
            if whole < held {
                counted.cut(whole)?;
                return Ok(Some(format!(
                    "a torn last encrypted frame of {} bytes was cut off {}",
                    held - whole,
                    self.path.display()
                )));
            }
            return Ok(None);
        }
        let held = counted.written;
        let shown = self.path.display();
        let truncate = match self.mode {
            SinkMode::Truncate => true,
            SinkMode::Append => false,
            SinkMode::Auto => start == RunStart::FromBeginning,
        };
        if truncate {
            counted.cut(0)?;
            return Ok(Some(format!(
                "emptied {shown}: {held} bytes from an earlier run (mode = \"{}\")",
                self.mode.name()
            )));
        }
        counted.check_form(&self.name, &self.path)?;
        let whole = counted.last_line_end()?;
        Ok(Some(if whole < held {
            counted.cut(whole)?;
            let what = if counted.keyring.is_some() { "encrypted frame" } else { "line" };
            format!(
                "appending to {shown} after {whole} bytes; a torn last {what} of {} bytes was cut off",
                held - whole
            )
        } else {
            format!("appending to {shown} after {held} bytes (mode = \"{}\")", self.mode.name())
        }))
    }

    fn position(&self) -> Option<Position> {
        Some(Position::File { offset: self.out.out.written, line: 0 })
    }

    fn resume(&mut self, position: &Position) -> std::io::Result<()> {
        let Position::File { offset, .. } = *position else {
            return Err(std::io::Error::other(format!(
                "sink `{}`: the checkpoint's position is not a file's",
                self.name
            )));
        };
        self.out.flush()?;
        let counted = &mut self.out.out;
        if !counted.is_file()? {
            return Ok(()); // a pipe or a device: nothing to cut back
        }
        counted.check_form(&self.name, &self.path)?;
        if offset > counted.written {
            tracing::warn!(sink = %self.name, offset, length = counted.written,
                "the file is shorter than the checkpoint recorded (was it replaced?); it is kept as it is");
            return Ok(());
        }
        if offset < counted.written {
            tracing::info!(sink = %self.name, from = counted.written, to = offset,
                "output written after the checkpoint is cut off; it is written again");
            counted.cut(offset)?;
        }
        Ok(())
    }
}

/// NDJSON to any writer: one payload and a newline per event, gathered and
/// written out between lines only.
pub struct Ndjson<W: Write + Send> {
    out: W,
    buf: Vec<u8>,
    metadata: bool,
    /// Flush after every batch (stdout), not only when the buffer is full.
    each_batch: bool,
}

impl<W: Write + Send> Ndjson<W> {
    /// `each_batch`: flush after every batch (a reader downstream sees it at once).
    pub fn new(out: W, metadata: bool, each_batch: bool) -> Self {
        Ndjson { out, buf: Vec::with_capacity(BUFFER), metadata, each_batch }
    }

    /// Bytes gathered, not yet written out.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Writes out what is gathered, in one `write_all`.
    fn drain(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let written = self.out.write_all(&self.buf);
            self.buf.clear();
            written?;
        }
        Ok(())
    }

    /// Room for a line of `len` bytes: what is gathered goes out first
    /// when the line would not fit.
    fn room(&mut self, len: usize) -> std::io::Result<()> {
        if !self.buf.is_empty() && self.buf.len() + len > BUFFER {
            self.drain()?;
        }
        Ok(())
    }
}

impl<W: Write + Send> Sink for Ndjson<W> {
    fn write(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize> {
        let n = self.write_events(batch, indices)?;
        if self.each_batch {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.drain()?;
        self.out.flush()
    }
}

impl<W: Write + Send> Ndjson<W> {
    fn write_events(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize> {
        let member = self.metadata.then(|| metadata_member(batch));
        let one = |this: &mut Self, i: usize| -> std::io::Result<()> {
            let payload = batch.payload(i);
            let extra = member.as_ref().map_or(0, |m| m.len() + 1);
            this.room(payload.len() + 1 + extra)?;
            match &member {
                Some(m) => write_with_member(&mut this.buf, payload, m)?,
                None => this.buf.extend_from_slice(payload),
            }
            this.buf.push(b'\n');
            Ok(())
        };
        match indices {
            None => {
                for i in 0..batch.len() {
                    one(self, i)?;
                }
                Ok(batch.len())
            }
            Some(idx) => {
                for &i in idx {
                    one(self, i as usize)?;
                }
                Ok(idx.len())
            }
        }
    }
}
