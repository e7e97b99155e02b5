//! The live progress line (on a terminal) and the end-of-run summary.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use weir_core::metrics::Metrics;
use weir_runtime::pipeline::RunReport;

/// Redraws one status line on stderr four times a second, if stderr is a terminal.
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn spawn(metrics: Metrics) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { done, thread: None };
        }
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let (mut last_events, mut last_at) = (0u64, Instant::now());
            let mut ticks = 0u32;
            while !flag.load(Ordering::Relaxed) {
                // Wake often so that the end of a run is not held up; redraw every 250 ms.
                std::thread::sleep(Duration::from_millis(25));
                ticks += 1;
                if !ticks.is_multiple_of(10) {
                    continue;
                }
                let events = metrics.source_events_total();
                let rate = (events - last_events) as f64 / last_at.elapsed().as_secs_f64();
                (last_events, last_at) = (events, Instant::now());
                eprint!(
                    "\r\x1b[2K  {:>6.1}s  {} events  {}/s  {} read  {} dead-lettered",
                    started.elapsed().as_secs_f64(),
                    events,
                    si(rate),
                    bytesize::ByteSize::b(metrics.source_bytes_total()).display().iec(),
                    metrics.dead_letter_total(),
                );
                let _ = std::io::stderr().flush();
            }
            eprint!("\r\x1b[2K");
        });
        Progress { done, thread: Some(thread) }
    }

    pub fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// 1234567.0 → "1.23 M".
pub fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.0} "),
    }
}

/// The one-screen summary at the end of a run, on stderr.
pub fn print_summary(name: &str, r: &RunReport) {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let mut out = String::new();
    let how = if r.stopped_by_signal { "stopped" } else { "finished" };
    out += &format!("weir: pipeline `{name}` {how} in {secs:.2} s\n");
    out += &format!(
        "  read         {} events, {} ({}events/s)\n",
        r.events_read,
        bytesize::ByteSize::b(r.bytes_read).display().iec(),
        si(r.events_read as f64 / secs)
    );
    for (step, events_in, rejected) in &r.steps {
        out += &format!("  step         {step}: {events_in} in, {rejected} rejected\n");
    }
    for (sink, n) in &r.sinks {
        out += &format!("  sink         {sink}: {n} events\n");
        for (_, note) in r.sink_notes.iter().filter(|(s, _)| s == sink) {
            out += &format!("               ({note})\n");
        }
    }
    let dead: u64 = r.dead_letters.iter().map(|(_, n)| n).sum();
    if dead > 0 {
        let reasons: Vec<String> =
            r.dead_letters.iter().filter(|(_, n)| *n > 0).map(|(reason, n)| format!("{reason} {n}")).collect();
        out += &format!("  dead-letter  {dead} events ({}) in {}\n", reasons.join(", "), r.dead_letter_path.display());
    } else {
        out += "  dead-letter  none\n";
    }
    for (step, capability, n) in &r.denied {
        out += &format!("  sandbox      {step}: {n} {capability} use{} denied\n", if *n == 1 { "" } else { "s" });
    }
    eprint!("{out}");
}
