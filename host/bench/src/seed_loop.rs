//! The yardstick for the patient-monitoring query: a hand-written
//! two-thread loop a competent engineer would write for this one query and
//! nothing else. One thread reads the file in 1 MiB blocks and cuts lines;
//! the other parses each line with serde_json into a struct of the four
//! fields the query reads and keeps, per patient and 5-minute window, the
//! count, the heart-rate sum and the highest temperature; windows close on
//! the largest event time less 1 s, and rows averaging above 100 are
//! written. No dead letters, no metrics, no checkpoints, no late output.

use serde::Deserialize;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct SeedLoopArgs {
    /// The NDJSON input (scripts/bench-patient-monitoring.sh makes it).
    input: std::path::PathBuf,
    /// Where the rows go.
    #[arg(long, default_value = "/dev/null")]
    output: std::path::PathBuf,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vitals<'a> {
    patient_id: &'a str,
    event_time: &'a str,
    heart_rate: f64,
    temperature: f64,
}

const WINDOW: i64 = 5 * 60 * 1000;

pub fn bench(args: SeedLoopArgs) -> anyhow::Result<std::process::ExitCode> {
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<String>>(8);
    let input = args.input.clone();
    let reader = std::thread::spawn(move || -> anyhow::Result<u64> {
        let mut lines = BufReader::with_capacity(1 << 20, std::fs::File::open(input)?).lines();
        let mut n = 0;
        loop {
            let chunk: Vec<String> = lines.by_ref().take(1024).collect::<Result<_, _>>()?;
            if chunk.is_empty() {
                return Ok(n);
            }
            n += chunk.len() as u64;
            if tx.send(chunk).is_err() {
                return Ok(n);
            }
        }
    });
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args.output)?);
    // (window end, patient) → (count, heart-rate sum, highest temperature)
    let mut open: HashMap<(i64, String), (u64, f64, f64)> = HashMap::new();
    let (mut max_t, mut rows) = (i64::MIN, 0u64);
    let mut close = |open: &mut HashMap<(i64, String), (u64, f64, f64)>, watermark: i64, out: &mut dyn Write| {
        let done: Vec<(i64, String)> = open.keys().filter(|(end, _)| *end <= watermark).cloned().collect();
        for k in done {
            let (n, hr, temp) = open.remove(&k).expect("listed");
            if hr / n as f64 > 100.0 {
                rows += 1;
                let _ = writeln!(
                    out,
                    r#"{{"window_end":{},"PatientId":"{}","AvgHeartRate":{},"MaxTemperature":{temp}}}"#,
                    k.0,
                    k.1,
                    hr / n as f64
                );
            }
        }
    };
    let mut since_close = 0;
    for chunk in rx {
        for line in &chunk {
            let v: Vitals<'_> = serde_json::from_str(line)?;
            let t = chrono::DateTime::parse_from_rfc3339(v.event_time)?.timestamp_millis();
            max_t = max_t.max(t);
            let end = (t.div_euclid(WINDOW) + 1) * WINDOW;
            let e = open.entry((end, v.patient_id.to_string())).or_insert((0, 0.0, f64::MIN));
            e.0 += 1;
            e.1 += v.heart_rate;
            e.2 = e.2.max(v.temperature);
        }
        since_close += chunk.len();
        if since_close >= 10_000 {
            since_close = 0;
            close(&mut open, max_t - 1000, &mut out);
        }
    }
    close(&mut open, i64::MAX, &mut out);
    out.flush()?;
    let events = reader.join().map_err(|_| anyhow::anyhow!("the reader panicked"))??;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "hand-written loop: {events} events in {secs:.3} s = {:.2} M events/s, {rows} rows",
        events as f64 / secs / 1e6
    );
    Ok(std::process::ExitCode::SUCCESS)
}
