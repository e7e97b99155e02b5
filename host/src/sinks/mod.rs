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
            Box::new(Ndjson {
                out: BufWriter::with_capacity(1 << 20, file),
                metadata: spec.metadata,
                each_batch: false,
            })
        }
        SinkSpecKind::Stdout => {
            // A reader downstream of stdout sees each batch as it is written.
            let out = BufWriter::with_capacity(1 << 16, std::io::stdout());
            Box::new(Ndjson { out, metadata: spec.metadata, each_batch: true })
        }
        SinkSpecKind::Discard => Box::new(Discard),
        SinkSpecKind::Kafka(_) => unreachable!("Kafka sinks are opened with their producer (pipeline::run)"),
    })
}

/// NDJSON to any writer: one payload and a newline per event.
struct Ndjson<W: Write + Send> {
    out: BufWriter<W>,
    metadata: bool,
    /// Flush after every batch (stdout), not only when the buffer is full.
    each_batch: bool,
}

/// The `"_weir"` member added to each event of `batch`, closing the object.
pub(crate) fn metadata_member(batch: &Batch) -> Vec<u8> {
    let versions: serde_json::Map<String, serde_json::Value> =
        batch.versions.iter().map(|(step, digest)| (step.to_string(), digest.to_string().into())).collect();
    let mut member = br#""_weir":"#.to_vec();
    serde_json::to_writer(&mut member, &serde_json::json!({ "versions": versions })).expect("JSON to memory");
    member.push(b'}');
    member
}

/// Writes `payload` (one JSON object) with `member` added before its closing brace.
pub(crate) fn write_with_member(out: &mut impl Write, payload: &[u8], member: &[u8]) -> std::io::Result<()> {
    let trimmed = payload.trim_ascii_end();
    let Some(body) = trimmed.strip_suffix(b"}") else { return out.write_all(payload) };
    let empty = body.trim_ascii() == b"{";
    out.write_all(body)?;
    if !empty {
        out.write_all(b",")?;
    }
    out.write_all(member)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_goes_inside_each_object() {
        let mut batch = Batch::default();
        batch.push(br#"{"a":1}"#, 0, Default::default());
        batch.push(b"{ }", 0, Default::default());
        batch.versions.push(("score".into(), "ab12".into()));
        let member = metadata_member(&batch);
        let mut out = Vec::new();
        for i in 0..batch.len() {
            write_with_member(&mut out, batch.payload(i), &member).unwrap();
            out.push(b'\n');
        }
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0], serde_json::json!({"a": 1, "_weir": {"versions": {"score": "ab12"}}}));
        assert_eq!(lines[1], serde_json::json!({"_weir": {"versions": {"score": "ab12"}}}));
    }
}
