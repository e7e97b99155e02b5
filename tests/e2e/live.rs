//! Helpers for tests of a live `weir run`: a free port, /metrics scrapes,
//! a child process that is killed if the test fails, SIGTERM.

use crate::harness::weir;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain HTTP/1.1 GET; (status, body).
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// A plain HTTP/1.1 POST of `body`; (status, body).
pub fn post(port: u16, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(s, "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
        .ok()?;
    s.write_all(body).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// GET of a JSON answer.
pub fn get_json(port: u16, path: &str) -> serde_json::Value {
    let (status, body) = get(port, path).expect("the server answers");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

/// Polls `check` every 20 ms until it holds, or fails after a minute.
pub fn wait_until(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(60), "waited a minute for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of the series `name` whose labels include all of `labels` (in any order).
pub fn metric(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .find(|l| labels.iter().all(|kv| l.contains(kv)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Kills the child if the test fails before it exits on its own.
pub struct Reaper(pub Option<std::process::Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls /metrics until `ready` holds for the body, or fails after a minute.
pub fn wait_for_metrics(port: u16, ready: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(60), "the metrics never showed what was awaited");
        if let Some((200, body)) = get(port, "/metrics")
            && ready(&body)
        {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes the pipeline file and starts `weir run` on it, serving on `port`.
pub fn spawn_listening(pipeline: &std::path::Path, text: &str, port: u16) -> Reaper {
    std::fs::write(pipeline, text).unwrap();
    Reaper(Some(
        weir()
            .args(["run", "--listen", &format!("127.0.0.1:{port}")])
            .arg(pipeline)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ))
}

pub fn sigterm(child: &mut Reaper) -> std::process::Output {
    let pid = child.0.as_ref().unwrap().id();
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    child.0.take().unwrap().wait_with_output().unwrap()
}

/// "N" of the run summary's "read N events" line.
pub fn events_read(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("read")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no run summary in:\n{stderr}"))
}
