//! Catching up after a kill -9: the partitions of a topic are read back at
//! uneven speeds, and with 10 minutes of allowed disorder (the issue's
//! setting) a source-wide watermark called the slower partitions' events
//! late. Event-time progress is per partition: nothing is dead-lettered
//! that a run without the kill would have kept, and every window counts
//! every event once.

use super::broker::{brokers, create_topic, produce, read_committed};
use super::{spawn, unique, vitals, wait_ok};
use crate::harness::{scratch, toml_path};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn a_kill_9_during_catch_up_dead_letters_nothing() {
    let dir = scratch();
    let name = &unique("catch-up");
    create_topic(&format!("{name}-in"), 4);
    let events = vitals(0, 100_000);
    produce(&format!("{name}-in"), &events);
    let dead = dir.path().join("dead.ndjson");
    let text = format!(
        r#"
[pipeline]
name = "{name}"
batch_size = 256
parallelism = 2

[[sources]]
name = "vitals"
kind = "kafka"
brokers = "{brokers}"
topic = "{name}-in"
timestamp_field = "EventTime"
key_field = "PatientId"
max_out_of_orderness = "10m"
stop_at_end = true

[[steps]]
name = "count"
query = "SELECT PatientId, COUNT(*) AS n FROM vitals GROUP BY PatientId, TumblingWindow(minute, 30)"

[[sinks]]
name = "counts"
kind = "kafka"
brokers = "{brokers}"
topic = "{name}-counts"

[checkpoint]
dir = {ckpt}
interval = "100ms"
exactly_once = true

[dead_letter]
path = {dead}
"#,
        brokers = brokers(),
        ckpt = toml_path(&dir.path().join("ckpt")),
        dead = toml_path(&dead),
    );
    let p = dir.path().join("p.toml");
    std::fs::write(&p, text).unwrap();
    let log = dir.path().join("weir.log");
    for run in 1..=2 {
        let mut child = spawn(&p, &log, &[]);
        while std::fs::read_to_string(&log).unwrap_or_default().matches("partitions assigned").count() < run
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    wait_ok(spawn(&p, &log, &[]), &log);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("restoring checkpoint"), "{log_text}");
    let dead_letters = std::fs::read_to_string(&dead).unwrap_or_default();
    assert_eq!(
        dead_letters.lines().count(),
        0,
        "dead letters after catching up:\n{}",
        &dead_letters[..dead_letters.len().min(2000)]
    );

    // Every event counted once, in its patient's 30-minute window (start, end].
    let mut want: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for (patient, e) in &events {
        let v: serde_json::Value = serde_json::from_str(e).unwrap();
        let start = (v["EventTime"].as_i64().unwrap() - 1).div_euclid(1_800_000) * 1_800_000;
        *want.entry((start, patient.clone())).or_insert(0) += 1;
    }
    let mut got: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for row in read_committed(&format!("{name}-counts")).into_values().flatten() {
        let v: serde_json::Value = serde_json::from_str(&row).unwrap();
        let start =
            chrono::DateTime::parse_from_rfc3339(v["window_start"].as_str().unwrap()).unwrap().timestamp_millis();
        let key = (start, v["PatientId"].as_str().unwrap().to_string());
        assert!(got.insert(key, v["n"].as_u64().unwrap()).is_none(), "a window written twice: {row}");
    }
    assert_eq!(got, want);
}
