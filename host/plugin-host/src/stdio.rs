//! A plugin's stdout and stderr: captured line by line, logged under the
//! step's name, and rate-limited so that a chatty or hostile plugin cannot
//! flood the host's log. Nothing a plugin prints reaches Weir's own stdout
//! (which may be a sink). The same rules hold for the `log` import
//! ([`LineLimiter`], [`clean`]): at most `limits.log_lines_per_second` (20)
//! after a burst of `limits.log_burst` (100), per stream and instance;
//! lines cut at 2,048 bytes; control
//! characters (a newline that would start a forged host line, terminal
//! escapes) written as `\u{..}`.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Longest line kept; the rest of a longer line is cut.
const MAX_LINE: usize = 2048;

pub use weir_core::metrics::StdioMetrics;

/// One captured stream (stdout or stderr) of one plugin instance.
#[derive(Clone)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Lines>>,
}

struct Lines {
    step: Arc<str>,
    stream: &'static str,
    partial: Vec<u8>,
    limit: LineLimiter,
}

/// The rate limit of one stream of plugin log lines (`limits.log_burst`
/// lines at once, then `limits.log_lines_per_second`).
pub struct LineLimiter {
    bucket: weir_core::rate::TokenBucket,
    metrics: StdioMetrics,
}

impl LineLimiter {
    pub fn new(metrics: StdioMetrics, limits: &weir_config::Limits) -> Self {
        let bucket =
            weir_core::rate::TokenBucket::new(f64::from(limits.log_lines_per_second), f64::from(limits.log_burst));
        LineLimiter { bucket, metrics }
    }

    /// Counts a line; `Some(lines dropped before it)` when it may be logged.
    pub fn admit(&mut self) -> Option<u64> {
        self.metrics.lines.inc();
        let admitted = self.bucket.admit();
        if admitted.is_none() {
            self.metrics.dropped.inc();
        }
        admitted
    }
}

/// A plugin's line as the host logs it: at most [`MAX_LINE`] bytes (cut on
/// a character boundary), control characters escaped, so it can neither
/// start a line of its own nor steer a terminal.
pub fn clean(line: &str) -> String {
    let mut end = line.len().min(MAX_LINE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end);
    for c in line[..end].chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:02x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

impl CapturedOutput {
    pub fn new(step: Arc<str>, stream: &'static str, metrics: StdioMetrics, limits: &weir_config::Limits) -> Self {
        let lines = Lines { step, stream, partial: Vec::new(), limit: LineLimiter::new(metrics, limits) };
        CapturedOutput { inner: Arc::new(Mutex::new(lines)) }
    }

    fn take(&self, bytes: &[u8]) {
        let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            let room = MAX_LINE.saturating_sub(l.partial.len());
            let body = chunk.strip_suffix(b"\n").unwrap_or(chunk);
            l.partial.extend_from_slice(&body[..body.len().min(room)]);
            if chunk.ends_with(b"\n") {
                l.emit();
            }
        }
    }
}

impl Lines {
    fn emit(&mut self) {
        let line = clean(&String::from_utf8_lossy(&self.partial));
        self.partial.clear();
        let Some(suppressed) = self.limit.admit() else { return };
        let (step, stream) = (&*self.step, self.stream);
        if stream == "stderr" {
            tracing::warn!(target: "weir::plugin", step = %step, stream = %stream, suppressed, "{line}");
        } else {
            tracing::info!(target: "weir::plugin", step = %step, stream = %stream, suppressed, "{line}");
        }
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::IntCounter;

    fn metrics() -> StdioMetrics {
        StdioMetrics { lines: IntCounter::new("l", "l").unwrap(), dropped: IntCounter::new("d", "d").unwrap() }
    }

    #[test]
    fn lines_are_split_joined_and_rate_limited() {
        let m = metrics();
        let out = CapturedOutput::new("s".into(), "stdout", m.clone(), &weir_config::Limits::default());
        out.take(b"one\ntw");
        out.take(b"o\nthree");
        assert_eq!(m.lines.get(), 2, "a line is logged when its newline arrives");
        let flood = "x\n".repeat(1000);
        out.take(flood.as_bytes());
        assert_eq!(m.lines.get(), 1002);
        // The burst allows 100 lines, then about 20 per second.
        assert!((899..=902).contains(&m.dropped.get()), "dropped {}", m.dropped.get());
    }

    #[test]
    fn a_line_cannot_forge_another_or_steer_a_terminal() {
        assert_eq!(clean("ok\nINFO weir: forged\r\u{1b}[2J"), "ok\\u{0a}INFO weir: forged\\u{0d}\\u{1b}[2J");
        let long = "é".repeat(3000);
        assert!(clean(&long).len() <= MAX_LINE);
    }
}
