//! A hostile plugin: allocates without bound when an event has
//! `"grow": true`, passes other events. The host's memory cap must stop it.

use weir_plugin_sdk::{Batch, Outcomes, Processor, export_processor};

struct GrowMemory {
    hoard: Vec<Vec<u8>>,
}

impl Processor for GrowMemory {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(GrowMemory { hoard: Vec::new() })
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        for event in batch {
            let v: serde_json::Value = event.json().unwrap_or_default();
            if v.get("grow") == Some(&serde_json::Value::Bool(true)) {
                loop {
                    self.hoard.push(vec![1u8; 1 << 20]);
                }
            }
            out.emit(&event, event.payload());
        }
    }
}

export_processor!(GrowMemory);
