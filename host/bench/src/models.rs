//! `weir-bench models`: what calling a host model from a plugin costs.
//!
//! For each model and batch size, µs per row of:
//! - ort: `Session::run` called directly from Rust on a prepared tensor
//!   (the floor);
//! - infer: the same rows through a plugin (`plugins/bench/infer-bench`):
//!   the plugin call, the tensor crossing into the host and the outputs
//!   crossing back, and the run itself;
//! - call: the same plugin building the same tensor without calling `infer`,
//!   so that `infer − call − ort` is what the `infer` boundary adds to the
//!   run (the overhead column, relative to ort);
//! - host: the part of `infer` spent in the host's own function (checks,
//!   the run, copying outputs), from `weir_model_inference_duration_seconds`;
//!
//! and the fraud pipeline end to end (generator → fraud-scorer, which parses
//! JSON, computes velocity features and calls `infer` → discard), rows/s.

use anyhow::Context;
use ort::value::TensorRef;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::progress::si;
use weir_config::Limits;
use weir_core::dead_letter::DeadLetters;
use weir_core::event::Batch;
use weir_core::metrics::Metrics;
use weir_models::{Model, ModelRegistry, ModelSpec};
use weir_plugin_host::{InstanceSettings, PluginEngine, PluginInstance};
use weir_runtime::pipeline::{PluginStep, RunOptions, Step, start};

#[derive(Debug, clap::Args)]
pub struct BenchModelsArgs {
    /// Models to measure, `name=path`, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "logistic=examples/fraud-detection/fraud-logistic.onnx,gbdt=examples/fraud-detection/fraud-gbdt.onnx"
    )]
    pub models: Vec<String>,
    /// NDJSON whose `features` arrays are the rows to score.
    #[arg(long, default_value = "examples/fraud-detection/expected-gbdt.ndjson")]
    pub rows: PathBuf,
    /// Rows scored per measurement.
    #[arg(long, default_value_t = 200_000)]
    pub count: usize,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub batch_sizes: Vec<usize>,
    /// The infer-bench plugin.
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release/infer_bench.wasm")]
    pub infer_plugin: PathBuf,
    /// The fraud-scorer plugin and its config, for the end-to-end runs.
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release/fraud_scorer.wasm")]
    pub scorer: PathBuf,
    #[arg(long, default_value = "examples/fraud-detection/features.json")]
    pub scorer_config: PathBuf,
    /// ONNX Runtime library (default: $ORT_DYLIB_PATH).
    #[arg(long)]
    pub onnx_library: Option<PathBuf>,
}

pub fn bench_models(args: BenchModelsArgs) -> anyhow::Result<ExitCode> {
    let rows = read_rows(&args.rows)?;
    let specs: Vec<ModelSpec> = args
        .models
        .iter()
        .map(|m| {
            let (name, path) = m.split_once('=').context("--models takes name=path")?;
            Ok(ModelSpec { name: name.into(), path: path.into(), threads: 1, reload_check: None })
        })
        .collect::<anyhow::Result<_>>()?;
    let metrics = Metrics::new("bench");
    let registry = ModelRegistry::load(&specs, args.onnx_library.as_deref(), metrics.models())?;
    let engine = PluginEngine::new(weir_plugin_host::default_cache_dir())?;
    println!("weir-bench models: {} rows per measurement, {} features per row", args.count, rows[0].len());
    println!(
        "{:>9} {:>6}  {:>11}  {:>13}  {:>11}  {:>12}  {:>9}  {:>22}",
        "model",
        "batch",
        "ort µs/row",
        "infer µs/row",
        "host µs/row",
        "call µs/row",
        "overhead",
        "fraud pipeline rows/s"
    );
    for spec in &specs {
        let model = registry.get(&spec.name).expect("loaded");
        for &batch in &args.batch_sizes {
            let direct = ort_direct(&model, &rows, batch, args.count)?;
            let plugin = &args.infer_plugin;
            let before = infer_seconds(&metrics);
            let through = through_plugin(&engine, plugin, &model, &rows, batch, args.count, true)?;
            let (host_s, host_calls) = infer_seconds(&metrics);
            let host = (host_s - before.0) / (host_calls - before.1).max(1) as f64 / batch as f64;
            let call = through_plugin(&engine, plugin, &model, &rows, batch, args.count, false)?;
            let pipeline = fraud_pipeline(&args, spec, batch)?;
            println!(
                "{:>9} {batch:>6}  {:>11.3}  {:>13.3}  {:>11.3}  {:>12.3}  {:>8.1}%  {:>20}/s",
                spec.name,
                direct * 1e6,
                through * 1e6,
                host * 1e6,
                call * 1e6,
                ((through - call) / direct - 1.0) * 100.0,
                si(pipeline)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// (seconds, calls) of `infer` so far, from the inference histogram.
fn infer_seconds(metrics: &Metrics) -> (f64, u64) {
    let text = metrics.render();
    let sum = |suffix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("weir_model_inference_duration_seconds_{suffix}")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (sum("sum"), sum("count") as u64)
}

fn read_rows(path: &Path) -> anyhow::Result<Vec<Vec<f32>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rows: Vec<Vec<f32>> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            let f = v["features"].as_array().context("a line without `features`")?;
            Ok(f.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect())
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!rows.is_empty(), "{} holds no rows", path.display());
    Ok(rows)
}

/// `count` rows (cycled from `rows`) in batches of `batch`, flat.
fn batches(rows: &[Vec<f32>], batch: usize, count: usize) -> Vec<Vec<f32>> {
    (0..count.div_ceil(batch))
        .map(|b| (0..batch).flat_map(|i| rows[(b * batch + i) % rows.len()].iter().copied()).collect())
        .collect()
}

/// Seconds per row of `Session::run` from Rust, outputs read in place.
fn ort_direct(model: &Model, rows: &[Vec<f32>], batch: usize, count: usize) -> anyhow::Result<f64> {
    let version = model.current();
    let mut session = model.session(&version).map_err(anyhow::Error::msg)?;
    let input = version.signature.inputs[0].name.clone();
    let cols = rows[0].len();
    let data = batches(rows, batch, count);
    let mut busy = Duration::ZERO;
    for (round, b) in data.iter().enumerate() {
        let started = Instant::now();
        let tensor = TensorRef::from_array_view(([batch, cols], b.as_slice()))?;
        let outputs = session.run(ort::inputs![input.as_str() => tensor])?;
        let mut sum = 0.0f64;
        for (_, v) in outputs.iter() {
            if let Ok((_, d)) = v.try_extract_tensor::<f32>() {
                sum += f64::from(d[0]);
            }
        }
        std::hint::black_box(sum);
        if round >= data.len() / 20 {
            busy += started.elapsed(); // the first 5% warm up
        }
    }
    Ok(busy.as_secs_f64() / (data.len() - data.len() / 20).max(1) as f64 / batch as f64)
}

/// Seconds per row of the same work through a plugin calling `infer`
/// (or, with `call` false, only building the tensor).
fn through_plugin(
    engine: &PluginEngine,
    plugin: &Path,
    model: &Arc<Model>,
    rows: &[Vec<f32>],
    batch: usize,
    count: usize,
    call: bool,
) -> anyhow::Result<f64> {
    let version = model.current();
    let input = &version.signature.inputs[0].name;
    let config = serde_json::json!({"model": model.name, "input": input, "rows": rows, "call": call});
    let metrics = Metrics::new("bench");
    let settings = InstanceSettings {
        state: None,
        step: "bench".into(),
        config: config.to_string(),
        limits: Limits { deadline: Duration::from_secs(10), ..Limits::default() },
        grants: Default::default(),
        metrics: metrics.plugin_api("bench"),
        models: vec![model.clone()],
    };
    let instance = PluginInstance::start(engine.load(plugin)?, settings.clone())?;
    let (mut step, _) = PluginStep::new(instance, settings, &metrics, Default::default());
    let dir = tempfile::tempdir()?;
    let dead = DeadLetters::new(dir.path().join("dead.ndjson"), vec!["events".into()], metrics.clone());
    let mut one = Batch::default();
    for i in 0..batch {
        one.push(b"{}", i as i64, Default::default());
    }
    let calls = count.div_ceil(batch);
    let mut busy = Duration::ZERO;
    for round in 0..calls {
        let b = one.clone();
        let started = Instant::now();
        std::hint::black_box(step.process(b, &dead)?);
        if round >= calls / 20 {
            busy += started.elapsed();
        }
    }
    anyhow::ensure!(metrics.dead_letter_total() == 0, "infer failed while benchmarked (see {})", dir.path().display());
    Ok(busy.as_secs_f64() / (calls - calls / 20).max(1) as f64 / batch as f64)
}

/// Rows/s of generator → fraud-scorer (this model) → discard.
fn fraud_pipeline(args: &BenchModelsArgs, model: &ModelSpec, batch: usize) -> anyhow::Result<f64> {
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&args.scorer_config)?)?;
    config["model"] = model.name.clone().into();
    let dir = tempfile::tempdir()?;
    let onnx = match &args.onnx_library {
        Some(l) => format!("[onnx]\nlibrary = {:?}\n\n", l.display().to_string()),
        None => String::new(),
    };
    let text = format!(
        "[pipeline]\nname = \"bench\"\nbatch_size = {batch}\n\n{onnx}\
         [models.{name}]\npath = {path:?}\nthreads = {threads}\n\n\
         [[sources]]\nname = \"tx\"\nkind = \"generator\"\ngenerate = \"transactions\"\n\
         start = \"2026-03-01T08:00:00Z\"\ninterval = \"20ms\"\ncount = {count}\nkeys = 5000\nseed = 11\n\
         timestamp_field = \"EventTime\"\nkey_field = \"card_id\"\n\n\
         [[steps]]\nname = \"score\"\nplugin = {plugin:?}\nconfig = {config:?}\nmodels = [\"{name}\"]\n\
         limits = {{ deadline = \"10s\" }}\n\n\
         [[sinks]]\nname = \"discard\"\nkind = \"discard\"\n\n[dead_letter]\npath = {dead:?}\n",
        name = model.name,
        path = model.path.display().to_string(),
        threads = model.threads,
        count = args.count,
        plugin = args.scorer.display().to_string(),
        config = config.to_string(),
        dead = dir.path().join("dead.ndjson").display().to_string(),
    );
    let spec = weir_config::load_str(&dir.path().join("bench.toml"), &text)?;
    let started = Instant::now();
    let running = start(spec, RunOptions { cache_dir: weir_plugin_host::default_cache_dir(), ..Default::default() })?;
    let report = running.wait().context("bench run failed")?;
    anyhow::ensure!(report.dead_letters.iter().all(|(_, n)| *n == 0), "events were dead-lettered");
    Ok(args.count as f64 / started.elapsed().as_secs_f64())
}
