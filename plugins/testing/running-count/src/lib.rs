//! Adds to each event `"n"`: the number of events of its key so far
//! (the source's `key_field`), kept in the host's keyed state.

use weir_plugin_sdk::{Batch, Outcomes, Processor, export_processor, state};

struct RunningCount;

impl Processor for RunningCount {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(RunningCount)
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        for event in batch {
            let Ok(mut fields) = event.json::<serde_json::Map<String, serde_json::Value>>() else {
                out.reject(&event, "not a JSON object");
                continue;
            };
            let n = state::get(&event, "n").map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))) + 1;
            state::put(&event, "n", &n.to_le_bytes());
            fields.insert("n".into(), n.into());
            out.emit(&event, serde_json::Value::Object(fields).to_string().as_bytes());
        }
    }
}

export_processor!(RunningCount);
