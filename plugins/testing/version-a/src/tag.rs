// Shared by version-a and version-b, which differ only in `VERSION`.

use weir_plugin_sdk::{Batch, Outcomes, Processor, export_processor};

struct Tag;

impl Processor for Tag {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(Tag)
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        for event in batch {
            match event.json::<serde_json::Map<String, serde_json::Value>>() {
                Ok(mut v) => {
                    v.insert("version".into(), VERSION.into());
                    out.emit_json(&event, &v);
                }
                Err(e) => out.reject(&event, e.to_string()),
            }
        }
    }
}

export_processor!(Tag);
