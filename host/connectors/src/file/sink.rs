//! NDJSON to a writer: one payload and a newline per event. The file sink
//! appends to a file; the stdout sink writes with it too.
//!
//! A file sink knows how many bytes of its file are its own and flushed:
//! a checkpoint records that, and a restart from the checkpoint cuts the
//! file back to it, so what was written after the checkpoint (and is
//! written again by the restarted run) appears once.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use weir_core::event::Batch;
use weir_core::position::Position;
use weir_core::sink::{Sink, metadata_member, write_with_member};

/// Opens a file sink: NDJSON appended to `path`.
pub fn open_file(name: &str, path: &Path, metadata: bool) -> std::io::Result<FileSink> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("sink `{name}`: {}: {e}", path.display())))?;
    let written = file.metadata()?.len();
    let counted = Counted { file, written };
    Ok(FileSink { out: Ndjson::new(BufWriter::with_capacity(1 << 20, counted), metadata, false), name: name.into() })
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

/// The file sink.
pub struct FileSink {
    out: Ndjson<Counted>,
    name: String,
}

impl Sink for FileSink {
    fn write(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize> {
        self.out.write(batch, indices)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn position(&self) -> Option<Position> {
        Some(Position::File { offset: self.out.out.get_ref().written, line: 0 })
    }

    fn resume(&mut self, position: &Position) -> std::io::Result<()> {
        let Position::File { offset, .. } = *position else {
            return Err(std::io::Error::other(format!(
                "sink `{}`: the checkpoint's position is not a file's",
                self.name
            )));
        };
        self.out.flush()?;
        let counted = self.out.out.get_mut();
        if !counted.file.metadata()?.is_file() {
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
            counted.file.set_len(offset)?;
            counted.written = offset;
        }
        Ok(())
    }
}

/// NDJSON to any writer: one payload and a newline per event.
pub struct Ndjson<W: Write + Send> {
    out: BufWriter<W>,
    metadata: bool,
    /// Flush after every batch (stdout), not only when the buffer is full.
    each_batch: bool,
}

impl<W: Write + Send> Ndjson<W> {
    /// `each_batch`: flush after every batch (a reader downstream sees it at once).
    pub fn new(out: BufWriter<W>, metadata: bool, each_batch: bool) -> Self {
        Ndjson { out, metadata, each_batch }
    }
}

impl<W: Write + Send> Sink for Ndjson<W> {
    fn write(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize> {
        let n = self.write_events(batch, indices)?;
        if self.each_batch {
            self.out.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write + Send> Ndjson<W> {
    fn write_events(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize> {
        if self.metadata {
            let member = metadata_member(batch);
            let events: Box<dyn Iterator<Item = usize>> = match indices {
                Some(idx) => Box::new(idx.iter().map(|&i| i as usize)),
                None => Box::new(0..batch.len()),
            };
            let mut n = 0;
            for i in events {
                write_with_member(&mut self.out, batch.payload(i), &member)?;
                self.out.write_all(b"\n")?;
                n += 1;
            }
            return Ok(n);
        }
        match indices {
            None => {
                for i in 0..batch.len() {
                    self.out.write_all(batch.payload(i))?;
                    self.out.write_all(b"\n")?;
                }
                Ok(batch.len())
            }
            Some(idx) => {
                for &i in idx {
                    self.out.write_all(batch.payload(i as usize))?;
                    self.out.write_all(b"\n")?;
                }
                Ok(idx.len())
            }
        }
    }
}
