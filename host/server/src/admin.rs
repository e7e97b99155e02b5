//! The admin API, `/api/v1`: the pipeline and its steps, plugin versions,
//! uploads and rollbacks. Answers are JSON; errors are `{"error": "..."}`.

use super::{AppState, Caller};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_runtime::deploy::{CircuitState, DeployError, Deployments, Origin, VersionView};

/// Largest component an upload may carry (Python components are ~40 MB).
const MAX_UPLOAD: usize = 256 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/pipelines", get(pipelines))
        .route("/api/v1/pipelines/{pipeline}", get(pipeline))
        .route(
            "/api/v1/pipelines/{pipeline}/steps/{step}/versions",
            get(versions).post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/api/v1/pipelines/{pipeline}/steps/{step}/rollback", post(rollback))
}

#[derive(Serialize)]
struct PipelineView {
    name: String,
    status: &'static str,
    steps: Vec<StepView>,
    /// Per shard: key groups, events, busy time, queue depth.
    shards: Vec<weir_runtime::deploy::ShardView>,
}

#[derive(Serialize)]
struct StepView {
    name: String,
    kind: &'static str,
    /// running, or degraded while the circuit is not closed.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit: Option<CircuitState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    versions: Option<usize>,
}

fn view(d: &Deployments) -> PipelineView {
    let running = d.is_running();
    let mut steps: Vec<StepView> = d
        .steps()
        .iter()
        .map(|c| {
            let circuit = c.circuit();
            StepView {
                name: c.step.clone(),
                kind: "plugin",
                status: match (running, circuit) {
                    (false, _) => "stopped",
                    (true, CircuitState::Closed) => "running",
                    (true, _) => "degraded",
                },
                version: c.active(),
                circuit: Some(circuit),
                versions: Some(c.versions().len()),
            }
        })
        .collect();
    steps.extend(d.queries().iter().map(|q| StepView {
        name: q.clone(),
        kind: "query",
        status: if running { "running" } else { "stopped" },
        version: None,
        circuit: None,
        versions: None,
    }));
    PipelineView {
        name: d.pipeline.clone(),
        status: if running { "running" } else { "stopped" },
        steps,
        shards: d.shards(),
    }
}

fn error(status: StatusCode, message: impl ToString) -> Response {
    (status, Json(serde_json::json!({ "error": message.to_string() }))).into_response()
}

fn deployments(s: &AppState, pipeline: &str) -> Result<Arc<Deployments>, Box<Response>> {
    match &s.deployments {
        Some(d) if d.pipeline == pipeline => Ok(d.clone()),
        _ => Err(Box::new(error(StatusCode::NOT_FOUND, format!("no pipeline named `{pipeline}`")))),
    }
}

async fn pipelines(State(s): State<AppState>) -> Response {
    let list: Vec<PipelineView> = s.deployments.iter().map(|d| view(d)).collect();
    Json(serde_json::json!({ "pipelines": list })).into_response()
}

async fn pipeline(State(s): State<AppState>, Path(p): Path<String>) -> Response {
    match deployments(&s, &p) {
        Ok(d) => Json(view(&d)).into_response(),
        Err(r) => *r,
    }
}

async fn versions(State(s): State<AppState>, Path((p, step)): Path<(String, String)>) -> Response {
    let d = match deployments(&s, &p) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    match d.step(&step) {
        Ok(c) => Json(serde_json::json!({ "step": step, "versions": c.versions() })).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

fn answer(result: Result<VersionView, DeployError>, ok: StatusCode) -> Response {
    match result {
        Ok(v) => (ok, Json(v)).into_response(),
        Err(e @ (DeployError::NoStep(_) | DeployError::NoVersion(_))) => error(StatusCode::NOT_FOUND, e),
        Err(e @ DeployError::BadDigest(_)) => error(StatusCode::BAD_REQUEST, e),
        Err(e @ DeployError::Rejected(_)) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Err(e @ DeployError::NotRunning) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Runs an admin action (blocking: it compiles and waits for the swap) off
/// the async workers, writes its audit line, and answers.
async fn admin_action(
    s: &AppState,
    caller: &Caller,
    action: &str,
    target: &str,
    ok: StatusCode,
    run: impl FnOnce() -> Result<VersionView, DeployError> + Send + 'static,
) -> Response {
    // Fail closed: no admin action runs unless the audit log took its line.
    if let Some(audit) = &s.audit
        && let Err(e) = audit.record(&caller.0, action, target, None, "requested")
    {
        tracing::error!(error = %e, action, target, "the audit log cannot be written: the admin action is refused");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the audit log cannot be written ({e}); admin actions are refused until it can"),
        );
    }
    // The outcome is written where the action runs, so that a client that
    // hangs up meanwhile cannot leave an action without its line.
    let (audit, who, act, what) = (s.audit.clone(), caller.0.clone(), action.to_string(), target.to_string());
    let result = match tokio::task::spawn_blocking(move || {
        let result = run();
        if let Some(audit) = &audit {
            let (digest, outcome) = match &result {
                Ok(v) => (Some(v.digest.as_str()), "ok"),
                Err(DeployError::Rejected(_)) => (None, "rejected"),
                Err(_) => (None, "failed"),
            };
            if let Err(e) = audit.record(&who, &act, &what, digest, outcome) {
                tracing::error!(error = %e, action = %act, target = %what, outcome,
                    "the audit log cannot be written after an admin action");
            }
        }
        result
    })
    .await
    {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    answer(result, ok)
}

/// `POST .../versions` with the component's bytes as the body.
async fn upload(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((p, step)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let target = format!("{p}/{step}");
    let d = match deployments(&s, &p) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the body must be the component's bytes (.wasm)");
    }
    admin_action(&s, &caller, "plugin-upload", &target, StatusCode::CREATED, move || {
        d.deploy(&step, &body, Origin::Api)
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    /// The version (sha256, or a prefix of at least 8 hex digits naming one version); default: the one before the active one.
    to: Option<String>,
}

/// `POST .../rollback`, with an optional `{"to": "<sha256 prefix>"}` body.
async fn rollback(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((p, step)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let target = format!("{p}/{step}");
    let d = match deployments(&s, &p) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let req: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
        }
    };
    admin_action(&s, &caller, "plugin-rollback", &target, StatusCode::OK, move || d.rollback(&step, req.to.as_deref()))
        .await
}
