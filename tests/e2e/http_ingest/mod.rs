//! HTTP ingestion and the secured server, through the real binary over real
//! sockets: HTTPS with a CA made at test time, schema validation at the
//! door, status codes, the bounded queue, tokens and scopes, the audit log.

use crate::harness::*;
use crate::live::*;
use serde_json::{Value, json};
use std::path::Path;

mod tokens;

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["PatientId", "EventTime", "HeartRate"],
  "additionalProperties": false,
  "properties": {
    "PatientId": {"type": "string"},
    "EventTime": {"type": "integer"},
    "HeartRate": {"type": "integer", "minimum": 0, "maximum": 300}
  }
}"#;

const INGEST_TOKEN: &str = "ingest-token-0123456789";
const READ_TOKEN: &str = "read-token-0123456789";
const ADMIN_TOKEN: &str = "admin-token-0123456789";

fn agent(ca_pem: Option<&str>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if let Some(pem) = ca_pem {
        let ca = ureq::tls::Certificate::from_pem(pem.as_bytes()).unwrap().to_owned();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![ca])))
            .build();
        config = config.tls_config(tls);
    }
    config.build().new_agent()
}

/// (status, Retry-After, WWW-Authenticate, body)
fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Option<String>, Option<String>, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let result = if method == "GET" {
        let mut r = agent.get(url);
        if let Some(a) = &auth {
            r = r.header("Authorization", a);
        }
        r.call()
    } else {
        let mut r = agent.post(url);
        if let Some(a) = &auth {
            r = r.header("Authorization", a);
        }
        r.send(body)
    };
    let mut resp = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (retry, www) = (header("retry-after"), header("www-authenticate"));
    let text = resp.body_mut().read_to_string().unwrap();
    (resp.status().as_u16(), retry, www, text)
}

struct Http {
    dir: tempfile::TempDir,
    port: u16,
    child: Reaper,
}

/// http source "devices" (with the schema) → identity → out.ndjson.
/// `server` is extra `[server]` keys; `source` extra source keys.
fn start(server: &str, source: &str, env: &[(&str, &str)]) -> Http {
    let dir = scratch();
    let port = free_port();
    std::fs::write(dir.path().join("schema.json"), SCHEMA).unwrap();
    let text = format!(
        r#"
[pipeline]
name = "ingest"

[server]
listen = "127.0.0.1:{port}"
{server}

[[sources]]
name = "devices"
kind = "http"
schema = {schema}
timestamp_field = "EventTime"
key_field = "PatientId"
{source}

[[steps]]
name = "pass"
plugin = {identity}

[[sinks]]
name = "out"
kind = "file"
path = {out}

[dead_letter]
path = {dead}
"#,
        schema = toml_path(&dir.path().join("schema.json")),
        identity = toml_path(&plugin("identity")),
        out = toml_path(&dir.path().join("out.ndjson")),
        dead = toml_path(&dir.path().join("dead.ndjson")),
    );
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, text).unwrap();
    let mut cmd = weir();
    cmd.arg("run").arg(&pipeline).stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = Reaper(Some(cmd.spawn().unwrap()));
    Http { dir, port, child }
}

fn wait_up(agent: &ureq::Agent, base: &str) {
    wait_until("the server", || agent.get(format!("{base}/healthz")).call().is_ok_and(|r| r.status().as_u16() == 200));
}

fn vitals(patient: &str, hr: i64, t: i64) -> Value {
    json!({"PatientId": patient, "EventTime": t, "HeartRate": hr})
}

fn tokens_toml() -> &'static str {
    r#"
[[server.tokens]]
id = "gateway"
scopes = ["ingest"]
env = "TEST_INGEST_TOKEN"

[[server.tokens]]
id = "dashboard"
scopes = ["read"]
env = "TEST_READ_TOKEN"

[[server.tokens]]
id = "deployer"
scopes = ["admin", "read"]
env = "TEST_ADMIN_TOKEN"
"#
}

const TOKEN_ENV: [(&str, &str); 3] =
    [("TEST_INGEST_TOKEN", INGEST_TOKEN), ("TEST_READ_TOKEN", READ_TOKEN), ("TEST_ADMIN_TOKEN", ADMIN_TOKEN)];

#[test]
fn json_arrays_objects_and_ndjson_over_https_flow_through_the_pipeline() {
    let certs = scratch();
    let ca = make_certs(certs.path());
    let server = format!(
        "tls = {{ cert = {}, key = {} }}\n{}",
        toml_path(&certs.path().join("cert.pem")),
        toml_path(&certs.path().join("key.pem")),
        tokens_toml()
    );
    let mut h = start(&server, "", &TOKEN_ENV);
    let base = format!("https://localhost:{}", h.port);
    let client = agent(Some(&ca));
    wait_up(&client, &base);
    let url = format!("{base}/api/v1/ingest/devices");
    let lines = format!("{}\n{}\n\n{}\n", vitals("P1", 70, 1), vitals("P2", 71, 2), vitals("P3", 72, 3));
    let array = serde_json::to_string_pretty(&json!([vitals("P4", 73, 4), vitals("P5", 74, 5)])).unwrap();
    let object = serde_json::to_string_pretty(&vitals("P6", 75, 6)).unwrap();
    for (body, n) in [(lines.as_str(), 3), (array.as_str(), 2), (object.as_str(), 1)] {
        let (status, _, _, text) = send(&client, "POST", &url, Some(INGEST_TOKEN), body.as_bytes());
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((v["accepted"].as_u64(), v["rejected"].as_u64()), (Some(n), Some(0)), "{text}");
    }
    // The same port does not speak plain HTTP.
    let plain = agent(None).get(format!("http://127.0.0.1:{}/healthz", h.port)).call();
    assert!(plain.is_err() || plain.unwrap().status().as_u16() == 400);
    let out = sigterm(&mut h.child);
    assert_ok(&out);
    let events = ndjson(&h.dir.path().join("out.ndjson"));
    let ids: Vec<&str> = events.iter().map(|e| e["PatientId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["P1", "P2", "P3", "P4", "P5", "P6"], "in order, each once, on one line each");
}

#[test]
fn bad_events_and_bodies_get_their_status_codes_and_dead_letters() {
    let mut h = start("", r#"max_body = "2KiB""#, &[]);
    let base = format!("http://127.0.0.1:{}", h.port);
    let client = agent(None);
    wait_up(&client, &base);
    let url = format!("{base}/api/v1/ingest/devices");
    let body = [
        vitals("P1", 70, 1).to_string(),
        json!({"PatientId": "P-SECRET-7", "EventTime": 2}).to_string(),
        json!({"PatientId": "P3", "EventTime": 3, "HeartRate": "fast"}).to_string(),
        json!({"PatientId": "P4", "EventTime": 4, "HeartRate": 60, "ssn": "123-45-6789"}).to_string(),
        "{not json".to_string(),
    ]
    .join("\n");
    let (status, _, _, text) = send(&client, "POST", &url, None, body.as_bytes());
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((v["accepted"].as_u64(), v["rejected"].as_u64()), (Some(1), Some(4)));
    let details: Vec<(u64, &str, &str)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["reason"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(details[0], (1, "schema-violation", "schema: the event: missing required field `HeartRate`"));
    assert_eq!(details[1], (2, "schema-violation", "schema: `/HeartRate`: must be of type integer"));
    assert_eq!(details[2], (3, "schema-violation", "schema: the event: field `ssn` not allowed"));
    assert_eq!((details[3].0, details[3].1), (4, "invalid-json"));
    assert!(!text.contains("123-45-6789") && !text.contains("fast"), "no values in the answer: {text}");

    let all_bad = json!({"PatientId": "P9", "EventTime": 9}).to_string();
    assert_eq!(send(&client, "POST", &url, None, all_bad.as_bytes()).0, 422);
    assert_eq!(send(&client, "POST", &url, None, b"{oops").0, 400);
    let (status, _, _, text) = send(&client, "POST", &url, None, b"[{\"PatientId\": 1},");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not a JSON array"), "{text}");
    let big = format!("[{}]", vec![vitals("P1", 70, 1).to_string(); 60].join(","));
    assert_eq!(send(&client, "POST", &url, None, big.as_bytes()).0, 413, "over max_body");
    assert_eq!(send(&client, "POST", &format!("{base}/api/v1/ingest/nope"), None, b"{}").0, 404);

    let out = sigterm(&mut h.child);
    assert_ok(&out);
    assert!(!stderr(&out).contains("P-SECRET-7"), "no event data in the logs");
    assert_eq!(ndjson(&h.dir.path().join("out.ndjson")).len(), 1);
    let dead = ndjson(&h.dir.path().join("dead.ndjson"));
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(
        reasons,
        [
            "schema-violation",
            "schema-violation",
            "schema-violation",
            "invalid-json",
            "schema-violation",
            "invalid-json",
            "invalid-json"
        ]
    );
    assert_eq!(dead[0]["source"], "devices");
    assert_eq!(dead[0]["detail"], "schema: the event: missing required field `HeartRate`");
    assert!(dead[0]["original"].as_str().unwrap().contains("P-SECRET-7"), "without redact the original is kept");
}

#[test]
fn redacted_fields_are_masked_in_dead_letters() {
    // A file source: the schema applies there too.
    let dir = scratch();
    std::fs::write(dir.path().join("schema.json"), SCHEMA).unwrap();
    let input = dir.path().join("in.ndjson");
    write_lines(
        &input,
        [
            vitals("P1", 70, 1).to_string(),
            json!({"PatientId": "P-SECRET-7", "EventTime": 2, "HeartRate": 999}).to_string(),
            "{\"PatientId\": \"P-SECRET-8\", broken".to_string(),
        ],
    );
    let text = format!(
        "[pipeline]\nname = \"r\"\n\n[[sources]]\nname = \"in\"\nkind = \"file\"\npath = {}\nschema = {}\n\n[[sinks]]\nname = \"out\"\nkind = \"file\"\npath = {}\n\n[dead_letter]\npath = {}\nredact = [\"PatientId\"]\n",
        toml_path(&input),
        toml_path(&dir.path().join("schema.json")),
        toml_path(&dir.path().join("out.ndjson")),
        toml_path(&dir.path().join("dead.ndjson")),
    );
    let pipeline = dir.path().join("p.toml");
    std::fs::write(&pipeline, text).unwrap();
    let out = run(&pipeline);
    assert_ok(&out);
    assert_eq!(ndjson(&dir.path().join("out.ndjson")).len(), 1, "the file source checks the schema too");
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    assert_eq!(dead[0]["reason"], "schema-violation");
    assert_eq!(dead[0]["detail"], "schema: `/HeartRate`: fails `maximum` (schema /properties/HeartRate/maximum)");
    let original: Value = serde_json::from_str(dead[0]["original"].as_str().unwrap()).unwrap();
    assert_eq!(original["PatientId"], "***");
    assert_eq!(original["HeartRate"], 999);
    assert_eq!(dead[1]["reason"], "invalid-json");
    assert!(dead[1].get("original").is_none(), "a non-JSON original is withheld: {}", dead[1]);
    assert_eq!(dead[1]["withheld_bytes"], 34);
    let text = std::fs::read_to_string(dir.path().join("dead.ndjson")).unwrap();
    assert!(!text.contains("P-SECRET"), "{text}");
}

#[test]
fn a_full_queue_answers_429_and_nothing_accepted_is_lost() {
    let mut h = start("", "queue = 50", &[]);
    let base = format!("http://127.0.0.1:{}", h.port);
    let client = agent(None);
    wait_up(&client, &base);
    let url = format!("{base}/api/v1/ingest/devices");
    let too_many: Vec<Value> = (0..51).map(|i| vitals(&format!("X{i}"), 60, i)).collect();
    let (status, retry, _, text) = send(&client, "POST", &url, None, Value::Array(too_many).to_string().as_bytes());
    // Issue 19, finding 9: it would never fit, so not 429 (send again) but 413.
    assert_eq!(status, 413, "a request larger than the queue never fits: {text}");
    assert_eq!(retry, None);
    // Four clients at once, 10 events per request: some requests may be
    // refused; every accepted event must come out, and only those.
    let accepted: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|c| {
                let (client, url) = (client.clone(), url.clone());
                s.spawn(move || {
                    let mut ids = Vec::new();
                    for r in 0..50 {
                        let events: Vec<Value> = (0..10).map(|i| vitals(&format!("C{c}-R{r}-E{i}"), 60, i)).collect();
                        let body = Value::Array(events.clone()).to_string();
                        let (status, _, _, _) = send(&client, "POST", &url, None, body.as_bytes());
                        match status {
                            200 => ids.extend(events.iter().map(|e| e["PatientId"].as_str().unwrap().to_string())),
                            429 => {}
                            other => panic!("unexpected status {other}"),
                        }
                    }
                    ids
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    // Stop at once: what was accepted is drained before the process exits.
    let out = sigterm(&mut h.child);
    assert_ok(&out);
    let mut got: Vec<String> =
        ndjson(&h.dir.path().join("out.ndjson")).iter().map(|e| e["PatientId"].as_str().unwrap().to_string()).collect();
    let mut want = accepted;
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "every accepted event, once");
    assert_eq!(got, want);
    assert!(ndjson(&h.dir.path().join("dead.ndjson")).is_empty(), "a refused request leaves no dead letters");
}

#[test]
fn every_protected_endpoint_needs_a_token_with_its_scope_and_admin_actions_are_audited() {
    let audit_dir = scratch();
    let audit = audit_dir.path().join("audit.ndjson");
    let server = format!("audit_log = {}\n{}", toml_path(&audit), tokens_toml());
    let mut h = start(&server, "", &TOKEN_ENV);
    let base = format!("http://127.0.0.1:{}", h.port);
    let client = agent(None);
    wait_up(&client, &base);
    let component = std::fs::read(plugin("identity")).unwrap();
    let step = "/api/v1/pipelines/ingest/steps/pass";
    let ingest_body = vitals("P1", 70, 1).to_string();
    let endpoints: [(&str, String, &[u8], &str); 7] = [
        ("GET", "/readyz".into(), b"", READ_TOKEN),
        ("GET", "/metrics".into(), b"", READ_TOKEN),
        ("GET", "/api/v1/pipelines".into(), b"", READ_TOKEN),
        ("GET", format!("{step}/versions"), b"", READ_TOKEN),
        ("POST", "/api/v1/ingest/devices".into(), ingest_body.as_bytes(), INGEST_TOKEN),
        ("POST", format!("{step}/versions"), &component, ADMIN_TOKEN),
        ("POST", format!("{step}/rollback"), b"", ADMIN_TOKEN),
    ];
    assert_eq!(send(&client, "GET", &format!("{base}/healthz"), None, b"").0, 200, "/healthz is open");
    for (method, path, body, right) in &endpoints {
        let url = format!("{base}{path}");
        // A refused request's body is read only up to 64 KiB: send a small
        // one (a client sending a large body sees the connection close).
        let small: &[u8] = if body.len() > 1024 { b"x" } else { body };
        let (status, _, www, text) = send(&client, method, &url, None, small);
        assert_eq!(status, 401, "{method} {path} without a token: {text}");
        assert_eq!(www.as_deref(), Some("Bearer realm=\"weir\""));
        assert_eq!(send(&client, method, &url, Some("not-a-token-at-all"), small).0, 401, "{method} {path}");
        let wrong = if *right == INGEST_TOKEN { READ_TOKEN } else { INGEST_TOKEN };
        let (status, _, _, text) = send(&client, method, &url, Some(wrong), small);
        assert_eq!(status, 403, "{method} {path} with the wrong scope: {text}");
        let (status, _, _, text) = send(&client, method, &url, Some(right), body);
        assert!(status < 400 || (path.ends_with("/rollback") && status == 404), "{method} {path}: {status} {text}");
    }
    let out = sigterm(&mut h.child);
    assert_ok(&out);
    let text = std::fs::read_to_string(&audit).unwrap();
    for secret in [INGEST_TOKEN, READ_TOKEN, ADMIN_TOKEN] {
        assert!(!text.contains(secret), "the audit log never holds a token");
    }
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| (l["token"].as_str().unwrap(), l["action"].as_str().unwrap(), l["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("-", "plugin-upload", "denied"),
            ("-", "plugin-upload", "denied"),
            ("gateway", "plugin-upload", "denied"),
            ("deployer", "plugin-upload", "requested"),
            ("deployer", "plugin-upload", "ok"),
            ("-", "plugin-rollback", "denied"),
            ("-", "plugin-rollback", "denied"),
            ("gateway", "plugin-rollback", "denied"),
            ("deployer", "plugin-rollback", "requested"),
            ("deployer", "plugin-rollback", "failed"),
        ]
    );
    assert_eq!(lines[4]["target"], "ingest/pass");
    assert_eq!(lines[4]["digest"].as_str().unwrap().len(), 64);
    assert!(lines[4]["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn beyond_loopback_the_server_needs_tokens_and_tls() {
    let dir = scratch();
    let pipeline = dir.path().join("p.toml");
    let base = "[pipeline]\nname = \"p\"\n\n[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"orders\"\ncount = 1\n\n[[sinks]]\nname = \"d\"\nkind = \"discard\"\n";
    let port = free_port();
    std::fs::write(&pipeline, base).unwrap();
    let out = weir().args(["run", "--listen", &format!("0.0.0.0:{port}")]).arg(&pipeline).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs [[server.tokens]]"), "{}", stderr(&out));
    let with_token = format!(
        "{base}\n[server]\nlisten = \"0.0.0.0:{port}\"\n\n[[server.tokens]]\nid = \"t\"\nscopes = [\"read\"]\nsha256 = \"{}\"\n",
        "a".repeat(64)
    );
    std::fs::write(&pipeline, with_token).unwrap();
    let out = weir().arg("run").arg(&pipeline).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("without [server.tls]"), "{}", stderr(&out));
}

/// Issue 19, finding 7: a flood of unauthenticated admin requests is
/// counted in full but written as a sample, so it cannot fill the disk;
/// an admin action after it is still audited.
#[test]
fn a_flood_of_denied_requests_is_sampled_in_the_audit_log() {
    let audit_dir = scratch();
    let audit = audit_dir.path().join("audit.ndjson");
    let server = format!("audit_log = {}\n{}", toml_path(&audit), tokens_toml());
    let mut h = start(&server, "", &TOKEN_ENV);
    let base = format!("http://127.0.0.1:{}", h.port);
    let client = agent(None);
    wait_up(&client, &base);
    let step = "/api/v1/pipelines/ingest/steps/pass";
    for _ in 0..500 {
        assert_eq!(send(&client, "POST", &format!("{base}{step}/rollback"), None, b"").0, 401);
    }
    let component = std::fs::read(plugin("identity")).unwrap();
    let (status, _, _, text) = send(&client, "POST", &format!("{base}{step}/versions"), Some(ADMIN_TOKEN), &component);
    assert_eq!(status, 201, "{text}");
    let (_, _, _, metrics) = send(&client, "GET", &format!("{base}/metrics"), Some(READ_TOKEN), b"");
    let denied = metric(&metrics, "weir_audit_events_total", &["action=\"plugin-rollback\"", "result=\"denied\""]);
    assert_eq!(denied, Some(500.0), "every denial is counted");
    assert_ok(&sigterm(&mut h.child));
    let lines: Vec<Value> =
        std::fs::read_to_string(&audit).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let denials: Vec<&Value> = lines.iter().filter(|l| l["result"] == "denied").collect();
    assert!(denials.len() >= 20 && denials.len() < 100, "{} denial lines for 500 denials", denials.len());
    let written: u64 = denials.iter().map(|l| 1 + l["suppressed"].as_u64().unwrap_or(0)).sum();
    assert!(written <= 500, "suppressed counts add up: {written}");
    let last = &lines[lines.len() - 1];
    assert_eq!((last["token"].as_str(), last["result"].as_str()), (Some("deployer"), Some("ok")));
}

/// Issue 19, finding 7: when the audit log cannot be written, admin actions
/// are refused, not performed unaudited.
#[test]
fn admin_actions_are_refused_when_the_audit_log_cannot_be_written() {
    // /dev/full accepts the open and fails every write (ENOSPC), as a full disk does.
    let server = format!("audit_log = \"/dev/full\"\n{}", tokens_toml());
    let mut h = start(&server, "", &TOKEN_ENV);
    let base = format!("http://127.0.0.1:{}", h.port);
    let client = agent(None);
    wait_up(&client, &base);
    let step = "/api/v1/pipelines/ingest/steps/pass";
    let before = send(&client, "GET", &format!("{base}{step}/versions"), Some(READ_TOKEN), b"").3;
    let component = std::fs::read(plugin("reject_odd")).unwrap();
    let (status, _, _, text) = send(&client, "POST", &format!("{base}{step}/versions"), Some(ADMIN_TOKEN), &component);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("audit log cannot be written"), "{text}");
    let after = send(&client, "GET", &format!("{base}{step}/versions"), Some(READ_TOKEN), b"").3;
    assert_eq!(before, after, "nothing was deployed");
    assert_ok(&sigterm(&mut h.child));
}
