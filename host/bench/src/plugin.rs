//! `weir-bench plugin`: the cost of the plugin boundary and of whole pipelines.
//!
//! Two measurements at each batch size, over ~120-byte JSON events:
//! - boundary: `process` calls on batches already in memory (host → guest →
//!   host, identity plugin), ns/event;
//! - pipeline: file → plugin → discard through the real runtime, and the same
//!   without the plugin, events/s.

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weir::progress::si;
use weir_config::Limits;
use weir_core::dead_letter::DeadLetters;
use weir_core::event::Batch;
use weir_core::metrics::Metrics;
use weir_plugin_host::{InstanceSettings, PluginEngine, PluginInstance};
use weir_runtime::pipeline::{PluginStep, RunOptions, Step, start};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The plugin to measure (an identity plugin measures the boundary alone).
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release/identity.wasm")]
    pub plugin: PathBuf,
    /// Events per measurement.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Batch sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub batch_sizes: Vec<usize>,
    /// Repeat the boundary measurement this many times over the events.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Measure only the plugin boundary (no pipeline runs).
    #[arg(long)]
    pub boundary_only: bool,
}

pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("events.ndjson");
    write_events(&input, args.events)?;
    let size = std::fs::metadata(&input)?.len();
    println!(
        "weir-bench plugin: {} events, {:.0} bytes/event, plugin {}",
        args.events,
        size as f64 / args.events as f64,
        args.plugin.display()
    );
    println!("{:>6}  {:>16}  {:>18}  {:>18}", "batch", "boundary ns/event", "file→plugin→discard", "file→discard");
    for &batch_size in &args.batch_sizes {
        let boundary = boundary_ns(&args.plugin, &input, batch_size, args.rounds)?;
        if args.boundary_only {
            println!("{batch_size:>6}  {boundary:>16.1}");
            continue;
        }
        let with_plugin = pipeline_rate(&input, Some(&args.plugin), batch_size, args.events)?;
        let without = pipeline_rate(&input, None, batch_size, args.events)?;
        println!("{batch_size:>6}  {boundary:>16.1}  {:>14}ev/s  {:>14}ev/s", si(with_plugin), si(without));
    }
    Ok(ExitCode::SUCCESS)
}

/// ~120-byte vitals events, one per line.
fn write_events(path: &Path, n: u64) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(
            out,
            r#"{{"PatientId":"P{:04}","EventTime":{},"HeartRate":{},"Temperature":37.{},"SpO2":{},"seq":{i}}}"#,
            i % 1000,
            1_767_225_600_000 + i,
            60 + i % 60,
            i % 10,
            90 + i % 10
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Mean ns per event of a plugin step on in-memory batches: the call
/// (host → guest → host) and turning the outcomes into the output batch.
fn boundary_ns(plugin: &Path, input: &Path, batch_size: usize, rounds: usize) -> anyhow::Result<f64> {
    let engine = PluginEngine::new(weir_plugin_host::default_cache_dir())?;
    let loaded = engine.load(plugin)?;
    let metrics = Metrics::new("bench");
    let settings = InstanceSettings {
        state: None,
        step: "bench".into(),
        config: String::new(),
        limits: Limits::default(),
        grants: Default::default(),
        metrics: metrics.plugin_api("bench"),
        models: Vec::new(),
    };
    let instance = PluginInstance::start(loaded, settings.clone())?;
    let (mut step, _) = PluginStep::new(instance, settings, &metrics, Default::default());
    let dead = DeadLetters::new(input.with_extension("boundary-dead.ndjson"), vec!["events".into()], metrics.clone());
    let text = std::fs::read(input)?;
    let mut batches = Vec::new();
    let mut batch = Batch::default();
    for (i, line) in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        batch.push(line, i as i64, Default::default());
        if batch.len() == batch_size {
            batches.push(std::mem::take(&mut batch));
        }
    }
    // Warm up, then measure each call alone (copying the input batch is not timed).
    for b in batches.iter().take(100) {
        step.process(b.clone(), &dead)?;
    }
    let (mut busy, mut n) = (Duration::ZERO, 0);
    for _ in 0..rounds.max(1) {
        for b in &batches {
            let b = b.clone();
            n += b.len();
            let started = Instant::now();
            let out = step.process(b, &dead)?;
            busy += started.elapsed();
            std::hint::black_box(out);
        }
    }
    anyhow::ensure!(metrics.dead_letter_total() == 0, "the plugin failed while benchmarked");
    Ok(busy.as_nanos() as f64 / n.max(1) as f64)
}

/// Events/s of a whole run: file → (plugin) → discard.
fn pipeline_rate(input: &Path, plugin: Option<&Path>, batch_size: usize, events: u64) -> anyhow::Result<f64> {
    let step = match plugin {
        Some(p) => format!("[[steps]]\nname = \"plugin\"\nplugin = {:?}\n", p.display().to_string()),
        None => String::new(),
    };
    let text = format!(
        "[pipeline]\nname = \"bench\"\nbatch_size = {batch_size}\n\n\
         [[sources]]\nname = \"events\"\nkind = \"file\"\npath = {input:?}\n\
         timestamp_field = \"EventTime\"\nkey_field = \"PatientId\"\n\n{step}\n\
         [[sinks]]\nname = \"discard\"\nkind = \"discard\"\n\n[dead_letter]\npath = {dead:?}\n",
        input = input.display().to_string(),
        dead = input.with_extension("dead.ndjson").display().to_string(),
    );
    let spec = weir_config::load_str(&input.with_extension("toml"), &text)?;
    let started = Instant::now();
    let running = start(spec, RunOptions { cache_dir: weir_plugin_host::default_cache_dir(), ..Default::default() })?;
    let report = running.wait().context("bench run failed")?;
    anyhow::ensure!(report.events_read == events, "read {} of {events} events", report.events_read);
    Ok(events as f64 / started.elapsed().as_secs_f64())
}
