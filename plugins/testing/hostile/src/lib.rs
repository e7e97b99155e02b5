//! A hostile plugin for the sandbox tests. Its config picks one misdeed,
//! `{"mode": "..."}`; events without the trigger field pass unchanged.
//!
//! - `flood`: an event with `"flood": N` is emitted N times.
//! - `read-file`: an event with `"read": "<path>"` makes it read that file
//!   and emit `{"read": path, "contents": ...}`; an error rejects the event
//!   with the error.
//! - `write-file`: the same with `"write": "<path>"`, writing "owned".
//! - `connect`: an event with `"connect": "<ip:port>"` opens a TCP
//!   connection there; an error rejects the event with the error.
//! - `env`: emits `{"env": {name: value}}` for an event's `"env": "<name>"`.
//! - `clock`: emits the wall clock as `{"now_s": seconds since 1970}`.
//! - `print`: prints each event's `"print"` text to stdout and stderr.
//! - `log`: logs each event's `"log"` text through the host's `log` import.
//! - `outputs`: emits each event with `"to": "<name>"` to that output.
//! - `trap-always`: panics in every `process` call (its `init` succeeds).
//! - `hoard`: an event with `"hoard": N, "name": "<name>"` puts N bytes of
//!   keyed state under that name, and passes.
//! - anything else, or no mode: `init` refuses the config.

use serde::Deserialize;
use serde_json::{Value, json};
use weir_plugin_sdk::{Batch, Event, Outcomes, Processor, export_processor};

#[derive(Deserialize)]
struct Config {
    mode: String,
}

struct Hostile {
    mode: String,
}

const MODES: &[&str] =
    &["flood", "read-file", "write-file", "connect", "env", "clock", "print", "trap-always", "hoard", "log", "outputs"];

impl Processor for Hostile {
    fn init(config: &str) -> Result<Self, String> {
        let c: Config = serde_json::from_str(config).map_err(|e| format!("config: {e}"))?;
        if !MODES.contains(&c.mode.as_str()) {
            return Err(format!("unknown mode `{}` (modes: {})", c.mode, MODES.join(", ")));
        }
        Ok(Hostile { mode: c.mode })
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        if self.mode == "trap-always" {
            panic!("hostile plugin: trapping on every call");
        }
        for event in batch {
            let v: Value = event.json().unwrap_or_default();
            self.one(&event, &v, out);
        }
    }
}

impl Hostile {
    fn one(&self, event: &Event<'_>, v: &Value, out: &mut Outcomes) {
        match self.mode.as_str() {
            "flood" => {
                if let Some(n) = v.get("flood").and_then(Value::as_u64) {
                    for _ in 0..n {
                        out.emit(event, event.payload());
                    }
                    return;
                }
            }
            "read-file" => {
                if let Some(path) = v.get("read").and_then(Value::as_str) {
                    match std::fs::read_to_string(path) {
                        Ok(contents) => out.emit_json(event, &json!({"read": path, "contents": contents})),
                        Err(e) => out.reject(event, format!("read {path}: {e}")),
                    }
                    return;
                }
            }
            "write-file" => {
                if let Some(path) = v.get("write").and_then(Value::as_str) {
                    match std::fs::write(path, "owned") {
                        Ok(()) => out.emit_json(event, &json!({"wrote": path})),
                        Err(e) => out.reject(event, format!("write {path}: {e}")),
                    }
                    return;
                }
            }
            "connect" => {
                if let Some(addr) = v.get("connect").and_then(Value::as_str) {
                    match std::net::TcpStream::connect(addr) {
                        Ok(_) => out.emit_json(event, &json!({"connected": addr})),
                        Err(e) => out.reject(event, format!("connect {addr}: {e}")),
                    }
                    return;
                }
            }
            "env" => {
                if let Some(name) = v.get("env").and_then(Value::as_str) {
                    out.emit_json(event, &json!({"env": {name: std::env::var(name).ok()}}));
                    return;
                }
            }
            "clock" => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                out.emit_json(event, &json!({"now_s": now.as_secs()}));
                return;
            }
            "hoard" => {
                if let (Some(n), Some(name)) =
                    (v.get("hoard").and_then(Value::as_u64), v.get("name").and_then(Value::as_str))
                {
                    weir_plugin_sdk::state::put(event, name, &vec![7u8; n as usize]);
                }
            }
            "outputs" => {
                if let Some(to) = v.get("to").and_then(Value::as_str) {
                    out.emit_to(event, to, event.payload());
                    return;
                }
            }
            "log" => {
                if let Some(text) = v.get("log").and_then(Value::as_str) {
                    weir_plugin_sdk::log(weir_plugin_sdk::Level::Warn, text);
                }
            }
            "print" => {
                if let Some(text) = v.get("print").and_then(Value::as_str) {
                    println!("{text}");
                    eprintln!("{text}");
                }
            }
            _ => {}
        }
        out.emit(event, event.payload());
    }
}

export_processor!(Hostile);
