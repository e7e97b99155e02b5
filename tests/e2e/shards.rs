//! Shards: a pipeline split by key group gives the same results as one
//! shard; a checkpoint taken on N shards restores on M (its keyed state —
//! windows in flight, plugin state — moves by key group); a hot key shows
//! as skew between the shards' metrics.

use crate::harness::{assert_ok, plugin, scratch, stderr, toml_path, weir, write_lines};
use crate::live::{Reaper, sigterm, wait_until};
use std::path::{Path, PathBuf};

/// 20,000 readings of 50 patients, 10 ms apart in event time, up to 300 ms
/// out of order (a fixed pseudo-random order).
fn readings(dir: &Path) -> PathBuf {
    let input = dir.join("in.ndjson");
    let mut rng = 11u64;
    let mut next = move || {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        rng >> 33
    };
    write_lines(
        &input,
        (0..20_000u64).map(|i| {
            let t = 1_000_000 + i * 10 + next() % 300;
            format!(r#"{{"k":"p{}","t":{t},"v":{},"seq":{i}}}"#, next() % 50, next() % 100)
        }),
    );
    input
}

/// A pipeline over `input`: `steps`, results to `out.ndjson`, checkpoints.
fn pipeline(dir: &Path, input: &Path, shards: u16, source_extra: &str, steps: &str) -> PathBuf {
    let text = format!(
        r#"
[pipeline]
name = "shards"
batch_size = 100
parallelism = {shards}

[[sources]]
name = "s"
kind = "file"
path = {input}
timestamp_field = "t"
max_out_of_orderness = "1s"
{source_extra}

{steps}

[[sinks]]
name = "out"
kind = "file"
path = {out}

[checkpoint]
dir = {ckpt}
interval = "50ms"

[dead_letter]
path = {dead}
"#,
        input = toml_path(input),
        out = toml_path(&dir.join("out.ndjson")),
        ckpt = toml_path(&dir.join("ckpt")),
        dead = toml_path(&dir.join("dead.ndjson")),
    );
    let path = dir.join(format!("p{shards}-{}.toml", source_extra.len()));
    std::fs::write(&path, text).unwrap();
    path
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> =
        std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

const WINDOWS: &str = r#"
[[steps]]
name = "windows"
query = "SELECT k, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY k, TumblingWindow(second, 5)"
"#;

fn counting() -> String {
    format!("[[steps]]\nname = \"count\"\nplugin = {}\n", toml_path(&plugin("running_count")))
}

/// Runs `steps` straight on one shard, then paced on `from` shards until
/// stopped by SIGTERM mid-run (state kept in the checkpoint), then to the
/// end on `to` shards: the same results.
fn rescale(steps: &str, key_field: bool, from: u16, to: u16) {
    let dir = scratch();
    let input = readings(dir.path());
    let key = if key_field { "key_field = \"k\"" } else { "" };
    let out = dir.path().join("out.ndjson");
    assert_ok(&weir().arg("run").arg(pipeline(dir.path(), &input, 1, key, steps)).output().unwrap());
    let want = sorted_lines(&out);
    assert!(want.len() > 100, "{} results", want.len());
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_dir_all(dir.path().join("ckpt")).unwrap();

    let paced = pipeline(dir.path(), &input, from, &format!("{key}\nrate = 5000"), steps);
    let mut child = Reaper(Some(weir().arg("run").arg(&paced).arg("-q").spawn().unwrap()));
    wait_until("results before the stop", || std::fs::metadata(&out).is_ok_and(|m| m.len() > 0));
    let stopped = sigterm(&mut child);
    assert_ok(&stopped);
    let partial = sorted_lines(&out).len();
    assert!(partial < want.len(), "the paced run ended before it was stopped");

    let restart =
        weir().arg("run").arg(pipeline(dir.path(), &input, to, key, steps)).env("RUST_LOG", "info").output().unwrap();
    assert_ok(&restart);
    assert!(stderr(&restart).contains("state rescaled by key group"), "{}", stderr(&restart));
    assert_eq!(sorted_lines(&out), want, "{from} → {to} shards (stopped after {partial} results)");
}

#[test]
fn windows_in_flight_move_from_two_shards_to_one() {
    rescale(WINDOWS, false, 2, 1);
}

#[test]
fn windows_in_flight_move_from_one_shard_to_two() {
    rescale(WINDOWS, false, 1, 2);
}

#[test]
fn plugin_keyed_state_moves_from_two_shards_to_three() {
    rescale(&counting(), true, 2, 3);
}

#[test]
fn plugin_keyed_state_moves_from_three_shards_to_one() {
    rescale(&counting(), true, 3, 1);
}

/// One key holds 90 % of the events: results equal one shard's, and the
/// shard that owns it shows in `weir_shard_events_total`.
#[test]
fn a_hot_key_gives_the_same_results_and_shows_as_skew() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(
        &input,
        (0..10_000u64).map(|i| {
            let k = if i % 10 == 0 { format!("cold{}", i % 70) } else { "hot".to_string() };
            format!(r#"{{"k":"{k}","t":{},"v":{}}}"#, i * 7, i % 13)
        }),
    );
    let out = dir.path().join("out.ndjson");
    assert_ok(&weir().arg("run").arg(pipeline(dir.path(), &input, 1, "", WINDOWS)).output().unwrap());
    let want = sorted_lines(&out);
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_dir_all(dir.path().join("ckpt")).unwrap();
    let metrics = dir.path().join("metrics.prom");
    let two = pipeline(dir.path(), &input, 2, "", WINDOWS);
    assert_ok(&weir().arg("run").arg(&two).arg("--metrics-file").arg(&metrics).output().unwrap());
    assert_eq!(sorted_lines(&out), want);
    let m = std::fs::read_to_string(&metrics).unwrap();
    for shard in ["0", "1"] {
        crate::metrics::assert_promised(&m, "shard", shard);
    }
    let events = |shard: u32| {
        crate::live::metric(&m, "weir_shard_events_total", &[&format!("shard=\"{shard}\"")]).unwrap_or(0.0)
    };
    let (a, b) = (events(0), events(1));
    assert_eq!(a + b, 10_000.0, "{m}");
    assert!(a.max(b) >= 9_000.0, "the hot key's shard has at least 90 %: {a} and {b}");
    assert!(a.min(b) > 0.0, "the cold keys are spread: {a} and {b}");
}

/// Two shards for a pipeline with no key refuses to start and says why.
#[test]
fn a_pipeline_without_a_key_cannot_be_split() {
    let dir = scratch();
    let input = readings(dir.path());
    let p = pipeline(dir.path(), &input, 2, "", &counting());
    let out = weir().arg("run").arg(&p).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("pipeline.parallelism") && err.contains("source `s` has no key_field"), "{err}");
}

/// The admin API lists each shard with its key groups and counters.
#[test]
fn the_admin_api_shows_each_shard() {
    let dir = scratch();
    let port = crate::live::free_port();
    let text = format!(
        r#"
[pipeline]
name = "api-shards"
parallelism = 2

[server]
listen = "127.0.0.1:{port}"

[[sources]]
name = "vitals"
kind = "generator"
generate = "vitals"
rate = 2000
key_field = "PatientId"

[[steps]]
name = "identity"
plugin = {plugin}

[[sinks]]
name = "drop"
kind = "discard"

[dead_letter]
path = {dead}
"#,
        plugin = toml_path(&plugin("identity")),
        dead = toml_path(&dir.path().join("dead.ndjson")),
    );
    let mut child = crate::live::spawn_listening(&dir.path().join("p.toml"), &text, port);
    wait_until("the server", || crate::live::get(port, "/readyz").is_some_and(|r| r.0 == 200));
    let shards = || crate::live::get_json(port, "/api/v1/pipelines/api-shards")["shards"].clone();
    wait_until("both shards to process events", || {
        shards().as_array().is_some_and(|s| s.len() == 2 && s.iter().all(|s| s["events"].as_u64() > Some(0)))
    });
    let s = shards();
    assert_eq!((s[0]["key_groups"].as_str(), s[1]["key_groups"].as_str()), (Some("0..64"), Some("64..128")), "{s}");
    assert!(s[0]["busy_seconds"].as_f64().is_some() && s[1]["queue_batches"].as_i64().is_some(), "{s}");
    assert_ok(&sigterm(&mut child));
}
