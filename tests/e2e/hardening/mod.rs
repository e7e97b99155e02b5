//! Issue 19: every bad input, slow client and hostile plugin found when the
//! runtime was attacked gets a bounded answer. Each test here failed on the
//! main branch before its fix. The data path is here; the HTTP server's
//! findings are in `http`.

mod http;

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

/// Finding 3: a plugin that keeps putting keyed state is stopped at its
/// quota: the put that would pass it fails the event (dead-lettered as
/// `plugin-state-quota`), what was stored stays, and the metrics show the
/// state held, never over the quota.
#[test]
fn keyed_state_has_a_quota() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    // 40 events each storing 10 KiB under its own name: 400 KiB asked, 64 KiB allowed.
    write_lines(&input, (0..40).map(|i| format!(r#"{{"k":"p{}","hoard":10240,"name":"blob{i}","seq":{i}}}"#, i % 4)));
    let pipeline = one_step_pipeline(
        dir.path(),
        &input,
        &plugin("hostile"),
        "config = '{\"mode\": \"hoard\"}'\nlimits.state_bytes = \"64KiB\"\ncircuit.failures = 1000",
    );
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        // Batches of 8: a failed call is halved until only the events that
        // fail alone are left, and the writes of failed calls are dropped.
        .replace("batch_size = 4", "batch_size = 8")
        .replace("name = \"input\"\n", "name = \"input\"\nkey_field = \"k\"\n");
    std::fs::write(&pipeline, text).unwrap();
    let metrics = dir.path().join("metrics.prom");
    let out = weir().arg("run").arg(&pipeline).arg("--metrics-file").arg(&metrics).output().unwrap();
    assert_ok(&out);
    let kept = ndjson(&dir.path().join("out.ndjson"));
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    // 64 KiB holds six entries of 10 KiB plus their keys, names and overhead.
    assert_eq!(kept.len(), 6, "{}", stderr(&out));
    assert_eq!(dead.len(), 34);
    for d in &dead {
        assert_eq!(d["reason"], "plugin-state-quota", "{d}");
        assert!(d["detail"].as_str().unwrap().contains("limits.state_bytes"), "{d}");
    }
    let text = std::fs::read_to_string(&metrics).unwrap();
    let held = crate::live::metric(&text, "weir_plugin_state_bytes", &["step=\"step\""]).unwrap();
    assert!(held > 6.0 * 10240.0 && held <= 65536.0, "{held}");
    assert_eq!(crate::live::metric(&text, "weir_plugin_state_keys", &["step=\"step\""]), Some(6.0));
}

/// Finding 5: running the same finite pipeline twice without checkpoints
/// writes its output once, not twice (the file is emptied: every source
/// starts from the beginning), and says so; `mode = "append"` keeps it.
#[test]
fn a_second_run_from_the_beginning_replaces_its_output_and_says_so() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(&input, (0..5).map(|i| format!(r#"{{"seq":{i}}}"#)));
    let pipeline = one_step_pipeline(dir.path(), &input, &plugin("identity"), "");
    assert_ok(&run(&pipeline));
    let again = run(&pipeline);
    assert_ok(&again);
    assert_eq!(ndjson(&dir.path().join("out.ndjson")).len(), 5, "not 10");
    assert!(stderr(&again).contains("emptied") && stderr(&again).contains("mode = \"auto\""), "{}", stderr(&again));
    let text = std::fs::read_to_string(&pipeline).unwrap().replace(
        &format!("path = {}\n", toml_path(&dir.path().join("out.ndjson"))),
        &format!("path = {}\nmode = \"append\"\n", toml_path(&dir.path().join("out.ndjson"))),
    );
    std::fs::write(&pipeline, text).unwrap();
    let third = run(&pipeline);
    assert_ok(&third);
    assert_eq!(ndjson(&dir.path().join("out.ndjson")).len(), 10);
    assert!(stderr(&third).contains("appending to"), "{}", stderr(&third));
}

/// Finding 6: a plugin's `log` calls are rate-limited like its stdout, and
/// a newline in a message cannot forge a host log line.
#[test]
fn plugin_log_lines_are_rate_limited_and_cannot_forge_host_lines() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(
        &input,
        (1..=2000)
            .map(|i| serde_json::json!({"seq": i, "log": format!("logged {i}\nWARN weir: forged {i}")}).to_string()),
    );
    let pipeline = one_step_pipeline(dir.path(), &input, &plugin("hostile"), "config = '{\"mode\": \"log\"}'");
    let metrics = dir.path().join("metrics.prom");
    let out = weir().arg("run").arg(&pipeline).arg("--metrics-file").arg(&metrics).output().unwrap();
    assert_ok(&out);
    let text = stderr(&out);
    let logged: Vec<&str> = text.lines().filter(|l| l.contains("logged ")).collect();
    assert!(logged.len() >= 100 && logged.len() < 2000, "{} lines logged of 2000", logged.len());
    assert!(logged[0].contains("\\u{0a}WARN weir: forged 1"), "the newline is shown, not obeyed: {}", logged[0]);
    assert!(!text.lines().any(|l| l.starts_with("WARN weir: forged")), "no forged line");
    let m = std::fs::read_to_string(&metrics).unwrap();
    let dropped = crate::live::metric(&m, "weir_plugin_output_lines_dropped_total", &["stream=\"log\""]).unwrap();
    assert!(dropped > 0.0);
}

/// Finding 8: batches are bounded in bytes at the source; a line longer
/// than a batch may hold is dead-lettered (its start kept) without being
/// read into memory whole, and every other line passes.
#[test]
fn a_line_longer_than_a_batch_is_dead_lettered_and_batches_are_bounded_in_bytes() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    let mut lines: Vec<String> = (0..2000).map(|i| format!(r#"{{"seq":{i},"pad":"{}"}}"#, "y".repeat(300))).collect();
    lines.insert(1000, format!(r#"{{"seq":-1,"pad":"{}"}}"#, "x".repeat(3 << 20)));
    write_lines(&input, lines);
    let pipeline = one_step_pipeline(dir.path(), &input, &plugin("identity"), "");
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("batch_size = 4", "batch_size = 1000\nbatch_bytes = \"64KiB\"");
    std::fs::write(&pipeline, text).unwrap();
    let metrics = dir.path().join("metrics.prom");
    let out = weir().arg("run").arg(&pipeline).arg("--metrics-file").arg(&metrics).output().unwrap();
    assert_ok(&out);
    let seqs: Vec<i64> = ndjson(&dir.path().join("out.ndjson")).iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (0..2000).collect::<Vec<_>>());
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["reason"], "invalid-event");
    assert_eq!(dead[0]["line"], 1001);
    assert!(dead[0]["detail"].as_str().unwrap().contains("pipeline.batch_bytes"), "{}", dead[0]);
    assert_eq!(dead[0]["original"].as_str().unwrap().len(), 4096, "the start of the line is kept");
    // 64 KiB holds about 200 of these 320-byte lines: no batch of 1000 events
    // (without the byte bound the file comes in batches of 1000).
    let m = std::fs::read_to_string(&metrics).unwrap();
    let over = m
        .lines()
        .find(|l| {
            l.starts_with("weir_batch_size_events_bucket")
                && l.contains("stage=\"source:input\"")
                && l.contains("le=\"256\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap();
    let count = crate::live::metric(&m, "weir_batch_size_events_count", &["stage=\"source:input\""]).unwrap();
    assert_eq!(over, count, "every batch holds at most 256 events");
}

/// Finding 12: outputs are declared; events a plugin emits to any other
/// output are dead-lettered and counted under one label, so plugin-chosen
/// names never become metric labels.
#[test]
fn undeclared_outputs_are_dead_lettered_under_one_label() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    let mut lines = vec![r#"{"seq":0,"to":"alerts"}"#.to_string(), r#"{"seq":1}"#.to_string()];
    lines.extend((2..52).map(|i| format!(r#"{{"seq":{i},"to":"name-{i}"}}"#)));
    write_lines(&input, lines);
    let pipeline = one_step_pipeline(
        dir.path(),
        &input,
        &plugin("hostile"),
        "config = '{\"mode\": \"outputs\"}'\noutputs = [\"alerts\"]",
    );
    let metrics = dir.path().join("metrics.prom");
    let out = weir().arg("run").arg(&pipeline).arg("--metrics-file").arg(&metrics).output().unwrap();
    assert_ok(&out);
    assert_eq!(ndjson(&dir.path().join("out.ndjson")).len(), 1, "only the event for \"out\"");
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 50);
    assert!(dead.iter().all(|d| d["reason"] == "plugin-invalid-output"));
    assert!(dead[0]["detail"].as_str().unwrap().contains("output `name-2`"), "{}", dead[0]);
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(crate::live::metric(&m, "weir_step_events_out_total", &["output=\"undeclared\""]), Some(50.0));
    assert_eq!(crate::live::metric(&m, "weir_step_events_out_total", &["output=\"alerts\""]), Some(1.0));
    assert!(!m.contains("name-2"), "no label for an undeclared name");
    // Output names are checked when the file loads.
    let text = std::fs::read_to_string(&pipeline).unwrap().replace("outputs = [\"alerts\"]", "outputs = [\"a b\"]");
    std::fs::write(&pipeline, text).unwrap();
    let bad = run(&pipeline);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("steps[0].outputs"), "{}", stderr(&bad));
}
