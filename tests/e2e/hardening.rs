//! Issue 19: every bad input, slow client and hostile plugin found when the
//! runtime was attacked gets a bounded answer. Each test here failed on the
//! main branch before its fix.

use crate::harness::*;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs `weir run <pipeline>` and fails the test (after killing it) if it
/// has not ended in `limit`: a hang is the failure these tests look for.
fn run_or_hang(pipeline: &Path, limit: Duration) -> Output {
    let mut child = weir()
        .arg("run")
        .arg(pipeline)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weir starts");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!("weir hung for {limit:?}:\n{}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Finding 1: event times near `i64::MAX`, `i64::MIN` or in the year
/// 300000 are dead-lettered by name; every window kind still gives the rows
/// of the good events, on one shard and on two.
#[test]
fn extreme_event_times_are_dead_lettered_and_windows_stay_correct() {
    let extreme = [
        format!("{}", i64::MAX),
        format!("{}", i64::MIN),
        format!("{}", i64::MAX - 1),
        "9467000000000000".to_string(),
        "1e300".to_string(),
        "\"+300000-01-01T00:00:00Z\"".to_string(),
        "\"1850-01-01T00:00:00Z\"".to_string(),
    ];
    let mut lines = Vec::new();
    for i in 0..40 {
        lines.push(format!(r#"{{"id":"k{}","t":{},"v":{i}}}"#, i % 3, 1_000 + i * 700));
        if i % 5 == 0 {
            let bad = &extreme[(i / 5) as usize % extreme.len()];
            lines.push(format!(r#"{{"id":"k{}","t":{bad},"v":1000}}"#, i % 3));
        }
    }
    let good: Vec<String> = lines.iter().filter(|l| !l.contains("1000}")).cloned().collect();
    for window in [
        "TumblingWindow(second, 5)",
        "HoppingWindow(second, 10, 3)",
        "SlidingWindow(second, 4)",
        "SessionWindow(second, 2, 6)",
    ] {
        for parallelism in [1, 2] {
            let rows = |input: &[String], dir: &Path| {
                let path = dir.join("in.ndjson");
                write_lines(&path, input.iter().cloned());
                let pipeline = dir.join("p.toml");
                std::fs::write(
                    &pipeline,
                    format!(
                        r#"
[pipeline]
name = "extreme"
parallelism = {parallelism}
[[sources]]
name = "s"
kind = "file"
path = {input}
timestamp_field = "t"
key_field = "id"
[[steps]]
name = "q"
query = "SELECT id, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY id, {window}"
[[sinks]]
name = "out"
kind = "file"
path = {out}
[dead_letter]
path = {dead}
"#,
                        input = toml_path(&path),
                        out = toml_path(&dir.join("out.ndjson")),
                        dead = toml_path(&dir.join("dead.ndjson")),
                    ),
                )
                .unwrap();
                assert_ok(&run_or_hang(&pipeline, Duration::from_secs(60)));
                let mut rows: Vec<String> = ndjson(&dir.join("out.ndjson")).iter().map(|r| r.to_string()).collect();
                rows.sort();
                (rows, ndjson(&dir.join("dead.ndjson")))
            };
            let (a, b) = (scratch(), scratch());
            let (with_bad, dead) = rows(&lines, a.path());
            let (without, none) = rows(&good, b.path());
            assert!(none.is_empty());
            assert!(!without.is_empty());
            assert_eq!(with_bad, without, "{window}, {parallelism} shard(s): the extreme times change no row");
            assert_eq!(dead.len(), 8, "{window}: {dead:?}");
            for d in &dead {
                assert_eq!(d["reason"], "invalid-event", "{d}");
                let detail = d["detail"].as_str().unwrap();
                assert!(detail.starts_with("field `t`: "), "{detail}");
                assert!(d["original"].as_str().unwrap().contains("1000}"), "{d}");
            }
        }
    }
}

/// The accepted range is a setting, checked when the file loads.
#[test]
fn the_event_time_range_is_configurable_and_checked() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(&input, [r#"{"t":"2026-01-01T00:00:00Z"}"#.to_string(), r#"{"t":"2024-06-01T00:00:00Z"}"#.to_string()]);
    let pipeline = |extra: &str| {
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            format!(
                "[pipeline]\nname = \"range\"\n{extra}\n[[sources]]\nname = \"s\"\nkind = \"file\"\npath = {}\ntimestamp_field = \"t\"\n[[sinks]]\nname = \"out\"\nkind = \"file\"\npath = {}\n[dead_letter]\npath = {}\n",
                toml_path(&input),
                toml_path(&dir.path().join("out.ndjson")),
                toml_path(&dir.path().join("dead.ndjson"))
            ),
        )
        .unwrap();
        path
    };
    assert_ok(&run(&pipeline("event_time_min = \"2025-01-01T00:00:00Z\"")));
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["detail"].as_str().unwrap().contains("2025-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z"));
    for (extra, says) in [
        ("event_time_min = \"soon\"", "pipeline.event_time_min"),
        (
            "event_time_min = \"2026-01-01T00:00:00Z\"\nevent_time_max = \"2025-01-01T00:00:00Z\"",
            "pipeline.event_time_max",
        ),
    ] {
        let out = run(&pipeline(extra));
        assert!(!out.status.success());
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}
