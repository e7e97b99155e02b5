//! An endless pipeline serves health and metrics, and stops cleanly on
//! SIGTERM without losing a batch in flight.

use crate::harness::*;
use crate::live::*;

#[test]
fn a_runaway_plugin_is_counted_and_the_pipeline_keeps_flowing() {
    let dir = scratch();
    let port = free_port();
    let input = dir.path().join("spin.ndjson");
    write_lines(&input, [r#"{"seq":1,"spin":true}"#.to_string()]);
    let text = format!(
        r#"
[pipeline]
name = "runaway"
batch_size = 50

[[sources]]
name = "poison"
kind = "file"
path = {input}

[[sources]]
name = "vitals"
kind = "generator"
generate = "vitals"
rate = 2000

[[steps]]
name = "spin"
plugin = {plugin}
limits = {{ deadline = "200ms" }}

[[sinks]]
name = "out"
kind = "file"
path = {out}

[dead_letter]
path = {dead}
"#,
        input = toml_path(&input),
        plugin = toml_path(&plugin("spin_forever")),
        out = toml_path(&dir.path().join("out.ndjson")),
        dead = toml_path(&dir.path().join("dead.ndjson")),
    );
    let mut child = spawn_listening(&dir.path().join("runaway.toml"), &text, port);
    // The poisoned batch fails and is counted; generated events keep flowing after it.
    let first = wait_for_metrics(port, |b| {
        metric(b, "weir_plugin_instance_restarts_total", &["reason=\"plugin-deadline\""]).unwrap_or(0.0) >= 1.0
            && metric(b, "weir_sink_events_total", &["sink=\"out\""]).unwrap_or(0.0) > 0.0
    });
    let written = metric(&first, "weir_sink_events_total", &["sink=\"out\""]).unwrap();
    wait_for_metrics(port, |b| metric(b, "weir_sink_events_total", &["sink=\"out\""]).unwrap_or(0.0) > written);
    let out = sigterm(&mut child);
    assert!(out.status.success(), "{}", stderr(&out));
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    assert!(dead.iter().all(|d| d["reason"] == "plugin-deadline"));
    assert_eq!(dead.iter().filter(|d| d["source"] == "poison").count(), 1, "the poison event is dead-lettered");
}

#[test]
fn serves_metrics_and_stops_cleanly_on_sigterm() {
    let dir = scratch();
    let port = free_port();
    let text = format!(
        r#"
[pipeline]
name = "live"
batch_size = 100

[[sources]]
name = "vitals"
kind = "generator"
generate = "vitals"
rate = 5000

[[steps]]
name = "pass"
plugin = {plugin}

[[sinks]]
name = "out"
kind = "file"
path = {out}
"#,
        plugin = toml_path(&plugin("identity")),
        out = toml_path(&dir.path().join("out.ndjson")),
    );
    let mut child = spawn_listening(&dir.path().join("live.toml"), &text, port);
    let body =
        wait_for_metrics(port, |b| metric(b, "weir_step_events_in_total", &["step=\"pass\""]).unwrap_or(0.0) > 0.0);
    assert_eq!(get(port, "/readyz"), Some((200, "ready\n".to_string())));
    // SIGHUP (a `systemctl reload`) never stops the process.
    let pid = child.0.as_ref().unwrap().id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(child.0.as_mut().unwrap().try_wait().unwrap().is_none(), "SIGHUP stopped weir");
    assert_eq!(get(port, "/healthz"), Some((200, "ok\n".to_string())));
    let live = "pipeline=\"live\"";
    for (name, labels) in [
        ("weir_source_events_total", &["source=\"vitals\""][..]),
        ("weir_step_events_out_total", &["step=\"pass\"", "output=\"out\""]),
        ("weir_plugin_call_duration_seconds_count", &["step=\"pass\""]),
        ("weir_batch_size_events_count", &["stage=\"step:pass\""]),
        ("weir_sink_events_total", &["sink=\"out\""]),
    ] {
        let v = metric(&body, name, labels).unwrap_or_else(|| panic!("missing {name} {labels:?} in:\n{body}"));
        assert!(v > 0.0, "{name} {labels:?} is {v}");
        assert!(metric(&body, name, &[live]).is_some(), "{name} lacks the pipeline label");
    }
    assert_eq!(metric(&body, "weir_pipeline_up", &[live]), Some(1.0));
    for reason in ["invalid-json", "rejected", "plugin-deadline", "plugin-memory"] {
        let labels = [format!("reason=\"{reason}\"")];
        let v = metric(&body, "weir_dead_letter_events_total", &[labels[0].as_str()]);
        assert_eq!(v, Some(0.0), "every dead-letter reason is exported from the start ({reason})");
    }

    let out = sigterm(&mut child);
    assert!(out.status.success(), "exit after SIGTERM: {}\n{}", out.status, stderr(&out));
    let summary = stderr(&out);
    let read: u64 = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("read")?.trim().split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no read count in:\n{summary}"));
    let written = ndjson(&dir.path().join("out.ndjson")).len() as u64;
    assert!(read > 0);
    assert_eq!(written, read, "every event read before the stop was written:\n{summary}");
    assert!(summary.contains("stopped in"), "{summary}");
}
