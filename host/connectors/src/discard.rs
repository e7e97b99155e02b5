//! `kind = "discard"`: drops events (benchmarks); they are still counted.

use serde::Deserialize;
use weir_config::{ConfigError, PipelineSpec, SinkSpec};
use weir_core::event::Batch;
use weir_core::metrics::Metrics;
use weir_core::sink::Sink;

/// `[[sinks]] kind = "discard"`: no options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardOptions {}

pub struct Discard;

impl super::Connector for Discard {
    fn name(&self) -> &'static str {
        "discard"
    }

    fn sink_kinds(&self) -> &'static [&'static str] {
        &["discard"]
    }

    fn check(&self, spec: &PipelineSpec) -> Result<(), ConfigError> {
        for s in super::sinks_of(spec, self.sink_kinds()) {
            s.options.deserialize::<DiscardOptions>()?;
        }
        Ok(())
    }

    fn session(&self, _: &super::SessionContext<'_>) -> anyhow::Result<Box<dyn super::Session>> {
        Ok(Box::new(Discard))
    }
}

impl super::Session for Discard {
    fn open_sink(&mut self, _: &SinkSpec, _: &Metrics) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(Discard))
    }
}

impl Sink for Discard {
    fn write(&mut self, batch: &Batch, indices: Option<&[u32]>) -> std::io::Result<usize> {
        Ok(indices.map_or(batch.len(), <[u32]>::len))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
