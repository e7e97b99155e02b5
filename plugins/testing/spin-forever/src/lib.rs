//! A hostile plugin: loops forever when an event has `"spin": true`, passes
//! other events. The host's per-call deadline must stop it.

use weir_plugin_sdk::{Batch, Outcomes, Processor, export_processor};

struct SpinForever;

impl Processor for SpinForever {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(SpinForever)
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        for event in batch {
            let v: serde_json::Value = event.json().unwrap_or_default();
            if v.get("spin") == Some(&serde_json::Value::Bool(true)) {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            out.emit(&event, event.payload());
        }
    }
}

export_processor!(SpinForever);
