//! The request side of a push source (HTTP ingestion), as the server calls
//! it: the server knows routes and status codes, the source knows events.

use serde::Serialize;

/// One refused event, as a response lists it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct EventError {
    /// 0-based position of the event in the request.
    pub index: usize,
    pub reason: &'static str,
    pub detail: String,
}

/// What became of one request.
#[derive(Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Events split and checked; `accepted` of them are queued.
    Done { accepted: usize, rejected: usize, errors: Vec<EventError> },
    /// The body is a JSON array that does not parse: recorded as one dead letter.
    Malformed(String),
    /// The queue cannot take this request's events now: nothing was recorded.
    Full { retry_after_s: u64 },
    /// The request's valid events are more than the whole queue holds
    /// (413: waiting would never help); nothing was recorded.
    TooLarge(String),
    /// The pipeline is stopping: nothing was recorded.
    Closed,
}

impl IngestOutcome {
    /// The `result` label of `weir_http_ingest_requests_total`.
    pub fn label(&self) -> &'static str {
        match self {
            IngestOutcome::Done { .. } => "done",
            IngestOutcome::Malformed(_) => "malformed",
            IngestOutcome::Full { .. } => "full",
            IngestOutcome::TooLarge(_) => "too-large",
            IngestOutcome::Closed => "closed",
        }
    }
}

/// A source that takes events pushed to it.
pub trait IngestEndpoint: Send + Sync {
    /// The source's name (the `{source}` of its route).
    fn name(&self) -> &str;
    /// Largest request body it takes.
    fn max_body(&self) -> usize;
    /// Takes one request body (blocking: decoding, dead letters).
    fn ingest(&self, body: &[u8]) -> IngestOutcome;
}
