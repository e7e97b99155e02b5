//! Hot-loading into a running pipeline under generator load: versions swap
//! at batch boundaries, losing and repeating nothing; a broken version is
//! refused or rolled back, and nothing is lost either.

use crate::harness::*;
use crate::live::*;
use serde_json::Value;

const STEP: &str = "/api/v1/pipelines/swap/steps/tag";

struct Swap {
    dir: tempfile::TempDir,
    port: u16,
    child: Reaper,
}

/// generator (orders, 20 k/s, endless) → `plugin` with `config` → out.ndjson (with metadata).
fn start(plugin_path: &std::path::Path, config: &str, extra: &str) -> Swap {
    let dir = scratch();
    let port = free_port();
    let text = format!(
        r#"
[pipeline]
name = "swap"

[[sources]]
name = "orders"
kind = "generator"
generate = "orders"
rate = 20000

[[steps]]
name = "tag"
plugin = {plugin}
config = '{config}'

[[sinks]]
name = "out"
kind = "file"
path = {out}
metadata = true

[dead_letter]
path = {dead}
{extra}
"#,
        plugin = toml_path(plugin_path),
        out = toml_path(&dir.path().join("out.ndjson")),
        dead = toml_path(&dir.path().join("dead.ndjson")),
    );
    let child = spawn_listening(&dir.path().join("pipeline.toml"), &text, port);
    wait_for_metrics(port, |b| metric(b, "weir_sink_events_total", &[]).is_some_and(|n| n >= 1000.0));
    Swap { dir, port, child }
}

fn upload(port: u16, component: &std::path::Path) -> (u16, Value) {
    let bytes = std::fs::read(component).unwrap();
    let (status, body) = post(port, &format!("{STEP}/versions"), &bytes).expect("the server answers");
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")))
}

fn versions(port: u16) -> Vec<Value> {
    get_json(port, &format!("{STEP}/versions"))["versions"].as_array().unwrap().clone()
}

fn sink_events(port: u16) -> f64 {
    get(port, "/metrics").and_then(|(_, b)| metric(&b, "weir_sink_events_total", &[])).unwrap_or(0.0)
}

/// Lets `n` more events through.
fn flow(port: u16, n: f64) {
    let at = sink_events(port);
    wait_until("events to flow", || sink_events(port) >= at + n);
}

/// Stops the pipeline; checks that the output holds every event read,
/// once, in order, and nothing was dead-lettered. Returns the output.
fn finish(mut s: Swap) -> Vec<Value> {
    let out = sigterm(&mut s.child);
    assert_ok(&out);
    let err = stderr(&out);
    let read = events_read(&err);
    let events = ndjson(&s.dir.path().join("out.ndjson"));
    let dead = ndjson(&s.dir.path().join("dead.ndjson"));
    assert!(dead.is_empty(), "dead letters: {:?}", &dead[..dead.len().min(3)]);
    assert_eq!(events.len(), read, "every event read is in the output");
    for (i, e) in events.iter().enumerate() {
        let id = e["order_id"].as_str().unwrap();
        assert_eq!(id, format!("ORD-{i:08}"), "event {i} out of place: nothing lost, nothing twice, in order");
    }
    events
}

/// (tag, digest) runs of the output, in order.
fn runs(events: &[Value]) -> Vec<(String, String, usize)> {
    let mut runs: Vec<(String, String, usize)> = Vec::new();
    for e in events {
        let tag = e["version"].as_str().unwrap().to_string();
        let digest = e["_weir"]["versions"]["tag"].as_str().unwrap().to_string();
        match runs.last_mut() {
            Some((t, d, n)) if *t == tag && *d == digest => *n += 1,
            _ => runs.push((tag, digest, 1)),
        }
    }
    runs
}

#[test]
fn ten_swaps_under_load_lose_nothing_and_repeat_nothing() {
    let (a, b) = (plugin("version_a"), plugin("version_b"));
    let s = start(&a, "", "");
    let mut expected = vec!["a".to_string()];
    for i in 0..10 {
        let next = if i % 2 == 0 { &b } else { &a };
        let (status, v) = upload(s.port, next);
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["status"], "active", "{v}");
        expected.push(if i % 2 == 0 { "b" } else { "a" }.to_string());
        flow(s.port, 2000.0);
    }
    let body = get(s.port, "/metrics").unwrap().1;
    assert_eq!(metric(&body, "weir_plugin_deploys_total", &["result=\"activated\""]), Some(10.0));
    let a_digest = versions(s.port)[0]["digest"].as_str().unwrap().to_string();
    assert_eq!(metric(&body, "weir_plugin_version_info", &[&a_digest]), Some(1.0), "a serves at the end");
    let events = finish(s);
    let runs = runs(&events);
    let tags: Vec<&str> = runs.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(tags, expected, "one switch per swap, never back and forth: {runs:?}");
    assert!(runs[1..].iter().all(|(_, _, n)| *n >= 2000), "each version served a stretch: {runs:?}");
    let a_digests: std::collections::HashSet<_> = runs.iter().filter(|r| r.0 == "a").map(|r| &r.1).collect();
    assert_eq!(a_digests.len(), 1, "the metadata names the version that tagged the event");
    assert_eq!(a_digests.into_iter().next().unwrap(), &a_digest);
}

#[test]
fn a_version_that_cannot_start_is_rejected_and_the_old_one_serves_on() {
    // The step's config has a mode the hostile plugin refuses in `init`.
    let s = start(&plugin("version_a"), r#"{"mode": "none"}"#, "");
    let (status, v) = upload(s.port, &plugin("hostile"));
    assert_eq!(status, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("unknown mode `none`"), "{v}");
    let (status, v) = post(s.port, &format!("{STEP}/versions"), b"\xff\xfe not a component").unwrap();
    assert_eq!(status, 422, "{v}");
    assert!(v.contains("does not start with"), "{v}");
    // A component (in text form) that exports nothing of the processor world.
    let (status, v) = post(s.port, &format!("{STEP}/versions"), b"(component)").unwrap();
    assert_eq!(status, 422, "{v}");
    assert!(v.contains("does not fit the weir:plugin/processor"), "{v}");
    flow(s.port, 2000.0);
    let listed = versions(s.port);
    let statuses: Vec<&str> = listed.iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["active", "rejected", "rejected", "rejected"]);
    let body = get(s.port, "/metrics").unwrap().1;
    assert_eq!(metric(&body, "weir_plugin_deploys_total", &["result=\"rejected\""]), Some(3.0));
    let events = finish(s);
    assert!(runs(&events).len() == 1 && events[0]["version"] == "a");
}

#[test]
fn a_version_that_traps_on_every_call_is_rolled_back_without_loss() {
    let s = start(&plugin("version_a"), r#"{"mode": "trap-always"}"#, "");
    let (status, v) = upload(s.port, &plugin("hostile"));
    assert_eq!(status, 201, "init succeeds, so it is activated: {v}");
    wait_until("the rollback", || versions(s.port).iter().any(|v| v["status"] == "rolled-back"));
    let listed = versions(s.port);
    assert_eq!(listed[0]["status"], "active", "{listed:?}");
    assert!(listed[1]["error"].as_str().unwrap().starts_with("plugin-trap: "), "{listed:?}");
    flow(s.port, 2000.0);
    let body = get(s.port, "/metrics").unwrap().1;
    assert_eq!(metric(&body, "weir_plugin_deploys_total", &["result=\"rolled-back\""]), Some(1.0));
    let events = finish(s);
    assert_eq!(runs(&events).len(), 1, "the failed batch went to the previous version");
}

#[test]
fn the_cli_deploys_lists_and_rolls_back() {
    let (a, b) = (plugin("version_a"), plugin("version_b"));
    let s = start(&a, "", "");
    let server = format!("127.0.0.1:{}", s.port);
    let cli = |args: &[&str]| {
        let out = weir().arg("deploy").args(["--server", &server, "--step", "tag"]).args(args).output().unwrap();
        assert_ok(&out);
        String::from_utf8(out.stdout).unwrap()
    };
    let said = cli(&[b.to_str().unwrap()]);
    assert!(said.starts_with("step `tag` runs "), "{said}");
    flow(s.port, 2000.0);
    let listed = cli(&["--list"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.lines().nth(1).unwrap().contains(" active "), "{listed}");
    cli(&["--rollback"]);
    flow(s.port, 2000.0);
    let out = weir().args(["deploy", "--server", &server, "--step", "nope", "--list"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no plugin step named `nope` (HTTP 404)"), "{}", stderr(&out));
    let events = finish(s);
    let tags: Vec<String> = runs(&events).into_iter().map(|r| r.0).collect();
    assert_eq!(tags, ["a", "b", "a"]);
}

#[test]
fn a_component_renamed_into_the_watched_folder_is_deployed() {
    let watch = scratch();
    let s = start(&plugin("version_a"), "", &format!("[deploy]\nwatch = {}\n", toml_path(watch.path())));
    // Written aside, then renamed in: the watcher never sees half a file.
    let aside = watch.path().join(".tag.wasm.part");
    std::fs::copy(plugin("version_b"), &aside).unwrap();
    std::fs::rename(&aside, watch.path().join("tag.wasm")).unwrap();
    wait_until("the deployment", || versions(s.port).get(1).is_some_and(|v| v["status"] == "active"));
    let listed = versions(s.port);
    assert_eq!((listed[1]["origin"].as_str(), listed[1]["status"].as_str()), (Some("watch"), Some("active")));
    flow(s.port, 2000.0);
    let events = finish(s);
    let tags: Vec<String> = runs(&events).into_iter().map(|r| r.0).collect();
    assert_eq!(tags, ["a", "b"]);
}

#[test]
fn the_admin_api_lists_the_pipeline_and_answers_unknown_names_with_404() {
    let s = start(&plugin("version_a"), "", "");
    let all = get_json(s.port, "/api/v1/pipelines");
    let p = &all["pipelines"][0];
    assert_eq!((p["name"].as_str(), p["status"].as_str()), (Some("swap"), Some("running")));
    let step = &p["steps"][0];
    assert_eq!((step["name"].as_str(), step["kind"].as_str()), (Some("tag"), Some("plugin")));
    assert_eq!((step["status"].as_str(), step["circuit"].as_str()), (Some("running"), Some("closed")));
    assert_eq!(step["version"].as_str().unwrap().len(), 64);
    assert_eq!(get(s.port, "/api/v1/pipelines/nope").unwrap().0, 404);
    assert_eq!(get(s.port, "/api/v1/pipelines/swap/steps/nope/versions").unwrap().0, 404);
    assert_eq!(post(s.port, &format!("{STEP}/rollback"), b"").unwrap().0, 404, "nothing to roll back to");
    // Issue 19, finding 11: a version is named by at least 8 hex digits.
    for to in ["", "a", "1c0e", "zzzzzzzz", "../../etc"] {
        let (status, body) =
            post(s.port, &format!("{STEP}/rollback"), format!(r#"{{"to":"{to}"}}"#).as_bytes()).unwrap();
        assert_eq!(status, 400, "{to:?}: {body}");
        assert!(body.contains("at least 8 hex digits"), "{body}");
    }
    assert_eq!(post(s.port, &format!("{STEP}/rollback"), br#"{"to":"0123abcd"}"#).unwrap().0, 404);
    assert_eq!(post(s.port, &format!("{STEP}/versions"), b"").unwrap().0, 400);
    finish(s);
}

/// Issue 19: a version deployed through the API runs again after a restart
/// (kept beside the checkpoints), says so, and keeps its history; the
/// output continues exactly once across the restart.
#[test]
fn a_deployed_version_survives_a_restart() {
    let (a, b) = (plugin("version_a"), plugin("version_b"));
    let ck = scratch();
    let checkpoint = format!("[checkpoint]\ndir = {}\ninterval = \"100ms\"\n", toml_path(ck.path()));
    let mut s = start(&a, "", &checkpoint);
    let (status, body) = upload(s.port, &b);
    assert_eq!(status, 201, "{body}");
    let b_digest = body["digest"].as_str().unwrap().to_string();
    flow(s.port, 2000.0);
    let out = sigterm(&mut s.child);
    assert_ok(&out);
    // The restart: the pipeline file still names version a.
    let text = std::fs::read_to_string(s.dir.path().join("pipeline.toml")).unwrap();
    let port = free_port();
    s.child = spawn_listening(&s.dir.path().join("pipeline.toml"), &text, port);
    s.port = port;
    wait_for_metrics(port, |m| metric(m, "weir_sink_events_total", &[]).is_some_and(|n| n >= 1000.0));
    let listed = versions(port);
    let active: Vec<&Value> = listed.iter().filter(|v| v["status"] == "active").collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["digest"], b_digest.as_str());
    assert_eq!(active[0]["origin"], "restored");
    assert!(
        listed.iter().any(|v| v["origin"] == "config" && v["status"] == "inactive"),
        "the history is kept: {listed:?}"
    );
    let out = sigterm(&mut s.child);
    assert_ok(&out);
    assert!(stderr(&out).contains("runs the version deployed before the restart"), "{}", stderr(&out));
    let events = ndjson(&s.dir.path().join("out.ndjson"));
    let tags: Vec<String> = runs(&events).into_iter().map(|r| r.0).collect();
    assert_eq!(tags.last().map(String::as_str), Some("b"), "after the restart version b runs: {tags:?}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["order_id"].as_str().unwrap(), format!("ORD-{i:08}"), "exactly once across the restart");
    }
}
