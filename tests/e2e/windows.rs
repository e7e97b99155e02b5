//! Query steps and windows through the real binary: the patient-monitoring
//! example, late events, and queries composed with plugins.

use crate::harness::*;
use std::path::Path;

/// An example's pipeline file with its outputs moved into `dir`.
fn example(dir: &Path, file: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("examples/patient-monitoring").join(file)).unwrap();
    let text = text
        .replace("out/patient-monitoring/", &format!("{}/", dir.display()))
        .replace("\"plugins/target/wasm32-wasip2/release/window_risk.wasm\"", &toml_path(&plugin("window_risk")));
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_patient_monitoring_query_gives_exactly_the_expected_rows() {
    let dir = scratch();
    let out = run(&example(dir.path(), "pipeline.toml"));
    assert_ok(&out);
    let expected = std::fs::read_to_string(repo().join("examples/patient-monitoring/expected-alerts.ndjson")).unwrap();
    let got = std::fs::read_to_string(dir.path().join("alerts.ndjson")).unwrap();
    assert_eq!(got, expected);
    assert_eq!(ndjson(&dir.path().join("late.ndjson")).len(), 0, "1 s of out-of-orderness covers 500 ms of jitter");
    assert!(stderr(&out).contains("dead-letter  none"), "{}", stderr(&out));
}

#[test]
fn window_results_feed_a_plugin() {
    let dir = scratch();
    let out = run(&example(dir.path(), "with-risk.toml"));
    assert_ok(&out);
    let alerts: Vec<serde_json::Value> = ndjson(&repo().join("examples/patient-monitoring/expected-alerts.ndjson"));
    let risks = ndjson(&dir.path().join("risks.ndjson"));
    assert_eq!(risks.len(), alerts.len(), "every alert here scores at least medium");
    for (risk, alert) in risks.iter().zip(&alerts) {
        assert_eq!(risk["patient_id"], alert["PatientId"]);
        assert_eq!(risk["window_end"], alert["window_end"]);
        assert!(risk["score"].as_u64().unwrap() >= 2, "{risk}");
    }
}

/// A pipeline over `lines` with one query step, its late output taken by a sink.
fn query_pipeline(dir: &Path, lines: &[&str], query: &str, extra: &str, late_sink: bool) -> std::path::PathBuf {
    let input = dir.join("in.ndjson");
    write_lines(&input, lines.iter().map(|l| l.to_string()));
    let late = if late_sink {
        format!(
            "[[sinks]]\nname = \"late\"\nkind = \"file\"\nfrom = \"q.late\"\npath = {}\n",
            toml_path(&dir.join("late.ndjson"))
        )
    } else {
        String::new()
    };
    let text = format!(
        r#"
[pipeline]
name = "windows"
batch_size = 2

[[sources]]
name = "s"
kind = "file"
path = {input}
timestamp_field = "t"

[[steps]]
name = "q"
query = """{query}"""
{extra}

[[sinks]]
name = "out"
kind = "file"
from = "q"
path = {out}

{late}
[dead_letter]
path = {dead}
"#,
        input = toml_path(&input),
        out = toml_path(&dir.join("out.ndjson")),
        dead = toml_path(&dir.join("dead.ndjson")),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const LATE_INPUT: &[&str] = &[
    r#"{"k":"a","t":1000,"v":1}"#,
    r#"{"k":"a","t":9000,"v":2}"#,
    r#"{"k":"a","t":12000,"v":4}"#,
    r#"{"k":"a","t":8000,"v":8}"#,
    r#"{"k":"a","t":16000,"v":1}"#,
    r#"{"k":"a","t":5000,"v":100}"#,
    r#"{"k":"b","t":15500,"v":1}"#,
];

const LATE_QUERY: &str = "SELECT k, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY k, TumblingWindow(second, 10)";

#[test]
fn a_late_event_within_lateness_corrects_its_window_and_one_beyond_goes_to_the_late_output() {
    let dir = scratch();
    let pipeline = query_pipeline(dir.path(), LATE_INPUT, LATE_QUERY, r#"allowed_lateness = "5s""#, true);
    let out = run(&pipeline);
    assert_ok(&out);
    let got = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    assert_eq!(
        got,
        [
            // t=12000 moves the watermark past 10 s: the first window fires.
            r#"{"window_start":"1970-01-01T00:00:00.000Z","window_end":"1970-01-01T00:00:10.000Z","k":"a","n":2,"total":3}"#,
            // t=8000 is late, but within 5 s of lateness: a correction.
            r#"{"window_start":"1970-01-01T00:00:00.000Z","window_end":"1970-01-01T00:00:10.000Z","k":"a","n":3,"total":11,"correction":true}"#,
            // The end of the file is the final watermark.
            r#"{"window_start":"1970-01-01T00:00:10.000Z","window_end":"1970-01-01T00:00:20.000Z","k":"a","n":2,"total":5}"#,
            r#"{"window_start":"1970-01-01T00:00:10.000Z","window_end":"1970-01-01T00:00:20.000Z","k":"b","n":1,"total":1}"#,
            "",
        ]
        .join("\n")
    );
    // t=5000 arrives when the watermark is 16 s: past 10 s + 5 s.
    assert_eq!(ndjson(&dir.path().join("late.ndjson")), vec![serde_json::json!({"k":"a","t":5000,"v":100})]);
    assert!(stderr(&out).contains("late: 1 events"), "{}", stderr(&out));
}

#[test]
fn without_a_late_sink_late_events_go_to_the_dead_letter_output() {
    let dir = scratch();
    let pipeline = query_pipeline(dir.path(), LATE_INPUT, LATE_QUERY, "", false);
    let out = run(&pipeline);
    assert_ok(&out);
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    let late: Vec<_> = dead.iter().map(|d| (d["reason"].as_str().unwrap(), d["line"].as_u64().unwrap())).collect();
    // No lateness: both t=8000 (line 4) and t=5000 (line 6) are late.
    assert_eq!(late, vec![("late-event", 4), ("late-event", 6)]);
    assert_eq!(dead[0]["step"], "q");
    assert!(dead[0]["detail"].as_str().unwrap().contains("before the watermark 12000"), "{}", dead[0]);
}

#[test]
fn a_plugin_feeds_a_query() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(
        &input,
        [
            r#"{"PatientId":"P1","t":1000,"HeartRate":130}"#,
            r#"{"PatientId":"P1","t":2000,"HeartRate":80}"#,
            r#"{"PatientId":"P2","t":3000,"HeartRate":120}"#,
            r#"{"PatientId":"P1","t":4000,"HeartRate":125}"#,
            r#"{"PatientId":"P1","t":61000,"HeartRate":140}"#,
        ]
        .map(String::from),
    );
    let text = format!(
        r#"
[pipeline]
name = "composed"

[[sources]]
name = "vitals"
kind = "file"
path = {input}
timestamp_field = "t"

[[steps]]
name = "fast"
plugin = {plugin}

[[steps]]
name = "count"
query = "SELECT PatientId, COUNT(*) AS episodes, MAX(HeartRate) AS peak FROM fast GROUP BY PatientId, TumblingWindow(minute, 1)"

[[sinks]]
name = "out"
kind = "file"
path = {out}
"#,
        input = toml_path(&input),
        plugin = toml_path(&plugin("tachycardia")),
        out = toml_path(&dir.path().join("out.ndjson")),
    );
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, text).unwrap();
    assert_ok(&run(&pipeline));
    let rows: Vec<(String, String, u64, u64)> = ndjson(&dir.path().join("out.ndjson"))
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("window_end"), s("PatientId"), r["episodes"].as_u64().unwrap(), r["peak"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("1970-01-01T00:01:00.000Z".into(), "P1".into(), 2, 130),
            ("1970-01-01T00:01:00.000Z".into(), "P2".into(), 1, 120),
            ("1970-01-01T00:02:00.000Z".into(), "P1".into(), 1, 140),
        ]
    );
}

#[test]
fn a_bad_query_is_refused_at_start_with_the_line_and_the_offending_part() {
    let dir = scratch();
    let pipeline = query_pipeline(
        dir.path(),
        LATE_INPUT,
        "SELECT k, v, COUNT(*) AS n FROM s GROUP BY k, TumblingWindow(second, 10)",
        "",
        false,
    );
    let out = run(&pipeline);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:14: steps[0].query: `v` must be in GROUP BY or inside an aggregate",
            pipeline.display()
        )),
        "{err}"
    );
    assert!(!dir.path().join("out.ndjson").exists(), "nothing half-runs");

    let pipeline = query_pipeline(dir.path(), LATE_INPUT, "SELECT * FROM elsewhere", "", false);
    let err = stderr(&run(&pipeline));
    assert!(err.contains("steps[0].query: FROM `elsewhere`: this step reads the source `s`"), "{err}");
}

#[test]
fn validate_prints_the_query_plan() {
    let out = weir().args(["validate", "examples/patient-monitoring/pipeline.toml"]).output().unwrap();
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains("step `monitor`: query plan"), "{err}");
    assert!(err.contains("  window: tumbling 5m"), "{err}");
    assert!(err.contains("  having: (agg0 > 100)"), "{err}");
}
