//! `weir-bench http`: HTTP ingestion on loopback.
//!
//! - Throughput: `weir run` of http source → discard, with client threads
//!   posting NDJSON bodies of 1 and of 100 events over keep-alive
//!   connections (a 429 is retried); accepted events/s.
//! - Latency: http source → identity plugin → stdout, paced at a target
//!   rate; each event carries its send time, and the bench reads the
//!   pipeline's stdout: p50/p99/max from POST to the event leaving the sink.
//!
//! The pipeline runs as a child `weir run`, so client and server do not
//! share a process (they do share the machine's cores).

use anyhow::Context;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir::progress::si;

#[derive(Debug, clap::Args)]
pub struct BenchHttpArgs {
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Client threads for the throughput measurements.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Events/s for the latency measurement.
    #[arg(long, default_value_t = 50_000)]
    pub rate: u64,
    /// Events per request for the latency measurement.
    #[arg(long, default_value_t = 100)]
    pub per_request: usize,
    /// The plugin of the latency pipeline.
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release/identity.wasm")]
    pub plugin: PathBuf,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `weir run` on `text` (written to `dir`) and waits for /healthz.
fn spawn(dir: &Path, text: &str, port: u16, stdout: Stdio) -> anyhow::Result<Child> {
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, text)?;
    let child = std::process::Command::new(super::weir_binary()?)
        .args(["run", "-q"])
        .arg(&pipeline)
        .stdout(stdout)
        .spawn()
        .context("starting weir run")?;
    let agent = ureq::Agent::new_with_defaults();
    let started = Instant::now();
    while agent.get(format!("http://127.0.0.1:{port}/healthz")).call().is_err() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "the pipeline did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

fn stop(mut child: Child) -> anyhow::Result<()> {
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    child.wait()?;
    Ok(())
}

fn pipeline(port: u16, dir: &Path, step: Option<&Path>, sink: &str) -> String {
    let step =
        step.map_or(String::new(), |p| format!("[[steps]]\nname = \"step\"\nplugin = {:?}\n", p.display().to_string()));
    format!(
        "[pipeline]\nname = \"bench-http\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n\n[[sources]]\nname = \"events\"\nkind = \"http\"\nqueue = 100000\n\n{step}\n[[sinks]]\nname = \"out\"\nkind = \"{sink}\"\n\n[dead_letter]\npath = {:?}\n",
        dir.join("dead.ndjson").display().to_string()
    )
}

pub fn bench_http(args: BenchHttpArgs) -> anyhow::Result<ExitCode> {
    println!("weir-bench http: loopback, {} client threads, {} s per throughput run", args.clients, args.seconds);
    for per_request in [1, 100] {
        let (events, requests, refused) = throughput(&args, per_request)?;
        println!(
            "  {per_request:>3} event(s)/request: {}events/s accepted, {}requests/s ({refused} answered 429 and were resent)",
            si(events),
            si(requests)
        );
    }
    latency(&args)?;
    Ok(ExitCode::SUCCESS)
}

fn throughput(args: &BenchHttpArgs, per_request: usize) -> anyhow::Result<(f64, f64, u64)> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let child = spawn(dir.path(), &pipeline(port, dir.path(), None, "discard"), port, Stdio::null())?;
    let url = format!("http://127.0.0.1:{port}/api/v1/ingest/events");
    let body: String = (0..per_request)
        .map(|i| {
            format!(r#"{{"PatientId":"P{:04}","HeartRate":{},"SpO2":97,"Temperature":36.9}}"#, i % 1000, 60 + i % 60)
                + "\n"
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let results: Vec<(u64, u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.clients)
            .map(|_| {
                let (url, body) = (&url, &body);
                s.spawn(move || {
                    let agent: ureq::Agent =
                        ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
                    let (mut events, mut requests, mut refused) = (0u64, 0u64, 0u64);
                    while Instant::now() < until {
                        let Ok(mut r) = agent.post(url).send(body.as_bytes()) else { continue };
                        let _ = r.body_mut().read_to_vec();
                        match r.status().as_u16() {
                            200 => {
                                events += per_request as u64;
                                requests += 1;
                            }
                            _ => {
                                refused += 1;
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                    (events, requests, refused)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let secs = started.elapsed().as_secs_f64();
    stop(child)?;
    let sum = |f: fn(&(u64, u64, u64)) -> u64| results.iter().map(f).sum::<u64>();
    Ok((sum(|r| r.0) as f64 / secs, sum(|r| r.1) as f64 / secs, sum(|r| r.2)))
}

fn latency(args: &BenchHttpArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.plugin.is_file(), "{} missing: build the plugins first", args.plugin.display());
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let plugin = std::fs::canonicalize(&args.plugin)?;
    let mut child = spawn(dir.path(), &pipeline(port, dir.path(), Some(&plugin), "stdout"), port, Stdio::piped())?;
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut latencies = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let now = now_us();
            if let Some(sent) =
                line.split("\"sent_us\":").nth(1).and_then(|t| t.split([',', '}']).next()?.parse::<u64>().ok())
            {
                latencies.push(now.saturating_sub(sent) as f64 / 1e3);
            }
        }
        latencies
    });
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let url = format!("http://127.0.0.1:{port}/api/v1/ingest/events");
    let interval = Duration::from_secs_f64(args.per_request as f64 / args.rate as f64);
    let total = args.rate * 10;
    let mut sent = 0u64;
    let started = Instant::now();
    let mut next = started;
    while sent < total {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next += interval;
        let t = now_us();
        let body: String = (0..args.per_request)
            .map(|i| {
                format!(r#"{{"PatientId":"P{:04}","HeartRate":72,"sent_us":{t}}}"#, (sent as usize + i) % 1000) + "\n"
            })
            .collect();
        let mut r = agent.post(&url).send(body.as_bytes())?;
        let _ = r.body_mut().read_to_vec();
        if r.status().as_u16() == 200 {
            sent += args.per_request as u64;
        }
    }
    let achieved = sent as f64 / started.elapsed().as_secs_f64();
    stop(child)?;
    let mut l = reader.join().expect("reader thread");
    anyhow::ensure!(!l.is_empty(), "no events came out of the pipeline");
    l.sort_by(f64::total_cmp);
    let at = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)];
    println!(
        "  latency POST → plugin → stdout at {}events/s ({} per request, {} events): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        si(achieved),
        args.per_request,
        l.len(),
        at(0.5),
        at(0.99),
        l[l.len() - 1]
    );
    Ok(())
}
