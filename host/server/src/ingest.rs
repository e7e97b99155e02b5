//! `POST /api/v1/ingest/{source}`: events into an HTTP source.
//!
//! 200 with `{"accepted", "rejected", "errors"}` when something was
//! accepted (or the body held no events); 422 when every event was refused
//! (each is in the dead-letter output); 400 when the body is not JSON at all
//! (one dead-letter record); 413 past the source's `max_body`; 429 with
//! `Retry-After` when the queue is full (nothing of the request was kept:
//! send it again), 413 when the request alone holds more than the whole
//! queue; 503 while the pipeline stops.

use super::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use weir_core::ingest::IngestOutcome as HttpIngested;

pub async fn ingest(State(s): State<AppState>, Path(source): Path<String>, body: Bytes) -> Response {
    let Some(http) = s.ingest.get(&source).cloned() else {
        return error(StatusCode::NOT_FOUND, format!("no http source named `{source}`"));
    };
    if body.len() > http.max_body() {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {} bytes; source `{source}` takes at most {}", body.len(), http.max_body()),
        );
    }
    // Decoding and the dead-letter file are blocking work.
    let outcome = match tokio::task::spawn_blocking(move || http.ingest(&body)).await {
        Ok(o) => o,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    s.ingest_requests(&source, &outcome);
    match outcome {
        HttpIngested::Done { accepted, rejected, errors } => {
            let status = if accepted == 0 && rejected > 0 {
                if errors.iter().all(|e| e.reason == "invalid-json") {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
            } else {
                StatusCode::OK
            };
            let body = serde_json::json!({ "accepted": accepted, "rejected": rejected, "errors": errors });
            (status, Json(body)).into_response()
        }
        HttpIngested::Malformed(message) => error(StatusCode::BAD_REQUEST, message),
        HttpIngested::Full { retry_after_s } => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("source `{source}` is full; nothing of this request was kept, send it again"),
            );
            r.headers_mut().insert(header::RETRY_AFTER, retry_after_s.into());
            r
        }
        HttpIngested::TooLarge(message) => error(StatusCode::PAYLOAD_TOO_LARGE, message),
        HttpIngested::Closed => error(StatusCode::SERVICE_UNAVAILABLE, "the pipeline is stopping"),
    }
}

fn error(status: StatusCode, message: impl ToString) -> Response {
    (status, Json(serde_json::json!({ "error": message.to_string() }))).into_response()
}
