//! Bearer tokens with scopes, and the audit log of admin actions.
//!
//! Tokens are kept as SHA-256 hashes ([`crate::tokens`]); a presented
//! token is hashed and compared with every known hash in constant time. Each route needs one
//! scope: `/healthz` none, `/metrics` `read` (none if configured public),
//! `/readyz` and `GET /api/v1/...` `read`, `POST /api/v1/ingest/...`
//! `ingest`, other `POST`s (uploads, rollbacks) `admin`. Without tokens
//! the server only runs on loopback and checks nothing.

use super::AppState;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::IntCounterVec;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use weir_config::Scope;

/// Who made a request, for the audit log: a token id, or "-" when the
/// server checks no tokens (loopback only).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// The scope a request needs, if any.
pub fn required_scope(method: &Method, path: &str, metrics_public: bool) -> Option<Scope> {
    match path {
        "/healthz" => None,
        "/metrics" if metrics_public => None,
        "/metrics" | "/readyz" => Some(Scope::Read),
        p if p.starts_with("/api/v1/ingest/") => Some(Scope::Ingest),
        _ if method == Method::GET || method == Method::HEAD => Some(Scope::Read),
        _ => Some(Scope::Admin),
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut r = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"weir\""));
    }
    r
}

/// The middleware: 401 without a valid token, 403 without the scope.
pub async fn check(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let required = s.tokens.required();
    let needed = required_scope(req.method(), req.uri().path(), s.security.metrics_public);
    if !required && needed.is_some() && !from_this_machine(&req) {
        // Without tokens the server trusts loopback; a browser on this
        // machine is loopback too, so a web page (cross-origin, or through
        // DNS rebinding under a foreign host name) is refused here.
        return refuse(
            StatusCode::FORBIDDEN,
            "without [[server.tokens]] only requests to localhost from this machine are served (Host and Origin must be loopback)",
        );
    }
    if !required || needed.is_none() {
        req.extensions_mut().insert(Caller("-".into()));
        return next.run(req).await;
    }
    let needed = needed.expect("checked");
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let target = req.uri().path().to_string();
    let (status, caller, message) = match presented.and_then(|p| s.tokens.find(p)) {
        None => (StatusCode::UNAUTHORIZED, "-".to_string(), "a valid bearer token is required"),
        Some((id, scopes)) if !scopes.contains(&needed) => (StatusCode::FORBIDDEN, id, "the token lacks the scope"),
        Some((id, _)) => {
            req.extensions_mut().insert(Caller(id));
            return next.run(req).await;
        }
    };
    if needed == Scope::Admin
        && let Some(audit) = &s.audit
    {
        audit.denied(&caller, action_of(&target), &target);
    }
    // Read a small body so that the connection stays usable for the
    // client's next request; a larger one is not read, and the connection
    // is closed instead (an unauthenticated caller gets no upload for free).
    let drained = axum::body::to_bytes(req.into_body(), 64 << 10).await.is_ok();
    let mut r = refuse(status, &format!("{message} `{}`", needed.name()));
    if !drained {
        r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    r
}

/// Whether a request names a loopback host (`Host`) and, from a browser,
/// comes from a loopback page (`Origin`, `Sec-Fetch-Site`).
fn from_this_machine(req: &Request) -> bool {
    let h = req.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let host = text("host").or_else(|| req.uri().authority().map(|a| a.as_str()));
    if !host.is_some_and(loopback_authority) {
        return false;
    }
    if let Some(origin) = text("origin") {
        let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        if !authority.is_some_and(loopback_authority) {
            return false;
        }
    }
    !matches!(text("sec-fetch-site"), Some("cross-site"))
}

/// `localhost`, `127.0.0.1` or `[::1]`, with or without a port.
fn loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { authority }),
    };
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The audit action of an admin path.
pub fn action_of(path: &str) -> &'static str {
    if path.ends_with("/versions") {
        "plugin-upload"
    } else if path.ends_with("/rollback") {
        "plugin-rollback"
    } else {
        "admin"
    }
}

/// The append-only audit log: one JSON line per admin action.
///
/// Every admin action is written before it runs (`requested`) and again
/// with its result; when the first line cannot be written the action is
/// refused (fail closed). Denied requests, which anyone can send, are
/// counted in full (`weir_audit_events_total{result="denied"}`) but written
/// as a sample: a burst of `audit_denials_burst` lines (20), then
/// `audit_denials_per_second` (1), each
/// saying how many denials went unwritten before it (`suppressed`), so a
/// flood cannot fill the disk or slow the server with fsyncs.
pub struct Audit {
    file: Mutex<std::fs::File>,
    events: IntCounterVec,
    /// Which denials are written.
    denials: Mutex<weir_core::rate::TokenBucket>,
}
/// Longest target (request path) written; a longer one is cut.
const MAX_TARGET: usize = 256;

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    token: &'a str,
    action: &'a str,
    target: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<&'a str>,
    result: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed: Option<u64>,
    /// What set off an action the server took by itself (a tokens reload).
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger: Option<&'a str>,
}

impl<'a> Line<'a> {
    fn new(token: &'a str, action: &'a str, target: &'a str, result: &'a str) -> Line<'a> {
        let mut end = target.len().min(MAX_TARGET);
        while !target.is_char_boundary(end) {
            end -= 1;
        }
        Line {
            time: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            token,
            action,
            target: &target[..end],
            digest: None,
            result,
            suppressed: None,
            trigger: None,
        }
    }
}

impl Audit {
    /// `denials`: (per second, at once) of refused requests written.
    pub fn open(path: &Path, events: IntCounterVec, denials: (u32, u32)) -> std::io::Result<Audit> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("audit log `{}`: {e}", path.display())))?;
        let denials = weir_core::rate::TokenBucket::new(f64::from(denials.0), f64::from(denials.1));
        Ok(Audit { file: Mutex::new(file), events, denials: Mutex::new(denials) })
    }

    /// Appends one line, written and synced before the answer goes out.
    pub fn record(
        &self,
        token: &str,
        action: &str,
        target: &str,
        digest: Option<&str>,
        result: &str,
    ) -> std::io::Result<()> {
        self.events.with_label_values(&[action, result]).inc();
        self.write(Line { digest, ..Line::new(token, action, target, result) })
    }

    /// The server's own `tokens-reload` of `file` (whose contents hash to
    /// `digest`), set off by `trigger`.
    pub fn reloaded(&self, file: &str, digest: Option<&str>, result: &str, trigger: &str) -> std::io::Result<()> {
        self.events.with_label_values(&["tokens-reload", result]).inc();
        self.write(Line { digest, trigger: Some(trigger), ..Line::new("-", "tokens-reload", file, result) })
    }

    /// A denied admin request: counted; written if the sample allows.
    pub fn denied(&self, token: &str, action: &str, target: &str) {
        self.events.with_label_values(&[action, "denied"]).inc();
        let admitted = self.denials.lock().unwrap_or_else(|e| e.into_inner()).admit();
        let Some(suppressed) = admitted else { return };
        let line =
            Line { suppressed: (suppressed > 0).then_some(suppressed), ..Line::new(token, action, target, "denied") };
        if let Err(e) = self.write(line) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }

    fn write(&self, line: Line) -> std::io::Result<()> {
        let mut text = serde_json::to_vec(&line).expect("JSON to memory");
        text.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(&text).and_then(|()| f.sync_data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_its_scope() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(required_scope(&get, "/healthz", false), None);
        assert_eq!(required_scope(&get, "/metrics", false), Some(Scope::Read));
        assert_eq!(required_scope(&get, "/metrics", true), None);
        assert_eq!(required_scope(&get, "/readyz", true), Some(Scope::Read));
        assert_eq!(required_scope(&post, "/api/v1/ingest/devices", false), Some(Scope::Ingest));
        assert_eq!(required_scope(&get, "/api/v1/pipelines", false), Some(Scope::Read));
        assert_eq!(required_scope(&post, "/api/v1/pipelines/p/steps/s/versions", false), Some(Scope::Admin));
        assert_eq!(required_scope(&post, "/anything/else", false), Some(Scope::Admin));
    }

    #[test]
    fn only_loopback_names_count_as_this_machine() {
        for ok in ["localhost", "localhost:9464", "127.0.0.1:80", "127.0.0.2", "[::1]:9464", "LOCALHOST"] {
            assert!(loopback_authority(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9464",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[::2]",
            "10.0.0.1:80",
            "",
        ] {
            assert!(!loopback_authority(bad), "{bad}");
        }
    }
}
