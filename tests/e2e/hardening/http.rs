//! Issue 19, the HTTP server: idle and slow clients, what an acknowledged
//! ingest guarantees, browsers on the same machine, and errors that never
//! repeat an event's values.

use crate::harness::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// An HTTP-source pipeline serving on `port`, with `server` lines added to
/// its `[server]` table; events go to `out.ndjson` in `dir`.
fn http_pipeline(dir: &Path, port: u16, server: &str) -> crate::live::Reaper {
    http_pipeline_with(dir, port, server, None)
}

/// [`http_pipeline`], the process limited to `descriptors` open files.
fn http_pipeline_with(dir: &Path, port: u16, server: &str, descriptors: Option<u32>) -> crate::live::Reaper {
    let text = format!(
        r#"
[pipeline]
name = "attacked"
[server]
listen = "127.0.0.1:{port}"
{server}
[[sources]]
name = "vitals"
kind = "http"
[[sinks]]
name = "out"
kind = "file"
path = {out}
"#,
        out = toml_path(&dir.join("out.ndjson")),
    );
    let pipeline = dir.join("p.toml");
    std::fs::write(&pipeline, text).unwrap();
    let mut cmd = weir();
    if let Some(n) = descriptors {
        // `ulimit -n` in a shell that then becomes weir.
        let exe = cmd.get_program().to_owned();
        cmd = std::process::Command::new("sh");
        cmd.current_dir(repo())
            .env("WEIR_CACHE_DIR", repo().join("target").join("weir-test-cache"))
            .arg("-c")
            .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
            .arg(exe);
    }
    crate::live::Reaper(Some(
        cmd.arg("run")
            .arg(&pipeline)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ))
}

/// Raises this process's soft limit on open files to `n` (or the hard limit).
fn allow_descriptors(n: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain calls on a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < n {
            lim.rlim_cur = n.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

/// Finding 2: 22,000 idle connection attempts, 900 of them held open at a
/// time — more than the 800 files the process may open (before the fix,
/// they used up its descriptors and the server stopped answering) — leave
/// `/healthz`, ingestion and the pipeline working; the quiet connections
/// are the ones closed.
#[test]
fn idle_connections_cannot_take_the_server_or_the_pipeline_down() {
    use crate::live::*;
    use std::net::TcpStream;
    assert!(allow_descriptors(4096) >= 2048, "the test needs 2048 open files");
    let dir = scratch();
    let port = free_port();
    let mut child = http_pipeline_with(dir.path(), port, "", Some(800));
    wait_until("the server answers", || get(port, "/healthz").is_some_and(|(s, _)| s == 200));
    let mut held: std::collections::VecDeque<TcpStream> = std::collections::VecDeque::new();
    let (mut attempts, mut sent) = (0, 0);
    while attempts < 22_000 {
        // Connections that never send a byte, as an attacker's would.
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            held.push_back(s);
        }
        attempts += 1;
        if held.len() > 900 {
            held.pop_front();
        }
        if attempts % 2_000 == 0 {
            let (status, _) = get(port, "/healthz").expect("/healthz answers under the flood");
            assert_eq!(status, 200);
            let (status, body) =
                post(port, "/api/v1/ingest/vitals", format!(r#"{{"n":{sent}}}"#).as_bytes()).expect("ingest answers");
            assert_eq!(status, 200, "{body}");
            sent += 1;
        }
    }
    let metrics = get(port, "/metrics").expect("/metrics answers").1;
    let evicted = metric(&metrics, "weir_http_connections_closed_total", &["reason=\"evicted\""]).unwrap();
    assert!(evicted > 0.0, "quiet connections were closed to make room");
    let open = metric(&metrics, "weir_http_connections", &[]).unwrap_or_else(|| {
        metrics.lines().find_map(|l| l.strip_prefix("weir_http_connections ")?.parse().ok()).unwrap()
    });
    assert!(open <= 512.0, "never more than max_connections: {open}");
    drop(held);
    let out = sigterm(&mut child);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = ndjson(&dir.path().join("out.ndjson"));
    assert_eq!(got.len(), sent, "every acknowledged event is written");
}

/// Finding 2: a client that sends no headers, or not all of its body, is
/// cut off after `header_timeout` / `body_timeout` (408 for the body).
#[test]
fn slow_clients_are_cut_off_after_the_timeouts() {
    use crate::live::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let dir = scratch();
    let port = free_port();
    let mut child = http_pipeline(dir.path(), port, "header_timeout = \"1s\"\nbody_timeout = \"1s\"");
    wait_until("the server answers", || get(port, "/healthz").is_some_and(|(s, _)| s == 200));
    let read_all = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut text = Vec::new();
        let _ = s.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    };
    // Half a request line, then nothing: closed without an answer.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET /hea").unwrap();
    let started = Instant::now();
    let got = read_all(&mut idle);
    assert!(started.elapsed() < Duration::from_secs(25), "closed by the server, not by our read timeout");
    assert!(!got.contains("200 OK"), "{got}");
    // A connection that never sends a byte (hyper's own timer starts only
    // with a request line): closed too.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let started = Instant::now();
    assert!(read_all(&mut silent).is_empty());
    assert!(started.elapsed() < Duration::from_secs(25), "closed by the server, not by our read timeout");
    // A body announced as 100 bytes, 10 sent: 408.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"POST /api/v1/ingest/vitals HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"n\": 1, ")
        .unwrap();
    let got = read_all(&mut slow);
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    // A kept-alive connection that goes quiet after its request is closed too.
    let mut kept = TcpStream::connect(("127.0.0.1", port)).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let got = read_all(&mut kept);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let metrics = get(port, "/metrics").unwrap().1;
    assert_eq!(metric(&metrics, "weir_http_connections_closed_total", &["reason=\"body-timeout\""]), Some(1.0));
    let out = sigterm(&mut child);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ndjson(&dir.path().join("out.ndjson")).is_empty(), "the cut-off body was not ingested");
}

/// Findings 4 and 5: an event acknowledged over HTTP reaches the file
/// within `flush_interval` while the pipeline runs, so a kill -9 loses
/// nothing acknowledged; the next run appends (an HTTP source does not
/// start from a beginning) and the file holds only whole lines.
#[test]
fn acknowledged_events_are_on_disk_within_the_flush_interval_and_survive_kill_9() {
    use crate::live::*;
    let dir = scratch();
    let port = free_port();
    let out = dir.path().join("out.ndjson");
    let mut child = http_pipeline(dir.path(), port, "");
    wait_until("the server answers", || get(port, "/healthz").is_some_and(|(s, _)| s == 200));
    for i in 0..20 {
        let (status, body) = post(port, "/api/v1/ingest/vitals", format!(r#"{{"n":{i}}}"#).as_bytes()).unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // Within the default flush interval (1 s), without a checkpoint or a stop.
    wait_until("the acknowledged events reach the file", || ndjson(&out).len() == 20);
    let mut proc = child.0.take().unwrap();
    proc.kill().unwrap(); // SIGKILL
    proc.wait().unwrap();
    assert_eq!(ndjson(&out).len(), 20, "every acknowledged event is on disk after kill -9");
    // A torn line, as a machine crash could leave: the next run cuts it off.
    let mut bytes = std::fs::read(&out).unwrap();
    bytes.extend_from_slice(br#"{"n":99,"to"#);
    std::fs::write(&out, bytes).unwrap();
    let mut again = http_pipeline(dir.path(), port, "");
    wait_until("the server answers again", || get(port, "/healthz").is_some_and(|(s, _)| s == 200));
    post(port, "/api/v1/ingest/vitals", br#"{"n":20}"#).unwrap();
    let done = sigterm(&mut again);
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(stderr(&done).contains("a torn last line of 11 bytes was cut off"), "{}", stderr(&done));
    let ns: Vec<u64> = ndjson(&out).iter().map(|e| e["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, (0..=20).collect::<Vec<_>>());
}

/// Finding 13: without tokens, the server answers only requests to a
/// loopback host name from this machine: a web page (cross-origin, or
/// through DNS rebinding under a foreign host name) is refused.
#[test]
fn without_tokens_a_browser_page_cannot_call_the_loopback_api() {
    use crate::live::*;
    use std::io::{Read, Write};
    let dir = scratch();
    let port = free_port();
    let mut child = http_pipeline(dir.path(), port, "");
    wait_until("the server answers", || get(port, "/healthz").is_some_and(|(s, _)| s == 200));
    let status = |request: String| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.split(' ').nth(1).unwrap().parse::<u16>().unwrap()
    };
    let req = |method: &str, path: &str, headers: &str| {
        format!("{method} {path} HTTP/1.1\r\n{headers}Content-Length: 7\r\nConnection: close\r\n\r\n{{\"n\":1}}")
    };
    let ingest = "/api/v1/ingest/vitals";
    assert_eq!(status(req("POST", ingest, &format!("Host: 127.0.0.1:{port}\r\n"))), 200);
    assert_eq!(status(req("POST", ingest, &format!("Host: evil.example:{port}\r\n"))), 403, "DNS rebinding");
    let page = format!("Host: localhost:{port}\r\nOrigin: https://evil.example\r\n");
    assert_eq!(status(req("POST", ingest, &page)), 403, "cross-origin");
    let fetch = format!("Host: localhost:{port}\r\nSec-Fetch-Site: cross-site\r\n");
    assert_eq!(status(req("POST", "/api/v1/pipelines/attacked/steps/x/rollback", &fetch)), 403);
    assert_eq!(status(req("GET", "/metrics", &format!("Host: evil.example:{port}\r\n"))), 403);
    let same = format!("Host: localhost:{port}\r\nOrigin: http://localhost:{port}\r\n");
    assert_eq!(status(req("POST", ingest, &same)), 200, "a page served from loopback itself");
    let out = sigterm(&mut child);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ndjson(&dir.path().join("out.ndjson")).len(), 2, "only the two allowed requests were ingested");
}

/// Finding 10: error details name the field, never its value — in the
/// HTTP answer, the dead-letter detail and the log — while the dead-letter
/// record keeps the original (redacted as `[dead_letter] redact` says).
#[test]
fn error_details_never_echo_event_values() {
    use crate::live::*;
    let dir = scratch();
    let port = free_port();
    let text = format!(
        r#"
[pipeline]
name = "redacted"
[server]
listen = "127.0.0.1:{port}"
[[sources]]
name = "vitals"
kind = "http"
timestamp_field = "t"
key_field = "PatientId"
[[sinks]]
name = "out"
kind = "file"
path = {out}
[dead_letter]
path = {dead}
redact = ["PatientId"]
"#,
        out = toml_path(&dir.path().join("out.ndjson")),
        dead = toml_path(&dir.path().join("dead.ndjson")),
    );
    let mut child = spawn_listening(&dir.path().join("p.toml"), &text, port);
    wait_until("the server answers", || get(port, "/healthz").is_some_and(|(s, _)| s == 200));
    let body = [
        r#"{"PatientId":"P-SECRET-1","t":"SECRET-TIME"}"#,
        r#"{"PatientId":{"SECRET-OBJECT":1},"t":5}"#,
        r#"{"PatientId":"P-SECRET-3","t":[1,"SECRET-LIST"]}"#,
        r#"{"PatientId":"P-SECRET-4","t":5}"#,
    ]
    .join("\n");
    let (status, answer) = post(port, "/api/v1/ingest/vitals", body.as_bytes()).unwrap();
    assert_eq!(status, 200, "{answer}");
    let (_, array) = post(port, "/api/v1/ingest/vitals", br#"[{"a":"SECRET-ARRAY"}, nul"#).unwrap();
    let out = sigterm(&mut child);
    assert!(out.status.success(), "{}", stderr(&out));
    let dead = std::fs::read_to_string(dir.path().join("dead.ndjson")).unwrap();
    for (what, text) in [("the answer", &answer), ("the array answer", &array), ("the log", &stderr(&out))] {
        assert!(!text.contains("SECRET"), "{what} holds a value: {text}");
    }
    let records: Vec<serde_json::Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 4);
    for r in &records[..3] {
        assert!(!r["detail"].as_str().unwrap().contains("SECRET"), "{r}");
        assert!(r["detail"].as_str().unwrap().contains("field `"), "{r}");
    }
    let original: serde_json::Value = serde_json::from_str(records[0]["original"].as_str().unwrap()).unwrap();
    assert_eq!(original["PatientId"], "***", "redacted as configured");
    assert_eq!(original["t"], "SECRET-TIME", "the rest of the original is kept for the data owner");
}
