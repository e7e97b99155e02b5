//! NDJSON file replay: one event per line; blank lines are skipped. Lines are
//! split here and decoded by [`weir_core::event::decode_batch`]: a line that is
//! not a JSON object (or lacks the timestamp or key field) goes to the
//! dead-letter output with its line number. A line longer than a batch may
//! hold (`[pipeline] batch_bytes`) is never read into memory whole: its
//! first 4 KiB go to the dead-letter output (`invalid-event`) and the rest
//! is skipped.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use weir_config::SourceSpec;
use weir_core::dead_letter::{DeadLetter, DeadLetters};
use weir_core::event::{Batch, FieldPlan, Origin};
use weir_core::position::Position;
use weir_core::source::{BatchLimit, Fill, Source};

pub struct FileSource {
    reader: BufReader<File>,
    index: u16,
    plan: Arc<FieldPlan>,
    line: u64,
    offset: u64,
    /// Events per second, 0: unpaced.
    rate: u64,
    /// Events handed out since `started`, for the pace.
    paced: u64,
    started: std::time::Instant,
    /// Where lines too long to be events go.
    dead: Option<Arc<DeadLetters>>,
}

/// How much of a line too long to be an event its dead letter keeps.
const LONG_LINE_KEPT: usize = 4096;

impl FileSource {
    pub fn open(path: &Path, index: u16, spec: &SourceSpec) -> std::io::Result<Self> {
        let file = File::open(path).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(FileSource {
            reader: BufReader::with_capacity(1 << 20, file),
            index,
            plan: crate::field_plan(spec),
            line: 0,
            offset: 0,
            rate: 0,
            paced: 0,
            started: std::time::Instant::now(),
            dead: None,
        })
    }

    /// Sends lines too long to be events to `dead`.
    pub fn with_dead_letters(mut self, dead: Arc<DeadLetters>) -> Self {
        self.dead = Some(dead);
        self
    }

    /// Reads the next line (with its line break) onto `buf`, but never more
    /// than `limit` bytes of it besides the break: the rest of a longer
    /// line is consumed unread. Returns (bytes consumed, whether the line
    /// fit).
    fn read_line(&mut self, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<(usize, bool)> {
        let (mut consumed, mut kept) = (0, 0);
        // Room for the line, "\r\n", and one byte more to see it is longer.
        let room_for = limit + 3;
        let fits = |kept: usize, line: &[u8]| {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            kept < room_for && body.len() <= limit
        };
        let start = buf.len();
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                return Ok((consumed, fits(kept, &buf[start..])));
            }
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..=i], true),
                None => (available, false),
            };
            let n = chunk.len();
            let room = room_for.saturating_sub(kept).min(n);
            buf.extend_from_slice(&chunk[..room]);
            kept += room;
            self.reader.consume(n);
            consumed += n;
            if done {
                return Ok((consumed, fits(kept, &buf[start..])));
            }
        }
    }

    /// Paces the replay at `rate` events per second (0: as fast as possible).
    pub fn with_rate(mut self, rate: u64) -> Self {
        self.rate = rate;
        self
    }

    /// How many events may go now under the pace, waiting (at most until
    /// `deadline`) for one to be due.
    fn due(&mut self, max: usize, deadline: std::time::Instant) -> usize {
        if self.rate == 0 {
            return max;
        }
        loop {
            let allowed = (self.started.elapsed().as_secs_f64() * self.rate as f64) as u64;
            let due = allowed.saturating_sub(self.paced) as usize;
            let now = std::time::Instant::now();
            if due > 0 || now >= deadline {
                return due.min(max);
            }
            let next = Duration::from_secs_f64((self.paced + 1) as f64 / self.rate as f64);
            std::thread::sleep(next.saturating_sub(self.started.elapsed()).min(deadline - now));
        }
    }
}

impl FileSource {
    /// Continues from a checkpoint's position: the byte offset of the next
    /// line, and the lines before it (for dead-letter line numbers).
    fn seek_to(&mut self, position: &Position) -> std::io::Result<()> {
        let Position::File { offset, line } = *position else {
            return Err(std::io::Error::other("the checkpoint's position is not a file position"));
        };
        let len = self.reader.get_ref().metadata()?.len();
        if offset > len {
            return Err(std::io::Error::other(format!(
                "the checkpoint resumes at byte {offset} but the file has {len} bytes (was it replaced?)"
            )));
        }
        self.reader.seek(SeekFrom::Start(offset))?;
        (self.offset, self.line) = (offset, line);
        Ok(())
    }
}

impl FileSource {
    /// Dead-letters a line of `n` bytes, longer than `limit`, keeping the
    /// start of it.
    fn too_long(&self, head: &[u8], n: usize, limit: usize, origin: Origin) -> std::io::Result<()> {
        let detail = format!(
            "the line is {n} bytes; an event is at most {limit} bytes (pipeline.batch_bytes); its first {LONG_LINE_KEPT} bytes are kept here"
        );
        tracing::warn!(line = origin.line, bytes = n, "a line too long to be an event is dead-lettered");
        let Some(dead) = &self.dead else { return Ok(()) };
        let record = DeadLetter {
            reason: "invalid-event",
            detail: &detail,
            step: None,
            origin,
            original: &head[..head.len().min(LONG_LINE_KEPT)],
        };
        dead.send_all(std::iter::once(record))
    }
}

impl Source for FileSource {
    fn fill(&mut self, batch: &mut Batch, limit: BatchLimit, linger: Duration) -> std::io::Result<Fill> {
        let ingest_time = weir_core::now_ms();
        let max = self.due(limit.events, std::time::Instant::now() + linger);
        self.paced += max as u64;
        let mut added = 0;
        while added < max && !limit.full(batch) {
            let start = batch.payloads.len();
            // The line is read straight into the batch buffer: one copy.
            let (n, fits) = self.read_line(&mut batch.payloads, limit.bytes)?;
            if n == 0 {
                return Ok(Fill::Done);
            }
            self.line += 1;
            let origin = Origin { source: self.index, line: self.line, offset: self.offset, partition: 0 };
            self.offset += n as u64;
            if !fits {
                self.too_long(&batch.payloads[start..], n, limit.bytes, origin)?;
                batch.payloads.truncate(start);
                continue;
            }
            let mut end = batch.payloads.len();
            while end > start && matches!(batch.payloads[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            batch.payloads.truncate(end);
            if batch.payloads[start..].iter().all(u8::is_ascii_whitespace) {
                batch.payloads.truncate(start);
                continue;
            }
            // Decoded later (see `weir_core::event::decode_batch`); until then the event
            // time is the time of ingestion.
            batch.commit(ingest_time, origin);
            added += 1;
        }
        Ok(Fill::More)
    }

    fn field_plan(&self) -> Option<Arc<FieldPlan>> {
        Some(self.plan.clone())
    }

    fn bytes_read(&self) -> u64 {
        self.offset
    }

    fn position(&self) -> Option<Position> {
        Some(Position::File { offset: self.offset, line: self.line })
    }

    fn resume(&mut self, position: &Position) -> std::io::Result<()> {
        self.seek_to(position)
    }
}
