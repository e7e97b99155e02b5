//! Hostile plugins, one per rule (`plugins/testing/hostile`, one mode
//! each): each is contained and counted, its events dead-lettered with the
//! reason, and the other events flow. Also the capabilities a step grants,
//! and the circuit breaker.

use crate::harness::*;
use crate::live::*;
use serde_json::{Value, json};

struct Ran {
    out: Vec<Value>,
    dead: Vec<Value>,
    stderr: String,
    stdout: String,
}

/// Runs `events` (batches of 4) through the hostile plugin in `mode`.
fn run_mode(mode: &str, events: &[Value], extra: &str) -> Ran {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(&input, events.iter().map(Value::to_string));
    let step = format!("config = '{}'\n{extra}", json!({ "mode": mode }));
    let pipeline = one_step_pipeline(dir.path(), &input, &plugin("hostile"), &step);
    let out = run(&pipeline);
    assert_ok(&out);
    Ran {
        out: ndjson(&dir.path().join("out.ndjson")),
        dead: ndjson(&dir.path().join("dead.ndjson")),
        stderr: stderr(&out),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// Events `{"seq": 1..=n}`, with `bad` merged into event `at`.
fn events(n: u64, at: u64, bad: Value) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            let mut e = json!({ "seq": i });
            if i == at {
                e.as_object_mut().unwrap().extend(bad.as_object().unwrap().clone());
            }
            e
        })
        .collect()
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

fn lines(dead: &[Value]) -> Vec<u64> {
    dead.iter().map(|d| d["line"].as_u64().unwrap()).collect()
}

#[test]
fn an_output_flood_is_stopped_by_the_per_event_limit() {
    let r = run_mode("flood", &events(12, 6, json!({"flood": 5000})), "");
    assert_eq!(seqs(&r.out), [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12], "every other event flows");
    assert_eq!(lines(&r.dead), [6], "only the flooding event is dead-lettered");
    for d in &r.dead {
        assert_eq!(d["reason"], "plugin-output-limit");
        assert_eq!(
            d["detail"],
            "input event 0 of the batch produced 5000 events; the limit is 1000 (limits.max_outputs_per_event)"
        );
    }
    assert!(r.stderr.contains("plugin-output-limit 1"), "{}", r.stderr);
}

#[test]
fn an_output_flood_is_stopped_by_the_bytes_per_batch_limit() {
    let limits = r#"limits = { max_output_bytes = "1KiB" }"#;
    let r = run_mode("flood", &events(12, 10, json!({"flood": 100})), limits);
    assert_eq!(seqs(&r.out), [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]);
    assert_eq!(lines(&r.dead), [10]);
    let detail = r.dead[0]["detail"].as_str().unwrap();
    assert!(detail.ends_with("of payloads; the limit is 1.0 KiB (limits.max_output_bytes)"), "{detail}");
}

#[test]
fn a_file_cannot_be_read_without_a_grant() {
    let secret = scratch();
    let path = secret.path().join("secret.txt");
    std::fs::write(&path, "patient list").unwrap();
    let mut input = events(4, 2, json!({"read": "/etc/passwd"}));
    input[2]["read"] = json!(path.to_str().unwrap());
    let r = run_mode("read-file", &input, "");
    assert_eq!(seqs(&r.out), [1, 4]);
    assert_eq!(lines(&r.dead), [2, 3]);
    for d in &r.dead {
        assert_eq!(d["reason"], "rejected");
        let detail = d["detail"].as_str().unwrap();
        assert!(detail.starts_with("read /") && detail.contains("os error"), "{detail}");
    }
    let text = std::fs::read_to_string(path).unwrap();
    assert!(!r.out.iter().any(|e| e.to_string().contains(&text) || e.to_string().contains("root:")));
}

#[test]
fn a_granted_folder_is_readable_at_data_and_not_writable() {
    let data = scratch();
    std::fs::write(data.path().join("table.txt"), "warfarin,aspirin").unwrap();
    let grant = format!("grants = {{ read_dir = {} }}", toml_path(data.path()));
    let r = run_mode("read-file", &events(2, 1, json!({"read": "/data/table.txt"})), &grant);
    assert_eq!(r.out[0]["contents"], "warfarin,aspirin", "{:?}", r.dead);
    let r = run_mode("write-file", &events(2, 1, json!({"write": "/data/new.txt"})), &grant);
    assert_eq!(seqs(&r.out), [2]);
    assert!(r.dead[0]["detail"].as_str().unwrap().starts_with("write /data/new.txt: "), "{:?}", r.dead);
    assert!(!data.path().join("new.txt").exists());
}

#[test]
fn a_socket_cannot_be_opened_and_the_attempt_is_counted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let r = run_mode("connect", &events(4, 3, json!({"connect": addr})), "");
    assert_eq!(seqs(&r.out), [1, 2, 4]);
    assert_eq!(r.dead[0]["reason"], "rejected");
    assert!(r.dead[0]["detail"].as_str().unwrap().starts_with(&format!("connect {addr}: ")), "{:?}", r.dead);
    assert!(listener.accept().is_err(), "no connection reached the listener");
    assert!(r.stderr.contains("plugin tried to open a network socket; denied"), "{}", r.stderr);
    assert!(r.stderr.contains("sandbox      step: 1 network use denied"), "{}", r.stderr);
}

#[test]
fn environment_and_wall_clock_are_denied_unless_granted() {
    // The child gets the variables; the test process keeps its own.
    let env_events = [json!({"seq": 1, "env": "WEIR_TEST_GRANTED"}), json!({"seq": 2, "env": "WEIR_TEST_SECRET"})];
    let run_env = |grant: &str| {
        let dir = scratch();
        let input = dir.path().join("in.ndjson");
        write_lines(&input, env_events.iter().map(Value::to_string));
        let step = format!("config = '{{\"mode\": \"env\"}}'\n{grant}");
        let pipeline = one_step_pipeline(dir.path(), &input, &plugin("hostile"), &step);
        let out =
            weir().arg("run").arg(&pipeline).env("WEIR_TEST_GRANTED", "yes").env("WEIR_TEST_SECRET", "no").output();
        assert_ok(out.as_ref().unwrap());
        ndjson(&dir.path().join("out.ndjson"))
    };
    let none = run_env("");
    assert_eq!(none[0]["env"]["WEIR_TEST_GRANTED"], Value::Null);
    let granted = run_env(r#"grants = { env = ["WEIR_TEST_GRANTED"] }"#);
    assert_eq!(granted[0]["env"]["WEIR_TEST_GRANTED"], "yes");
    assert_eq!(granted[1]["env"]["WEIR_TEST_SECRET"], Value::Null, "only the named variable");

    let frozen = run_mode("clock", &events(1, 0, json!({})), "");
    assert_eq!(frozen.out[0]["now_s"], 0, "no wall clock: it reads 1970-01-01");
    let real = run_mode("clock", &events(1, 0, json!({})), "grants = { wall_clock = true }");
    assert!(real.out[0]["now_s"].as_u64().unwrap() > 1_700_000_000);
}

#[test]
fn plugin_output_is_logged_under_its_step_and_rate_limited() {
    let input: Vec<Value> = (1..=2000).map(|i| json!({"seq": i, "print": format!("printed {i}")})).collect();
    let r = run_mode("print", &input, "");
    assert_eq!(r.out.len(), 2000);
    assert!(r.stdout.is_empty(), "nothing a plugin prints reaches Weir's stdout");
    let logged: Vec<&str> = r.stderr.lines().filter(|l| l.contains("printed ")).collect();
    assert!(logged[0].contains("printed 1") && logged[0].contains("step=step"), "{}", logged[0]);
    assert!(logged[0].contains("stream=stderr"), "stderr shows at the default level: {}", logged[0]);
    assert!(logged.len() >= 100 && logged.len() < 2000, "{} lines logged of 2000", logged.len());
}

const TRAP_CIRCUIT: &str = r#"circuit = { failures = 3, cool_down = "1h" }"#;

#[test]
fn trapping_on_every_call_opens_the_circuit() {
    let r = run_mode("trap-always", &events(40, 0, json!({})), TRAP_CIRCUIT);
    assert!(r.out.is_empty());
    assert_eq!(lines(&r.dead), (1..=40).collect::<Vec<_>>(), "every event is dead-lettered, none lost");
    for d in &r.dead[..3] {
        assert_eq!(d["reason"], "plugin-trap", "three poison events: the first batch, halved down to single events");
    }
    for d in &r.dead[3..] {
        assert_eq!(d["reason"], "circuit-open");
        assert!(d["detail"].as_str().unwrap().starts_with("the step's circuit is open"), "{d}");
    }
    assert!(r.stderr.contains("circuit open"), "{}", r.stderr);
}

#[test]
fn an_open_circuit_sends_batches_to_the_fallback_plugin() {
    let circuit =
        format!(r#"circuit = {{ failures = 3, cool_down = "1h", fallback = {} }}"#, toml_path(&plugin("identity")));
    let r = run_mode("trap-always", &events(40, 0, json!({})), &circuit);
    assert_eq!(lines(&r.dead), [1, 2, 3], "three events fail alone, then the circuit opens");
    assert_eq!(seqs(&r.out), (4..=40).collect::<Vec<_>>());
}

#[test]
fn the_circuit_half_opens_after_its_cool_down_and_a_good_version_closes_it() {
    let dir = scratch();
    let port = free_port();
    let text = format!(
        r#"
[pipeline]
name = "breaker"

[[sources]]
name = "orders"
kind = "generator"
generate = "orders"
rate = 2000

[[steps]]
name = "tag"
plugin = {hostile}
config = '{{"mode": "trap-always"}}'
circuit = {{ failures = 2, cool_down = "300ms" }}

[[sinks]]
name = "out"
kind = "file"
path = {out}

[dead_letter]
path = {dead}
"#,
        hostile = toml_path(&plugin("hostile")),
        out = toml_path(&dir.path().join("out.ndjson")),
        dead = toml_path(&dir.path().join("dead.ndjson")),
    );
    let mut child = spawn_listening(&dir.path().join("pipeline.toml"), &text, port);
    // Two opens: the trial batch after the first cool-down failed.
    let body = wait_for_metrics(port, |b| metric(b, "weir_plugin_circuit_opens_total", &[]).is_some_and(|n| n >= 2.0));
    assert!(metric(&body, "weir_dead_letter_events_total", &["reason=\"circuit-open\""]).unwrap() > 0.0);
    let step = &get_json(port, "/api/v1/pipelines/breaker")["steps"][0];
    assert_eq!(step["status"], "degraded", "{step}");
    assert_ne!(step["circuit"], "closed", "{step}");
    let bytes = std::fs::read(plugin("version_a")).unwrap();
    let (status, answer) = post(port, "/api/v1/pipelines/breaker/steps/tag/versions", &bytes).unwrap();
    assert_eq!(status, 201, "{answer}");
    wait_for_metrics(port, |b| metric(b, "weir_sink_events_total", &[]).is_some_and(|n| n >= 1000.0));
    assert_eq!(get_json(port, "/api/v1/pipelines/breaker")["steps"][0]["circuit"], "closed");
    let out = sigterm(&mut child);
    assert_ok(&out);
    let read = events_read(&stderr(&out));
    let (events, dead) = (ndjson(&dir.path().join("out.ndjson")), ndjson(&dir.path().join("dead.ndjson")));
    assert!(events.iter().all(|e| e["version"] == "a"));
    assert_eq!(events.len() + dead.len(), read, "every event is in the output or the dead-letter file");
}
