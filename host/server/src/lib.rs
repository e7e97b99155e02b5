//! weir-server: the HTTP server. It may depend on `weir-core`,
//! `weir-config` and `weir-runtime`.
//!
//! The HTTP server: `/healthz`, `/readyz`, `/metrics` (Prometheus text), the
//! admin API under `/api/v1` ([`admin`]) and HTTP ingestion ([`ingest`]),
//! behind bearer-token scopes ([`auth`]), over HTTPS (rustls) or plain HTTP.
//! It runs on its own small tokio runtime, apart from the data path.
//!
//! Plain HTTP is served only on loopback unless `allow_plaintext` says
//! otherwise, and a server without tokens only on loopback (and only to
//! loopback `Host` names and origins). What one client can hold —
//! connections, header and body time — is bounded in [`limits`].

mod admin;
mod auth;
mod ingest;
pub mod limits;
pub mod tokens;

pub use auth::{Audit, Caller};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use weir_config::ServerSpec;
use weir_core::ingest::{IngestEndpoint, IngestOutcome};
use weir_core::metrics::Metrics;
use weir_runtime::deploy::Deployments;
use weir_runtime::pipeline::ServerParts;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Metrics,
    pub ready: Arc<AtomicBool>,
    pub deployments: Option<Arc<Deployments>>,
    /// HTTP sources by name.
    pub ingest: Arc<HashMap<String, Arc<dyn IngestEndpoint>>>,
    pub security: Arc<ServerSpec>,
    /// The tokens accepted now (the tokens file's change while serving).
    pub tokens: Arc<tokens::Tokens>,
    pub audit: Option<Arc<Audit>>,
}

impl AppState {
    fn ingest_requests(&self, source: &str, outcome: &IngestOutcome) {
        self.metrics.ingest_request(source, outcome.label());
    }
}

/// The routes, without a socket (tests call it with `oneshot`).
pub fn app(state: AppState) -> Router {
    let max_body = state.ingest.values().map(|i| i.max_body()).max().unwrap_or(0);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/ingest/{source}",
            axum::routing::post(ingest::ingest).layer(axum::extract::DefaultBodyLimit::max(max_body.max(1))),
        )
        .merge(admin::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::check))
        .layer(axum::middleware::from_fn_with_state(
            limits::BodyDeadline {
                timeout: state.security.limits.body_timeout,
                metrics: state.metrics.family::<limits::HttpMetrics>(),
            },
            limits::body_deadline,
        ))
        .with_state(state)
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if !s.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string());
    }
    let failing = s.metrics.health().failing();
    if failing.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", failing.join(", ")))
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render())
}

/// A running server; dropping it shuts it down.
pub struct Server {
    pub addr: SocketAddr,
    handle: axum_server::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `listen` now (so a busy port is an error at start), checks the
    /// security settings against the address, and serves on a background thread.
    pub fn start(listen: &str, parts: ServerParts) -> anyhow::Result<Server> {
        let std_listener = limits::bind(listen).with_context(|| format!("cannot listen on `{listen}`"))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let sec = &parts.security;
        if !addr.ip().is_loopback() {
            anyhow::ensure!(
                !sec.tokens.is_empty() || sec.tokens_file.is_some(),
                "the server listens on {addr}, beyond loopback, so it needs [[server.tokens]] or a tokens_file (bearer tokens with scopes); \
                 or listen on 127.0.0.1"
            );
            anyhow::ensure!(
                sec.tls.is_some() || sec.allow_plaintext,
                "the server listens on {addr}, beyond loopback, without [server.tls]; give a certificate and key, \
                 or set allow_plaintext = true to serve plain HTTP there on purpose"
            );
        }
        limits::reserve_descriptors(sec.limits.max_connections)?;
        let audit = match &sec.audit_log {
            Some(path) => Some(Arc::new(Audit::open(path, parts.metrics.audit_events(), sec.limits.audit_denials)?)),
            None => None,
        };
        let tokens = Arc::new(tokens::Tokens::new(sec, &parts.metrics.health())?);
        let tls = match &sec.tls {
            Some((cert, key)) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let cert_pem = std::fs::read(cert).with_context(|| format!("cannot read `{}`", cert.display()))?;
                let key_pem = std::fs::read(key).with_context(|| format!("cannot read `{}`", key.display()))?;
                Some((cert_pem, key_pem))
            }
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let tls = match tls {
            Some((cert, key)) => Some(
                runtime
                    .block_on(axum_server::tls_rustls::RustlsConfig::from_pem(cert, key))
                    .context("the TLS certificate or key cannot be used")?,
            ),
            None => None,
        };
        let (parts_limits, http_metrics) = (parts.security.limits, parts.metrics.family::<limits::HttpMetrics>());
        let router = app(AppState {
            metrics: parts.metrics,
            ready: parts.ready,
            deployments: Some(parts.deployments),
            ingest: Arc::new(parts.ingest),
            security: Arc::new(parts.security),
            tokens: tokens.clone(),
            audit: audit.clone(),
        });
        let limits = parts_limits;
        let limit = limits::Limit::new(limits.max_connections, limits.header_timeout, http_metrics);
        let handle = axum_server::Handle::new();
        let serve_handle = handle.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let thread = std::thread::Builder::new().name("http".into()).spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(tokens::watch(tokens, audit));
                let service = router.into_make_service();
                // Headers (and the wait for the next request on a kept-alive
                // connection) within header_timeout.
                let configure = |server: &mut axum_server::Server| {
                    server
                        .http_builder()
                        .http1()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(limits.header_timeout);
                };
                let served = match tls {
                    Some(config) => {
                        let mut server = axum_server::from_tcp(std_listener);
                        configure(&mut server);
                        let tls = axum_server::tls_rustls::RustlsAcceptor::new(config)
                            .handshake_timeout(limits.header_timeout)
                            .acceptor(limit);
                        server.acceptor(tls).handle(serve_handle).serve(service).await
                    }
                    None => {
                        let mut server = axum_server::from_tcp(std_listener);
                        configure(&mut server);
                        server.acceptor(limit).handle(serve_handle).serve(service).await
                    }
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            });
        })?;
        tracing::info!(%addr, scheme, "serving /healthz, /readyz, /metrics and /api/v1");
        Ok(Server { addr, handle, thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.graceful_shutdown(Some(std::time::Duration::from_secs(1)));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
