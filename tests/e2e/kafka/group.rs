//! Two `weir` processes in one consumer group split the partitions; when
//! one is killed, the other takes its partitions over from their last
//! committed offsets, fences the killed one's producer (its open
//! transaction is aborted then, not when it times out), and the output is
//! still exactly once. A short session (6 s), the default transaction
//! timeout (60 s).

use super::broker::{brokers, create_topic, produce};
use super::{expected, outputs, spawn, unique, vitals};
use crate::harness::{plugin, scratch, toml_path};
use std::path::Path;
use std::time::{Duration, Instant};

/// Waits until `log` contains `text` (at most 120 s).
fn wait_for(log: &Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(log).unwrap_or_default().contains(text) {
        assert!(Instant::now() < deadline, "`{text}` never appeared in {}", log.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until at least `n` alerts are committed to the output topic.
fn wait_for_alerts(name: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while outputs(name).0.len() < n {
        assert!(Instant::now() < deadline, "fewer than {n} alerts after 120 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_processes_share_a_group_and_one_taking_over_loses_and_duplicates_nothing() {
    let dir = scratch();
    let name = &unique("eos-group");
    create_topic(&format!("{name}-in"), 4);
    let text = format!(
        r#"
[pipeline]
name = "{name}"
batch_size = 64

[[sources]]
name = "vitals"
kind = "kafka"
brokers = "{brokers}"
topic = "{name}-in"
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}

[[steps]]
name = "fast"
plugin = {plugin}

[[sinks]]
name = "alerts"
kind = "kafka"
brokers = "{brokers}"
topic = "{name}-alerts"

[checkpoint]
dir = {ckpt}
interval = "200ms"
"#,
        brokers = brokers(),
        plugin = toml_path(&plugin("tachycardia")),
        ckpt = toml_path(&dir.path().join("ckpt-{instance}")),
    );
    // One checkpoint folder per process (as on two machines).
    let pipeline = |instance: &str| {
        let path = dir.path().join(format!("{instance}.toml"));
        std::fs::write(&path, text.replace("{instance}", instance)).unwrap();
        path
    };
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = spawn(&pipeline("a"), &log_a, &["--instance", "a"]);
    wait_for(&log_a, "partitions assigned");

    // B joins before any event arrives, so the group has no committed
    // offset yet for any partition when B plans its starts; A must hand
    // some partitions over. Events then arrive for 8 s; once A has
    // committed offsets for its partitions it is killed, and B takes them
    // over where A's last transaction left them (not from the beginning).
    let mut b = spawn(&pipeline("b"), &log_b, &["--instance", "b"]);
    wait_for(&log_b, "partitions assigned");
    let events = vitals(0, 16_000);
    let feed = {
        let (name, events) = (name.clone(), events.clone());
        std::thread::spawn(move || {
            for chunk in events.chunks(500) {
                produce(&format!("{name}-in"), chunk);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    wait_for_alerts(name, 500);
    a.kill().unwrap();
    a.wait().unwrap();
    feed.join().unwrap();

    let (want, _) = expected(&events);
    let deadline = Instant::now() + Duration::from_secs(90);
    while outputs(name).0.len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
    assert!(b.wait().unwrap().success(), "{}", std::fs::read_to_string(&log_b).unwrap());
    let (ids, _) = outputs(name);
    let a_text = std::fs::read_to_string(&log_a).unwrap();
    let b_text = std::fs::read_to_string(&log_b).unwrap();
    assert!(a_text.contains("partitions revoked: checkpointing them first"), "A never gave partitions to B:\n{a_text}");
    assert!(b_text.matches("partitions assigned").count() >= 2, "B never took A's partitions over:\n{b_text}");
    // A's partitions' offsets name A as their owner: B fences A's producer
    // before reading them. (The partitions A handed over when B joined
    // were committed as released: B fenced no one then.)
    let fenced: Vec<&str> = b_text.lines().filter(|l| l.contains("fenced the previous owner")).collect();
    assert_eq!(fenced.len(), 1, "B fenced A once, when A's partitions came:\n{b_text}");
    assert!(fenced[0].contains(&format!("weir-{name}-a")), "{}", fenced[0]);
    assert_eq!(ids.len(), want.len(), "alerts: {} written, {} expected", ids.len(), want.len());
    assert!(ids == want, "alerts differ: some missing and others twice");
}
