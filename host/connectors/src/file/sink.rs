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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
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
    open_file_with(name, path, metadata, SinkMode::default(), Duration::from_secs(1))
}

/// [`open_file`] with its `mode` and `flush_interval`.
pub fn open_file_with(
    name: &str,
    path: &Path,
    metadata: bool,
    mode: SinkMode,
    flush_interval: Duration,
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
    let counted = Counted { file, written };
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
}

impl Write for Counted {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(bytes)?;
        self.written += n as u64;
        Ok(n)
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
        Ok(())
    }

    /// Where the file's last whole line ends.
    fn last_line_end(&mut self) -> std::io::Result<u64> {
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
        if start == RunStart::Resumed || !counted.is_file()? || counted.written == 0 {
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
        let whole = counted.last_line_end()?;
        Ok(Some(if whole < held {
            counted.cut(whole)?;
            format!("appending to {shown} after {whole} bytes; a torn last line of {} bytes was cut off", held - whole)
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
