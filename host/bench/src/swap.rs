//! `weir-bench swap`: what hot-loading costs.
//!
//! - The stall of the event flow per swap under generator load: from the
//!   step taking the new version at a batch boundary to its first batch done,
//!   next to what a batch normally takes.
//! - Upload accepted → first batch on the new version.
//! - Compile time of a Rust and a Python component without and with the
//!   precompiled cache, and instantiate + `init` time.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weir_core::metrics::Metrics;
use weir_plugin_host::{InstanceSettings, PluginEngine, PluginInstance};
use weir_runtime::deploy::Origin;
use weir_runtime::pipeline::{RunOptions, start};

#[derive(Debug, clap::Args)]
pub struct BenchSwapArgs {
    /// The version the pipeline starts with.
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release/version_a.wasm")]
    pub a: PathBuf,
    /// The version swapped in every other time.
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release/version_b.wasm")]
    pub b: PathBuf,
    /// A Python component for the compile-time comparison (skipped if missing).
    #[arg(long, default_value = "plugins/target/python/drug_interaction_py.wasm")]
    pub python: PathBuf,
    /// Swaps to make.
    #[arg(long, default_value_t = 100)]
    pub swaps: usize,
    /// Generator rate, events/s.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
}

pub fn bench_swap(args: BenchSwapArgs) -> anyhow::Result<ExitCode> {
    for (lang, path) in [("Rust", &args.a), ("Python", &args.python)] {
        if path.is_file() {
            compile_times(lang, path)?;
        } else {
            println!("{lang}: {} missing (scripts/build-plugins.sh builds it); skipped", path.display());
        }
    }
    swaps(&args)?;
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// (p50, p99, max) of `v`.
fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.99), v[v.len() - 1])
}

fn compile_times(lang: &str, path: &Path) -> anyhow::Result<()> {
    let size = std::fs::metadata(path)?.len();
    let mut cold = Vec::new();
    for _ in 0..3 {
        let engine = PluginEngine::new(None)?;
        let t = Instant::now();
        engine.load(path)?;
        cold.push(ms(t.elapsed()));
    }
    let cache = tempfile::tempdir()?;
    PluginEngine::new(Some(cache.path().to_path_buf()))?.load(path)?;
    let mut cached = Vec::new();
    let mut start = Vec::new();
    for _ in 0..5 {
        let engine = PluginEngine::new(Some(cache.path().to_path_buf()))?;
        let t = Instant::now();
        let plugin = engine.load(path)?;
        cached.push(ms(t.elapsed()));
        let metrics = Metrics::new("bench");
        let settings = InstanceSettings {
            state: None,
            step: "bench".into(),
            config: String::new(),
            limits: Default::default(),
            grants: Default::default(),
            metrics: metrics.plugin_api("bench"),
            models: Vec::new(),
        };
        let t = Instant::now();
        // Init may refuse an empty config; instantiating is what is timed.
        let _ = PluginInstance::start(plugin, settings);
        start.push(ms(t.elapsed()));
    }
    let median = |v: Vec<f64>| percentiles(v).0;
    println!(
        "{lang} component {} ({:.1} MB): compile {:.0} ms without the cache, {:.1} ms from it; instantiate + init {:.2} ms (medians)",
        path.display(),
        size as f64 / 1e6,
        median(cold),
        median(cached),
        median(start)
    );
    Ok(())
}

fn swaps(args: &BenchSwapArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let text = format!(
        r#"
[pipeline]
name = "bench-swap"

[[sources]]
name = "orders"
kind = "generator"
generate = "orders"
rate = {rate}

[[steps]]
name = "tag"
plugin = {a:?}

[[sinks]]
name = "discard"
kind = "discard"

[dead_letter]
path = {dead:?}
"#,
        rate = args.rate,
        a = args.a.display().to_string(),
        dead = dir.path().join("dead.ndjson").display().to_string(),
    );
    let pipeline = dir.path().join("pipeline.toml");
    let spec = weir_config::load_str(&pipeline, &text)?;
    let bytes = [std::fs::read(&args.a)?, std::fs::read(&args.b)?];
    let running = start(spec, RunOptions { cache_dir: Some(dir.path().join("cache")), ..Default::default() })?;
    std::thread::sleep(Duration::from_secs(1));
    let mut calls = Vec::new();
    for i in 0..args.swaps {
        let t = Instant::now();
        running.deployments.deploy("tag", &bytes[(i + 1) % 2], Origin::Api).context("deploying")?;
        calls.push(ms(t.elapsed()));
        std::thread::sleep(Duration::from_millis(50));
    }
    let versions = running.deployments.step("tag")?.versions();
    let body = running.metrics.render();
    running.stop_flag().store(true, std::sync::atomic::Ordering::Relaxed);
    let report = running.wait()?;
    let stalls: Vec<f64> = versions.iter().filter_map(|v| v.swap_stall_ms).collect();
    let first: Vec<f64> = versions.iter().filter_map(|v| v.first_batch_ms).collect();
    let sum = |name: &str| -> f64 {
        body.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    let batch_ms = 1e3 * sum("weir_plugin_call_duration_seconds_sum") / sum("weir_plugin_call_duration_seconds_count");
    println!(
        "{} swaps between {} and {} under {} events/s ({} events, {} dead letters):",
        args.swaps,
        args.a.display(),
        args.b.display(),
        args.rate,
        report.events_read,
        report.dead_letters.iter().map(|(_, n)| n).sum::<u64>()
    );
    anyhow::ensure!(!stalls.is_empty(), "no swap happened at a batch boundary");
    let (p50, p99, max) = percentiles(stalls.clone());
    println!(
        "  stall of the event flow (swap + first batch on the new version, {} swaps): p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms; a batch takes {batch_ms:.3} ms on average",
        stalls.len()
    );
    let (p50, p99, max) = percentiles(first);
    println!("  upload accepted → first batch on the new version: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    let (p50, p99, max) = percentiles(calls);
    println!(
        "  deploy call (compile from cache, init, wait for the boundary): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    Ok(())
}
