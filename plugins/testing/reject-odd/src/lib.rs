//! Rejects events whose `seq` is odd (or missing) and passes the rest: the
//! dead-letter path for plugin rejections.

use serde::Deserialize;
use weir_plugin_sdk::{Batch, Outcomes, Processor, export_processor};

struct RejectOdd;

#[derive(Deserialize)]
struct Seq {
    seq: Option<u64>,
}

impl Processor for RejectOdd {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(RejectOdd)
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        for event in batch {
            match event.json::<Seq>() {
                Ok(Seq { seq: Some(n) }) if n % 2 == 0 => out.emit(&event, event.payload()),
                Ok(Seq { seq: Some(n) }) => out.reject(&event, format!("seq {n} is odd")),
                Ok(Seq { seq: None }) => out.reject(&event, "missing field `seq`"),
                Err(e) => out.reject(&event, format!("not a valid event: {e}")),
            }
        }
    }
}

export_processor!(RejectOdd);
