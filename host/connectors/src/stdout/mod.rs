//! `kind = "stdout"`: NDJSON on standard output, flushed after every batch.

use serde::Deserialize;
use weir_config::{ConfigError, PipelineSpec, SinkSpec};
use weir_core::metrics::Metrics;
use weir_core::sink::Sink;

/// `[[sinks]] kind = "stdout"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutOptions {
    /// Add each event's `"_weir"` metadata, as the file sink does (default false).
    #[serde(default)]
    pub metadata: bool,
}

pub struct Stdout;

impl super::Connector for Stdout {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn sink_kinds(&self) -> &'static [&'static str] {
        &["stdout"]
    }

    fn check(&self, spec: &PipelineSpec) -> Result<(), ConfigError> {
        for s in super::sinks_of(spec, self.sink_kinds()) {
            s.options.deserialize::<StdoutOptions>()?;
        }
        Ok(())
    }

    fn session(&self, _: &super::SessionContext<'_>) -> anyhow::Result<Box<dyn super::Session>> {
        Ok(Box::new(Stdout))
    }
}

impl super::Session for Stdout {
    fn open_sink(&mut self, spec: &SinkSpec, _: &Metrics) -> anyhow::Result<Box<dyn Sink>> {
        let o: StdoutOptions = spec.options.deserialize()?;
        // A reader downstream of stdout sees each batch as it is written.
        Ok(Box::new(crate::file::Ndjson::new(std::io::stdout(), o.metadata, true)))
    }
}
