//! Emits every event unchanged: the cost of the plugin boundary alone.

use weir_plugin_sdk::{Batch, Outcomes, Processor, export_processor};

struct Identity;

impl Processor for Identity {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(Identity)
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        for event in batch {
            out.emit(&event, event.payload());
        }
    }
}

export_processor!(Identity);
