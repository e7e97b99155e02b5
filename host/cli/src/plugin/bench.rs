//! `weir plugin bench`: what a plugin costs — component size, compile time
//! (cold, and from the precompiled cache), instantiate + init, and ns/event
//! of `process` on vital-signs events (the shape of the shared analytic's
//! input), measured in this process on batches already in memory.
#![allow(clippy::print_stdout, reason = "the report is the command's output")]

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weir_plugin_host::{InstanceSettings, PluginEngine, PluginInstance};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A plugin folder (built first) or a component (.wasm).
    pub plugin: PathBuf,
    /// Events per round.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Events per `process` call.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Rounds over the events; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// The config string handed to the plugin's init.
    #[arg(long, default_value = "")]
    pub config: String,
    /// Also write the generated events to this file, one per line (to time
    /// the same function natively on the same data).
    #[arg(long)]
    pub events_out: Option<PathBuf>,
}

/// Vital-signs events: values across every band, one in a hundred without `temp`.
pub fn vitals_events(n: usize) -> Vec<Vec<u8>> {
    let mut rng = SmallRng::seed_from_u64(7);
    (0..n)
        .map(|i| {
            let (hr, rr, spo2) = (rng.random_range(55..125), rng.random_range(10..25), rng.random_range(90..=100));
            let temp = rng.random_range(360..=392) as f64 / 10.0;
            let mut event = format!(r#"{{"patient":"P{:04}","hr":{hr},"rr":{rr},"spo2":{spo2}"#, i % 1000);
            if i % 100 != 99 {
                event.push_str(&format!(r#","temp":{temp:.1}"#));
            }
            event.push('}');
            event.into_bytes()
        })
        .collect()
}

fn settings(config: &str) -> InstanceSettings {
    super::test::settings("bench", config, Duration::from_secs(60))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let component = super::test::component(&args.plugin)?;
    let size = std::fs::metadata(&component)?.len();
    println!("plugin       {} ({})", component.display(), bytesize::ByteSize::b(size).display().si());

    let started = Instant::now();
    PluginEngine::new(None)?.load(&component)?;
    let cold = started.elapsed();
    let cache = tempfile::tempdir()?;
    PluginEngine::new(Some(cache.path().to_path_buf()))?.load(&component)?;
    let engine = PluginEngine::new(Some(cache.path().to_path_buf()))?;
    let started = Instant::now();
    let loaded = engine.load(&component)?;
    let cached = started.elapsed();
    println!("compile      {} cold, {} from the cache", ms(cold), ms(cached));

    let mut starts = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let instance = PluginInstance::start(loaded.clone(), settings(&args.config))?;
        starts.push(started.elapsed().as_secs_f64());
        drop(instance);
    }
    println!("instantiate  {:.2} ms (instance + init, median of 20)", median(starts) * 1e3);

    let events = vitals_events(args.events);
    if let Some(path) = &args.events_out {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for e in &events {
            out.write_all(e)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    let batches: Vec<(Vec<u8>, Vec<u32>, Vec<i64>)> = events
        .chunks(args.batch_size.max(1))
        .map(|chunk| {
            let mut payloads = Vec::new();
            let mut ends = Vec::new();
            for e in chunk {
                payloads.extend_from_slice(e);
                ends.push(payloads.len() as u32);
            }
            (payloads, ends, vec![0; chunk.len()])
        })
        .collect();
    let mut instance = PluginInstance::start(loaded, settings(&args.config))?;
    let (mut emitted, mut rejected) = (0, 0);
    for b in &batches {
        let (mut p, mut e, mut t) = b.clone();
        let out = instance.process(&mut p, &mut e, &mut t).map_err(|f| anyhow::anyhow!("{}", f.message))?;
        emitted += out.emitted.ends.len();
        rejected += out.rejected.len();
    }
    let mut rounds = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let mut busy = Duration::ZERO;
        for b in &batches {
            let (mut p, mut e, mut t) = b.clone();
            let started = Instant::now();
            let out = instance.process(&mut p, &mut e, &mut t).map_err(|f| anyhow::anyhow!("{}", f.message))?;
            busy += started.elapsed();
            std::hint::black_box(out);
        }
        rounds.push(busy.as_nanos() as f64 / events.len() as f64);
    }
    let (low, high) = (rounds.iter().copied().fold(f64::MAX, f64::min), rounds.iter().copied().fold(0.0, f64::max));
    println!(
        "process      {:.1} ns/event at batch {} (median of {} rounds of {} events, {low:.1}-{high:.1}; {:.1}% emitted, {:.1}% rejected)",
        median(rounds),
        args.batch_size,
        args.rounds.max(1),
        events.len(),
        100.0 * emitted as f64 / events.len() as f64,
        100.0 * rejected as f64 / events.len() as f64,
    );
    Ok(ExitCode::SUCCESS)
}
