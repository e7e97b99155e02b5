//! The HTTP server: `/healthz`, `/readyz`, `/metrics` (Prometheus text) and
//! the admin API under `/api/v1` ([`admin`]). It runs on its own small tokio
//! runtime, apart from the data path. Until authentication exists, bind it
//! to loopback (the default everywhere in the docs).

mod admin;

use crate::deploy::Deployments;
use crate::metrics::Metrics;
use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone)]
pub struct AppState {
    pub metrics: Metrics,
    pub ready: Arc<AtomicBool>,
    pub deployments: Option<Arc<Deployments>>,
    /// Whether `/api/v1` answers: only on a loopback address, until the
    /// server has authentication.
    pub admin: bool,
}

/// The routes, without a socket (tests call it with `oneshot`).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(admin::routes())
        .with_state(state)
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render())
}

/// A running server; dropping it shuts it down.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `listen` now (so a busy port is an error at start) and serves on a background thread.
    pub fn start(
        listen: &str,
        metrics: Metrics,
        ready: Arc<AtomicBool>,
        deployments: Arc<Deployments>,
    ) -> anyhow::Result<Server> {
        let std_listener =
            std::net::TcpListener::bind(listen).with_context(|| format!("cannot listen on `{listen}`"))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let admin = addr.ip().is_loopback();
        let router = app(AppState { metrics, ready, deployments: Some(deployments), admin });
        let thread = std::thread::Builder::new().name("http".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!(error = %e, "HTTP server cannot start"),
                };
                let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                    let _ = rx.await;
                });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            });
        })?;
        if !admin {
            tracing::warn!(%addr, "the admin API (/api/v1) is off: without authentication it answers only on loopback");
        }
        tracing::info!(%addr, "serving /healthz, /readyz, /metrics and /api/v1");
        Ok(Server { addr, shutdown: Some(tx), thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
