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
    /// 10000); a request that does not fit gets 429, one with more events
    /// than the whole queue holds gets 413.
    pub queue: Option<usize>,
    /// Most payload bytes accepted but not yet taken by the pipeline
    /// (default "64MiB"); as `queue`, in bytes.
    pub queue_bytes: Option<bytesize::ByteSize>,
    /// Largest request body (default "8MiB", at most `queue_bytes` and
    /// "1GiB"); larger gets 413.
    pub max_body: Option<bytesize::ByteSize>,
}

impl HttpOptions {
    fn of(s: &weir_config::SourceSpec) -> Result<source::QueueLimits, ConfigError> {
        let o: HttpOptions = s.options.deserialize()?;
        let events = o.queue.unwrap_or(10_000);
        if events == 0 {
            return Err(s.options.error("queue", "must be at least 1"));
        }
        let bytes = o.queue_bytes.map_or(64 << 20, |b| b.as_u64());
        let max_body = o.max_body.map_or(8 << 20, |b| b.as_u64());
        if bytes == 0 || bytes > weir_core::source::BatchLimit::MAX_BYTES as u64 {
            return Err(s.options.error("queue_bytes", "must be between 1 byte and 1GiB"));
        }
        if max_body == 0 || max_body > bytes {
            return Err(s.options.error("max_body", "must be more than zero and at most queue_bytes"));
        }
        Ok(source::QueueLimits { events, bytes: bytes as usize, max_body: max_body as usize })
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
        let queue = HttpOptions::of(cx.spec)?;
        let m = cx.metrics.source(&cx.spec.name);
        let (source, ingest) = HttpSource::new(cx.spec, cx.index, queue, cx.dead.clone(), &m);
        let ingest: Arc<dyn weir_core::ingest::IngestEndpoint> = ingest;
        Ok((Box::new(source), Some(ingest)))
    }
}
