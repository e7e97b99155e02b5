//! `kind = "file"`: NDJSON replay as a source, NDJSON lines as a sink.

mod sink;
mod source;

pub use sink::Ndjson;
pub use source::FileSource;

use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;
use weir_config::{ConfigError, PipelineSpec, SinkSpec};
use weir_core::metrics::Metrics;
use weir_core::sink::Sink;
use weir_core::source::Opened;

/// `[[sources]] kind = "file"`: NDJSON replay, one event per line, blank
/// lines skipped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceOptions {
    /// The NDJSON file.
    pub path: Spanned<PathBuf>,
    /// Replay at most this many events per second (default 0: as fast as
    /// possible), e.g. to watch history go by at the pace it happened.
    pub rate: Option<u64>,
}

/// `[[sinks]] kind = "file"`: one JSON object per line, appended.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkOptions {
    /// The file to append NDJSON to (created with its folders if missing).
    pub path: PathBuf,
    /// Add to each event a `"_weir"` object with its metadata,
    /// `{"versions": {"<step>": "<sha256 of the plugin version>"}}` for
    /// every plugin step that processed it (default false).
    #[serde(default)]
    pub metadata: bool,
}

pub struct File;

const KINDS: &[&str] = &["file"];

impl super::Connector for File {
    fn name(&self) -> &'static str {
        "file"
    }

    fn source_kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn sink_kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn check(&self, spec: &PipelineSpec) -> Result<(), ConfigError> {
        for (_, s) in super::sources_of(spec, KINDS) {
            let o: FileSourceOptions = s.options.deserialize()?;
            if !o.path.get_ref().is_file() {
                let shown = o.path.get_ref().display();
                return Err(s.options.error_at(o.path.span(), "path", format!("input file `{shown}` not found")));
            }
        }
        for s in super::sinks_of(spec, KINDS) {
            s.options.deserialize::<FileSinkOptions>()?;
        }
        Ok(())
    }

    fn session(&self, _: &super::SessionContext<'_>) -> anyhow::Result<Box<dyn super::Session>> {
        Ok(Box::new(File))
    }
}

impl super::Session for File {
    fn open_source(&mut self, cx: &super::SourceContext<'_>) -> anyhow::Result<Opened> {
        let o: FileSourceOptions = cx.spec.options.deserialize()?;
        let mut source = FileSource::open(o.path.get_ref(), cx.index, cx.spec)?.with_rate(o.rate.unwrap_or(0));
        if let Some(p) = cx.restored {
            weir_core::source::Source::resume(&mut source, p)?;
            tracing::info!(source = %cx.spec.name, position = ?p, "source resumes from the checkpoint");
        }
        Ok((Box::new(source), None))
    }

    fn open_sink(&mut self, spec: &SinkSpec, _: &Metrics) -> anyhow::Result<Box<dyn Sink>> {
        let o: FileSinkOptions = spec.options.deserialize()?;
        Ok(Box::new(sink::open_file(&spec.name, &o.path, o.metadata)?))
    }
}
