//! Kafka in and out against a real Apache Kafka 4.4 broker: exactly-once
//! through kill -9, resuming from a checkpoint, replays; and faults through
//! librdkafka's mock cluster (which is never used to prove exactly-once: it
//! does not implement transactional offset commits or read_committed).

mod broker;
mod catch_up;
mod faults;
mod group;
mod outage;
mod secure;

use crate::harness::{plugin, scratch, toml_path, weir};
use broker::{brokers, create_topic, produce};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Vital-sign events `from..to`: 40 patients, 100 ms apart from 08:00 (all
/// in one hour window), heart rates spread so about a quarter exceed 100.
fn vitals(from: u64, to: u64) -> Vec<(String, String)> {
    (from..to)
        .map(|i| {
            let patient = format!("P{:02}", i % 40);
            let hr = 60 + (i * 7919) % 60;
            let t = 1_767_254_400_000u64 + i * 100; // 2026-01-01T08:00:00Z + i * 100 ms
            (patient.clone(), format!(r#"{{"id":{i},"PatientId":"{patient}","EventTime":{t},"HeartRate":{hr}}}"#))
        })
        .collect()
}

/// Counts per (hour window start, patient).
type Counts = BTreeMap<(String, String), u64>;

/// Window results as written: ((window start, patient), count), sorted.
type Rows = Vec<((String, String), u64)>;

/// What the pipeline must write for `events`: the alert ids, and per hour
/// and patient the number of alerts.
fn expected(events: &[(String, String)]) -> (Vec<u64>, Counts) {
    let mut ids = Vec::new();
    let mut counts = BTreeMap::new();
    for (_, e) in events {
        let v: serde_json::Value = serde_json::from_str(e).unwrap();
        if v["HeartRate"].as_u64().unwrap() > 100 {
            ids.push(v["id"].as_u64().unwrap());
            let hour = v["EventTime"].as_i64().unwrap() / 3_600_000 * 3_600_000;
            let start = chrono::DateTime::from_timestamp_millis(hour).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ");
            *counts.entry((start.to_string(), v["PatientId"].as_str().unwrap().to_string())).or_insert(0) += 1;
        }
    }
    ids.sort_unstable();
    (ids, counts)
}

/// Kafka → running count per patient (plugin keyed state) → tachycardia
/// plugin → Kafka (`alerts`), and a window counting each patient's alerts
/// → Kafka (`counts`); checkpoints every 200 ms.
fn pipeline(dir: &Path, name: &str, stop_at_end: bool, exactly_once: bool) -> std::path::PathBuf {
    pipeline_on(dir, name, stop_at_end, exactly_once, 1)
}

/// [`pipeline`] on `shards` shards.
fn pipeline_on(dir: &Path, name: &str, stop_at_end: bool, exactly_once: bool, shards: u16) -> std::path::PathBuf {
    pipeline_at(dir, name, stop_at_end, exactly_once, shards, &brokers(), "")
}

/// [`pipeline_on`] with the broker at `brokers`; `properties` (librdkafka's,
/// a TOML inline table's text, or "") for every client.
fn pipeline_at(
    dir: &Path,
    name: &str,
    stop_at_end: bool,
    exactly_once: bool,
    shards: u16,
    brokers: &str,
    properties: &str,
) -> std::path::PathBuf {
    let properties = if properties.is_empty() { String::new() } else { format!("properties = {properties}") };
    let text = format!(
        r#"
[pipeline]
name = "{name}"
batch_size = 64
parallelism = {shards}

[[sources]]
name = "vitals"
kind = "kafka"
brokers = "{brokers}"
topic = "{name}-in"
timestamp_field = "EventTime"
key_field = "PatientId"
max_out_of_orderness = "2h"
stop_at_end = {stop_at_end}
{properties}

[[steps]]
name = "running"
plugin = {running}

[[steps]]
name = "fast"
plugin = {plugin}

[[steps]]
name = "count"
query = "SELECT PatientId, COUNT(*) AS n FROM fast GROUP BY PatientId, TumblingWindow(hour, 1)"

[[sinks]]
name = "alerts"
kind = "kafka"
from = "fast"
brokers = "{brokers}"
topic = "{name}-alerts"
key_field = "PatientId"
{properties}

[[sinks]]
name = "counts"
kind = "kafka"
from = "count"
brokers = "{brokers}"
topic = "{name}-counts"
{properties}

[checkpoint]
dir = {ckpt}
interval = "200ms"
exactly_once = {exactly_once}

[dead_letter]
path = {dead}
"#,
        plugin = toml_path(&plugin("tachycardia")),
        running = toml_path(&plugin("running_count")),
        ckpt = toml_path(&dir.join("checkpoints")),
        dead = toml_path(&dir.join("dead.ndjson")),
    );
    let path = dir.join(format!("{name}-{stop_at_end}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn(pipeline: &Path, log: &Path, extra: &[&str]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    weir()
        .arg("run")
        .arg(pipeline)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("weir starts")
}

fn wait_ok(mut child: Child, log: &Path) {
    let status = child.wait().unwrap();
    assert!(status.success(), "weir failed ({status}):\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

/// The ids in the alerts topic and the window results, sorted (duplicates
/// kept). An alert's running count (`n`, from the plugin's keyed state),
/// when the pipeline keeps one, must be its patient's number of events up
/// to it: 40 patients in turn.
fn outputs(name: &str) -> (Vec<u64>, Rows) {
    outputs_on(&brokers(), name)
}

/// [`outputs`] from the broker at `brokers`.
fn outputs_on(brokers: &str, name: &str) -> (Vec<u64>, Rows) {
    let mut ids: Vec<u64> = broker::read_committed_on(brokers, &format!("{name}-alerts"))
        .into_values()
        .flatten()
        .map(|a| {
            let v = serde_json::from_str::<serde_json::Value>(&a).unwrap();
            let id = v["id"].as_u64().unwrap();
            if !v["n"].is_null() {
                assert_eq!(v["n"].as_u64(), Some(id / 40 + 1), "keyed state lost or counted twice: {a}");
            }
            id
        })
        .collect();
    ids.sort_unstable();
    let mut counts = Vec::new();
    for row in broker::read_committed_on(brokers, &format!("{name}-counts")).into_values().flatten() {
        let v: serde_json::Value = serde_json::from_str(&row).unwrap();
        let key = (v["window_start"].as_str().unwrap().to_string(), v["PatientId"].as_str().unwrap().to_string());
        counts.push((key, v["n"].as_u64().unwrap()));
    }
    counts.sort();
    (ids, counts)
}

fn assert_exact(name: &str, events: &[(String, String)]) {
    assert_exact_on(&brokers(), name, events);
}

/// [`assert_exact`] on the broker at `brokers`.
fn assert_exact_on(brokers: &str, name: &str, events: &[(String, String)]) {
    let (want_ids, want_counts) = expected(events);
    let (ids, counts) = outputs_on(brokers, name);
    assert_eq!(ids.len(), want_ids.len(), "alerts: {} written, {} expected", ids.len(), want_ids.len());
    assert!(ids == want_ids, "alerts differ: some missing and others twice");
    assert_eq!(counts, want_counts.into_iter().collect::<Vec<_>>(), "window results differ");
}

#[test]
fn kill_9_at_random_moments_loses_nothing_and_duplicates_nothing() {
    kill_9_at_random_moments(1);
}

#[test]
fn kill_9_on_two_shards_loses_nothing_and_duplicates_nothing() {
    kill_9_at_random_moments(2);
}

fn kill_9_at_random_moments(shards: u16) {
    let dir = scratch();
    let name = &unique(&format!("eos-kill-{shards}"));
    create_topic(&format!("{name}-in"), 4);
    let events = vitals(0, 100_000);
    produce(&format!("{name}-in"), &events);
    let p = pipeline_on(dir.path(), name, true, true, shards);
    let log = dir.path().join("weir.log");
    let seed: u64 = rand::random();
    eprintln!("kill moments from seed {seed}");
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut killed_while_running = 0;
    for run in 1..=5 {
        let mut child = spawn(&p, &log, &[]);
        // The random moment counts from when this run holds its partitions
        // (start-up takes longer on a loaded machine), unless it has ended.
        let assigned = std::time::Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&log).unwrap_or_default().matches("partitions assigned").count() < run
            && child.try_wait().unwrap().is_none()
            && std::time::Instant::now() < assigned
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rand::Rng::random_range(&mut rng, 100..700)));
        match child.try_wait().unwrap() {
            None => killed_while_running += 1,
            Some(status) => assert!(status.success(), "weir failed:\n{}", std::fs::read_to_string(&log).unwrap()),
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    wait_ok(spawn(&p, &log, &[]), &log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(killed_while_running > 0, "every run had ended before its kill (seed {seed})");
    assert!(text.contains("restoring checkpoint"), "no run restored a checkpoint:\n{text}");
    // Shown if the test fails: what each run restored and did.
    for l in text.lines().filter(|l| !l.contains("librdkafka") && !l.contains("plugin started")) {
        eprintln!("{l}");
    }
    assert_exact(name, &events);
}

#[test]
fn a_restart_resumes_exactly_from_the_checkpoint_and_a_replay_starts_over() {
    let dir = scratch();
    let name = &unique("eos-restart");
    create_topic(&format!("{name}-in"), 3);
    let first = vitals(0, 6_000);
    produce(&format!("{name}-in"), &first);
    let log = dir.path().join("weir.log");

    // Run 1 takes the first half, is stopped (SIGTERM) once its alerts are
    // committed, and keeps its windows open in the checkpoint.
    let mut child = spawn(&pipeline(dir.path(), name, false, true), &log, &[]);
    let (want_first, _) = expected(&first);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while outputs(name).0.len() < want_first.len() {
        assert!(std::time::Instant::now() < deadline, "run 1 did not commit the first half");
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(outputs(name).1.is_empty(), "windows fired before the end of input");

    // Run 2 resumes from that checkpoint, takes the second half to the end.
    let second = vitals(6_000, 12_000);
    produce(&format!("{name}-in"), &second);
    let p = pipeline(dir.path(), name, true, true);
    let metrics = dir.path().join("metrics.prom");
    wait_ok(spawn(&p, &log, &["--metrics-file", metrics.to_str().unwrap()]), &log);
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_exact(name, &all);
    // The Kafka source and sink update what the docs promise (metrics.rs).
    let m = std::fs::read_to_string(&metrics).unwrap();
    crate::metrics::assert_promised(&m, "kafka source", "vitals");
    crate::metrics::assert_promised(&m, "kafka sink (exactly-once)", "committed");
    crate::metrics::assert_promised(&m, "source", "vitals");
    crate::metrics::assert_promised(&m, "sink", "alerts");

    // A replay from the earliest offset sets the checkpoints aside and
    // processes everything again: each alert is now there twice.
    wait_ok(spawn(&p, &log, &["--from", "earliest"]), &log);
    let (ids, _) = outputs(name);
    let (want, _) = expected(&all);
    let mut twice: Vec<u64> = want.iter().flat_map(|i| [*i, *i]).collect();
    twice.sort_unstable();
    assert!(ids == twice, "the replay did not write every alert once more");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("replay: the checkpoints are set aside"), "{text}");
    assert!(stderr_has_no_error(&text), "{text}");
}

/// A name for topics, group and pipeline not used before on this broker.
fn unique(base: &str) -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    format!("{base}-{}", ms % 100_000_000)
}

fn stderr_has_no_error(text: &str) -> bool {
    !text.lines().any(|l| l.contains(" ERROR "))
}
