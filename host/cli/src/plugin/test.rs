//! `weir plugin test`: runs a plugin on NDJSON events and compares what it
//! did — each emitted event with its output, each refusal with its reason —
//! with an expected file, the way `vector test` checks a config.
//!
//! Results are JSON lines in input order, compared as JSON values (key order
//! and spacing do not matter):
//!   {"input": 2, "output": "alerts", "event": {...}}   an emitted event
//!   {"input": 14, "rejected": "missing field `hr`"}     a dead letter
//! `input` is the event's line number in the input file.
#![allow(clippy::print_stdout, reason = "the report is the command's output")]

use super::Manifest;
use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use weir_config::Limits;
use weir_core::metrics::Metrics;
use weir_plugin_host::{InstanceSettings, PluginEngine, PluginInstance};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// A plugin folder (built first) or a component (.wasm).
    pub plugin: PathBuf,
    /// Input events, one JSON object per line (default: the folder's sample/input.ndjson).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Expected results (default: the folder's sample/expected.ndjson).
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// The config string handed to the plugin's init.
    #[arg(long, default_value = "")]
    pub config: String,
    /// Events per batch.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// The deadline of each call. Generous by default: this checks what a
    /// plugin does, not how fast (a pipeline step's `limits.deadline` does).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub deadline: std::time::Duration,
    /// The input field that holds each event's time (milliseconds); 0 without it.
    #[arg(long)]
    pub time_field: Option<String>,
    /// Also write the actual results to this file.
    #[arg(long)]
    pub actual: Option<PathBuf>,
    /// Write the actual results to the expected file instead of comparing.
    #[arg(long)]
    pub bless: bool,
}

/// Resolves a plugin argument: a folder is built, a file is taken as is.
pub fn component(plugin: &Path) -> anyhow::Result<PathBuf> {
    if plugin.is_dir() { super::build::build(plugin) } else { Ok(plugin.to_path_buf()) }
}

/// One input event: its line number, bytes and time.
pub struct Input {
    pub line: usize,
    pub payload: Vec<u8>,
    pub timestamp: i64,
}

pub fn read_input(path: &Path, time_field: Option<&str>) -> anyhow::Result<Vec<Input>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut events = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value =
            serde_json::from_slice(line).with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
        let Value::Object(object) = &value else {
            bail!("{} line {}: an event must be a JSON object", path.display(), i + 1);
        };
        let timestamp = match time_field {
            Some(field) => object
                .get(field)
                .and_then(Value::as_i64)
                .with_context(|| format!("{} line {}: no whole-number time field `{field}`", path.display(), i + 1))?,
            None => 0,
        };
        events.push(Input { line: i + 1, payload: line.to_vec(), timestamp });
    }
    Ok(events)
}

/// An instance's settings outside any pipeline: default limits but
/// `deadline`, no grants, no models.
pub fn settings(step: &str, config: &str, deadline: std::time::Duration) -> InstanceSettings {
    let metrics = Metrics::new(&format!("plugin-{step}"));
    InstanceSettings {
        // Keyed state works, with every event under one (empty) key.
        state: Some(weir_plugin_host::KeyedState::new(None)),
        step: step.into(),
        config: config.to_string(),
        limits: Limits { deadline, ..Limits::default() },
        grants: Default::default(),
        metrics: metrics.plugin_api(step),
        models: Vec::new(),
    }
}

/// Starts `component` with `config`, outside any pipeline.
pub fn start(component: &Path, config: &str, deadline: std::time::Duration) -> anyhow::Result<PluginInstance> {
    let engine = PluginEngine::new(weir_plugin_host::default_cache_dir())?;
    let loaded = engine.load(component)?;
    Ok(PluginInstance::start(loaded, settings("test", config, deadline))?)
}

/// Runs every event through the plugin; returns the results in input order.
pub fn run(instance: &mut PluginInstance, events: &[Input], batch_size: usize) -> anyhow::Result<Vec<Value>> {
    let mut results = Vec::new();
    for chunk in events.chunks(batch_size.max(1)) {
        let (mut payloads, mut ends, mut times) = (Vec::new(), Vec::new(), Vec::new());
        for e in chunk {
            payloads.extend_from_slice(&e.payload);
            ends.push(payloads.len() as u32);
            times.push(e.timestamp);
        }
        let outcomes = instance.process(&mut payloads, &mut ends, &mut times).map_err(|f| {
            let (first, last) = (chunk[0].line, chunk[chunk.len() - 1].line);
            anyhow!("the plugin failed on the batch of input lines {first}-{last}: {}: {}", f.kind.reason(), f.message)
        })?;
        let mut batch: Vec<(u32, Value)> = Vec::new();
        let emitted = &outcomes.emitted;
        let mut start = 0;
        for (i, &end) in emitted.ends.iter().enumerate() {
            let input = emitted.inputs[i];
            let event = &chunk[input as usize];
            let bytes = if end as usize == start { &event.payload[..] } else { &emitted.payloads[start..end as usize] };
            let value: Value = serde_json::from_slice(bytes)
                .with_context(|| format!("the plugin emitted a non-JSON event for input line {}", event.line))?;
            let output = &outcomes.outputs[emitted.ports[i] as usize];
            batch.push((input, json!({"input": event.line, "output": output, "event": value})));
            start = end as usize;
        }
        for r in &outcomes.rejected {
            batch.push((r.input, json!({"input": chunk[r.input as usize].line, "rejected": r.reason})));
        }
        // Stable: an input's emitted events keep their order, then its refusal.
        batch.sort_by_key(|(input, _)| *input);
        results.extend(batch.into_iter().map(|(_, v)| v));
    }
    Ok(results)
}

fn read_expected(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}: not JSON", path.display(), i + 1)))
        .collect()
}

/// One compact line per result, keys sorted: the text the diff compares.
fn lines(results: &[Value]) -> String {
    results.iter().map(|v| format!("{v}\n")).collect()
}

pub fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let folder = args.plugin.is_dir().then(|| args.plugin.clone());
    let sample = |name: &str, given: Option<PathBuf>| match (given, &folder) {
        (Some(path), _) => Ok(path),
        (None, Some(dir)) => Ok(dir.join("sample").join(name)),
        (None, None) => Err(anyhow!("give --input and --expect (or a plugin folder with a sample/)")),
    };
    let input = sample("input.ndjson", args.input)?;
    let expect = sample("expected.ndjson", args.expect)?;
    if let Some(dir) = &folder {
        Manifest::read(dir)?;
    }
    let component = component(&args.plugin)?;
    let events = read_input(&input, args.time_field.as_deref())?;
    let mut instance = start(&component, &args.config, args.deadline)?;
    let actual = run(&mut instance, &events, args.batch_size)?;
    if let Some(path) = &args.actual {
        std::fs::write(path, lines(&actual))?;
    }
    if args.bless {
        std::fs::write(&expect, lines(&actual))?;
        println!("wrote {} results to {}", actual.len(), expect.display());
        return Ok(ExitCode::SUCCESS);
    }
    let expected = read_expected(&expect)?;
    let rejected = actual.iter().filter(|v| v.get("rejected").is_some()).count();
    let summary = format!("{} events: {} emitted, {} rejected", events.len(), actual.len() - rejected, rejected);
    if actual == expected {
        println!("ok: {} ({summary}) match {}", component.display(), expect.display());
        return Ok(ExitCode::SUCCESS);
    }
    let (want, got) = (lines(&expected), lines(&actual));
    let diff = similar::TextDiff::from_lines(&want, &got);
    print!("{}", diff.unified_diff().context_radius(2).header(&expect.display().to_string(), "actual"));
    let changed = diff.iter_all_changes().filter(|c| c.tag() != similar::ChangeTag::Equal).count();
    println!("FAILED: {} differs from {} ({changed} lines; {summary})", component.display(), expect.display());
    Ok(ExitCode::FAILURE)
}
