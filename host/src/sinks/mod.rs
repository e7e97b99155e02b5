//! Sinks: where results go. Each writes whole batches as NDJSON.

use crate::config::{SinkSpec, SinkSpecKind};
use crate::event::Batch;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};

/// A destination for events.
pub trait Sink: Send {
    /// Writes the events `indices` of `batch` (all of them when `None`).
    fn write(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize>;
    /// Makes everything written so far durable (or visible).
    fn flush(&mut self) -> std::io::Result<()>;
}

/// Opens the sink described by `spec`.
pub fn open(spec: &SinkSpec) -> std::io::Result<Box<dyn Sink>> {
    Ok(match &spec.kind {
        SinkSpecKind::File { path } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file: File =
                OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("sink `{}`: {}: {e}", spec.name, path.display()))
                })?;
            Box::new(Ndjson { out: BufWriter::with_capacity(1 << 20, file) })
        }
        SinkSpecKind::Stdout => Box::new(Ndjson { out: BufWriter::with_capacity(1 << 16, std::io::stdout()) }),
        SinkSpecKind::Discard => Box::new(Discard),
    })
}

/// NDJSON to any writer: one payload and a newline per event.
struct Ndjson<W: Write + Send> {
    out: BufWriter<W>,
}

impl<W: Write + Send> Sink for Ndjson<W> {
    fn write(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize> {
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

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Drops events (benchmarks); they are still counted.
struct Discard;

impl Sink for Discard {
    fn write(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize> {
        Ok(indices.map_or(batch.len(), <[u32]>::len))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
