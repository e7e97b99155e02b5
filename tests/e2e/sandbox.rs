//! Runaway plugins are stopped, only the event that made them run away is
//! dead-lettered (the rest of its batch is tried again in halves), and the
//! pipeline goes on.

use crate::harness::*;

/// 12 events in batches of 4; event `bad` (1-based) carries `"<field>": true`.
fn run_hostile(plugin_name: &str, field: &str, limits: &str) -> (Vec<u64>, Vec<serde_json::Value>, String) {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(
        &input,
        (1..=12).map(|i| if i == 6 { format!(r#"{{"seq":{i},"{field}":true}}"#) } else { format!(r#"{{"seq":{i}}}"#) }),
    );
    let pipeline = one_step_pipeline(dir.path(), &input, &plugin(plugin_name), limits);
    let out = run(&pipeline);
    assert_ok(&out);
    let seqs = ndjson(&dir.path().join("out.ndjson")).iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    (seqs, ndjson(&dir.path().join("dead.ndjson")), stderr(&out))
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline() {
    let (seqs, dead, _) = run_hostile("spin_forever", "spin", r#"limits = { deadline = "200ms" }"#);
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12], "every event but the spinning one goes through");
    let lines: Vec<u64> = dead.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![6], "only the poison event is dead-lettered");
    for d in &dead {
        assert_eq!(d["reason"], "plugin-deadline");
        assert_eq!(d["step"], "step");
        assert_eq!(d["detail"], "the call ran past its deadline and was interrupted");
    }
}

#[test]
fn unbounded_memory_growth_is_stopped_by_the_cap() {
    let (seqs, dead, _) = run_hostile("grow_memory", "grow", r#"limits = { memory = "16MiB", deadline = "5s" }"#);
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["line"], 6);
    for d in &dead {
        assert_eq!(d["reason"], "plugin-memory");
        let detail = d["detail"].as_str().unwrap();
        assert!(detail.starts_with("memory cap of 16.0 MiB exceeded"), "{detail}");
    }
}
