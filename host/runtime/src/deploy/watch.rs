//! The watched plugins folder: a component written or renamed into it as
//! `<step>.wasm` is deployed to that step, as if uploaded.

use super::{Deployments, Origin};
use notify::{EventKind, RecursiveMode, Watcher as _};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A file is read once it has had no events for this long, so that a
/// file copied in (rather than renamed) is usually whole; one that is not
/// fails to compile and is rejected, and its next write tries again.
const SETTLE: Duration = Duration::from_millis(250);

/// Watches a folder while it lives.
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
    _thread: std::thread::JoinHandle<()>,
}

impl Watcher {
    pub fn start(dir: &Path, deployments: Arc<Deployments>) -> anyhow::Result<Watcher> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let _ = tx.send(event);
        })?;
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        let shown = dir.display().to_string();
        let thread = std::thread::Builder::new().name("deploy-watch".into()).spawn(move || {
            let mut due: HashMap<PathBuf, Instant> = HashMap::new();
            loop {
                let wait = due
                    .values()
                    .min()
                    .map_or(Duration::from_secs(3600), |t| t.saturating_duration_since(Instant::now()));
                match rx.recv_timeout(wait) {
                    Ok(Ok(event)) => {
                        if matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_)) {
                            for path in event.paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "wasm")) {
                                due.insert(path, Instant::now() + SETTLE);
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(folder = %shown, error = %e, "watching the plugins folder"),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                }
                let now = Instant::now();
                let ready: Vec<PathBuf> = due.iter().filter(|(_, t)| **t <= now).map(|(p, _)| p.clone()).collect();
                for path in ready {
                    due.remove(&path);
                    deploy_file(&deployments, &path);
                }
            }
        })?;
        tracing::info!(folder = %dir.display(), "watching for new plugin versions (<step>.wasm)");
        Ok(Watcher { _watcher: watcher, _thread: thread })
    }
}

fn deploy_file(deployments: &Deployments, path: &Path) {
    let Some(step) = path.file_stem().and_then(|s| s.to_str()) else { return };
    if deployments.step(step).is_err() {
        tracing::warn!(file = %path.display(), "no plugin step named `{step}`; file ignored");
        return;
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return tracing::warn!(file = %path.display(), error = %e, "cannot read new plugin version"),
    };
    match deployments.deploy(step, &bytes, Origin::Watch) {
        Ok(v) => tracing::info!(step, file = %path.display(), digest = %v.digest, "deployed from the watched folder"),
        Err(e) => {
            tracing::error!(step, file = %path.display(), error = %e, "deployment from the watched folder failed")
        }
    }
}
