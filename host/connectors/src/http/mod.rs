//! `kind = "http"`: `POST /api/v1/ingest/<name>` on the server (JSON
//! object, array or NDJSON). The server routes requests to the source's
//! [`weir_core::ingest::IngestEndpoint`].

mod source;

pub use source::{HttpIngest, HttpSource, split_body};

use serde::Deserialize;
use std::sync::Arc;
use weir_config::{ConfigError, PipelineSpec};
use weir_core::source::Opened;

/// `[[sources]] kind = "http"`; needs `[server] listen`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// Most events accepted but not yet taken by the pipeline (default
    /// 10000); a request that does not fit gets 429.
    pub queue: Option<usize>,
    /// Largest request body (default "8MiB"); larger gets 413.
    pub max_body: Option<bytesize::ByteSize>,
}

impl HttpOptions {
    fn of(s: &weir_config::SourceSpec) -> Result<(usize, usize), ConfigError> {
        let o: HttpOptions = s.options.deserialize()?;
        let queue = o.queue.unwrap_or(10_000);
        if queue == 0 {
            return Err(s.options.error("queue", "must be at least 1"));
        }
        Ok((queue, o.max_body.map_or(8 << 20, |b| b.as_u64() as usize)))
    }
}

pub struct Http;

impl super::Connector for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn source_kinds(&self) -> &'static [&'static str] {
        &["http"]
    }

    fn check(&self, spec: &PipelineSpec) -> Result<(), ConfigError> {
        for (_, s) in super::sources_of(spec, self.source_kinds()) {
            HttpOptions::of(s)?;
        }
        Ok(())
    }

    fn session(&self, _: &super::SessionContext<'_>) -> anyhow::Result<Box<dyn super::Session>> {
        Ok(Box::new(Http))
    }
}

impl super::Session for Http {
    fn open_source(&mut self, cx: &super::SourceContext<'_>) -> anyhow::Result<Opened> {
        let (queue, max_body) = HttpOptions::of(cx.spec)?;
        let m = cx.metrics.source(&cx.spec.name);
        let (source, ingest) = HttpSource::new(cx.spec, cx.index, queue, max_body, cx.dead.clone(), &m);
        let ingest: Arc<dyn weir_core::ingest::IngestEndpoint> = ingest;
        Ok((Box::new(source), Some(ingest)))
    }
}
