//! The sandbox on the engine itself, without a pipeline around it (as Spin
//! tests its core): a memory cap, a per-call deadline and a trap each fail
//! the call with their own kind, and the next call runs on a fresh
//! instance. The guests are the hostile plugins of `plugins/testing/`,
//! built once per test binary.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use weir_config::Limits;
use weir_core::metrics::Metrics;
use weir_plugin_host::{FailureKind, InstanceSettings, PluginEngine, PluginInstance};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Rust testing plugin `name`, built once.
fn plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(repo().join("plugins/Cargo.toml"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the plugins failed (is the wasm32-wasip2 target installed?)");
    });
    repo().join("plugins/target/wasm32-wasip2/release").join(format!("{name}.wasm"))
}

fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PluginEngine::new(None).expect("the engine starts"))
}

fn start(name: &str, config: &str, limits: Limits) -> PluginInstance {
    let metrics = Metrics::new("sandbox");
    let settings = InstanceSettings {
        step: name.into(),
        config: config.into(),
        limits,
        grants: Default::default(),
        metrics: metrics.plugin_api(name),
        models: Vec::new(),
        state: None,
    };
    PluginInstance::start(engine().load(&plugin(name)).expect("the plugin loads"), settings).expect("it starts")
}

/// Runs one call on `events`; Ok(number of emitted events) or the failure's kind.
fn call(instance: &mut PluginInstance, events: &[&str]) -> Result<usize, (FailureKind, String)> {
    let (mut payloads, mut ends, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for (i, e) in events.iter().enumerate() {
        payloads.extend_from_slice(e.as_bytes());
        ends.push(payloads.len() as u32);
        times.push(i as i64);
    }
    let result = instance.process(&mut payloads, &mut ends, &mut times);
    assert_eq!(ends.len(), events.len(), "the batch is handed back whole");
    result.map(|o| o.emitted.ends.len()).map_err(|f| (f.kind, f.message))
}

#[test]
fn a_plugin_over_its_memory_cap_fails_the_call_and_the_next_runs_on_a_fresh_instance() {
    let limits = Limits { memory: bytesize::ByteSize::mib(16), ..Limits::default() };
    let mut p = start("grow_memory", "", limits);
    assert_eq!(call(&mut p, &[r#"{"a":1}"#, r#"{"a":2}"#]), Ok(2));
    let (kind, message) = call(&mut p, &[r#"{"a":3}"#, r#"{"grow":true}"#]).unwrap_err();
    assert_eq!(kind, FailureKind::Memory, "{message}");
    assert!(message.starts_with("memory cap of 16.0 MiB exceeded"), "{message}");
    assert_eq!(call(&mut p, &[r#"{"a":4}"#]), Ok(1), "a fresh instance, its hoard gone");
}

#[test]
fn a_plugin_past_its_deadline_is_interrupted_and_the_next_call_runs() {
    let limits = Limits { deadline: Duration::from_millis(50), ..Limits::default() };
    let mut p = start("spin_forever", "", limits);
    let (kind, message) = call(&mut p, &[r#"{"spin":true}"#]).unwrap_err();
    assert_eq!(kind, FailureKind::Deadline, "{message}");
    assert_eq!(message, "the call ran past its deadline and was interrupted");
    assert_eq!(call(&mut p, &[r#"{"spin":false}"#, "{}"]), Ok(2));
}

#[test]
fn a_trap_fails_the_call_with_its_message_and_the_instance_is_replaced() {
    let mut p = start("hostile", r#"{"mode":"trap-always"}"#, Limits::default());
    for _ in 0..2 {
        let (kind, message) = call(&mut p, &["{}"]).unwrap_err();
        assert_eq!(kind, FailureKind::Trap, "{message}");
        assert!(message.contains("unreachable") || message.contains("wasm trap"), "{message}");
    }
}

#[test]
fn a_config_the_plugin_refuses_stops_the_start() {
    let metrics = Metrics::new("sandbox");
    let settings = InstanceSettings {
        step: "hostile".into(),
        config: r#"{"mode":"nothing-bad"}"#.into(),
        limits: Limits::default(),
        grants: Default::default(),
        metrics: metrics.plugin_api("hostile"),
        models: Vec::new(),
        state: None,
    };
    let loaded = engine().load(&plugin("hostile")).unwrap();
    let e = PluginInstance::start(loaded, settings).err().expect("init refuses");
    assert!(e.to_string().starts_with("plugin init refused its config"), "{e}");
}
