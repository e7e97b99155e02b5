//! Models named in the pipeline file, each with its current version, and a
//! thread that reloads a model when its file changes.

use super::runtime;
use super::signature::Signature;
use ort::environment::Environment;
use ort::session::Session;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};
use weir_core::metrics::ModelMetrics;
use weir_core::metrics::events::{InternalEvent, ModelReload};

pub use weir_config::ModelSpec;

/// One loaded version of a model file.
#[derive(Debug)]
pub struct ModelVersion {
    /// sha256 of the file, hex: the version shown in metrics and outputs.
    pub digest: String,
    pub bytes: Arc<[u8]>,
    pub signature: Signature,
    /// The session that checked this version at load, handed to the first
    /// instance that needs one, so it is not built twice (and after a reload
    /// not on a worker's hot path).
    spare: Mutex<Option<Session>>,
}

/// A model and its current version.
pub struct Model {
    pub name: String,
    path: PathBuf,
    threads: usize,
    env: Environment,
    current: RwLock<Arc<ModelVersion>>,
    /// Bumped at every swap, so sessions notice with one atomic load.
    generation: AtomicU64,
    pub(super) metrics: ModelMetrics,
}

impl Model {
    pub fn current(&self) -> Arc<ModelVersion> {
        self.current.read().expect("model lock").clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A new session for `version` (one per model per plugin instance:
    /// ONNX Runtime sessions run one call at a time).
    pub fn session(&self, version: &ModelVersion) -> Result<Session, String> {
        match version.spare.lock().expect("spare session lock").take() {
            Some(s) => Ok(s),
            None => session(&self.env, &version.bytes, self.threads),
        }
    }

    /// Reads and checks the file; the error says why it cannot serve.
    fn read_version(&self) -> Result<ModelVersion, String> {
        read_version(&self.env, &self.path, self.threads)
    }

    /// Swaps in the file's contents if they differ from the current version
    /// and load; otherwise the current version keeps serving.
    fn reload(&self) {
        let old = self.current();
        let new = match self.read_version() {
            Ok(v) if v.digest == old.digest => return,
            Ok(v) if v.signature != old.signature => Err(format!(
                "its inputs and outputs changed from {} to {}; a reload must keep them (restart the pipeline to change them)",
                old.signature, v.signature
            )),
            other => other,
        };
        match new {
            Ok(v) => {
                let (metrics, model) = (&self.metrics, &*self.name);
                ModelReload::Swapped { metrics, model, from: &old.digest, to: &v.digest }.emit();
                *self.current.write().expect("model lock") = Arc::new(v);
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) => {
                let (metrics, model, path) = (&self.metrics, &*self.name, &*self.path);
                ModelReload::Failed { metrics, model, path, error: &e }.emit();
            }
        }
    }
}

fn session(env: &Environment, bytes: &[u8], threads: usize) -> Result<Session, String> {
    let builder = Session::builder(env).map_err(|e| e.to_string())?;
    let builder = builder.with_intra_threads(threads).map_err(|e| e.to_string())?;
    // The cores are shared with the pipeline's own threads: no busy-waiting.
    let mut builder = builder.with_config_entry("session.intra_op.allow_spinning", "0").map_err(|e| e.to_string())?;
    builder.commit_from_memory(bytes).map_err(|e| e.to_string())
}

fn read_version(env: &Environment, path: &Path, threads: usize) -> Result<ModelVersion, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let s = session(env, &bytes, threads)
        .map_err(|e| format!("`{}` is not a model ONNX Runtime can load: {e}", path.display()))?;
    let signature = Signature::of(&s).map_err(|e| format!("`{}`: {e}", path.display()))?;
    Ok(ModelVersion {
        digest: hex::encode(Sha256::digest(&bytes)),
        bytes: bytes.into(),
        signature,
        spare: Mutex::new(Some(s)),
    })
}

/// Every model of a pipeline.
pub struct ModelRegistry {
    models: BTreeMap<String, Arc<Model>>,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

impl ModelRegistry {
    /// Loads every model (a missing or broken file is an error naming the
    /// model and the file) and starts watching the files.
    pub fn load(specs: &[ModelSpec], library: Option<&Path>, metrics: ModelMetrics) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        if specs.is_empty() {
            return Ok(ModelRegistry { models: BTreeMap::new(), stop, watcher: None });
        }
        let env = runtime::library_path(library).and_then(|p| runtime::environment(&p)).map_err(anyhow::Error::msg)?;
        let mut models = BTreeMap::new();
        let mut watched = Vec::new();
        for s in specs {
            let version =
                read_version(&env, &s.path, s.threads).map_err(|e| anyhow::anyhow!("model `{}`: {e}", s.name))?;
            tracing::info!(model = %s.name, version = %version.digest, signature = %version.signature, "model loaded");
            metrics.loaded(&s.name, &version.digest);
            let model = Arc::new(Model {
                name: s.name.clone(),
                path: s.path.clone(),
                threads: s.threads,
                env: env.clone(),
                current: RwLock::new(Arc::new(version)),
                generation: AtomicU64::new(0),
                metrics: metrics.clone(),
            });
            if let Some(every) = s.reload_check {
                watched.push((model.clone(), every, stamp(&s.path), SystemTime::now()));
            }
            models.insert(s.name.clone(), model);
        }
        let watcher = (!watched.is_empty()).then(|| spawn_watcher(watched, stop.clone()));
        Ok(ModelRegistry { models, stop, watcher })
    }

    pub fn get(&self, name: &str) -> Option<Arc<Model>> {
        self.models.get(name).cloned()
    }
}

impl Drop for ModelRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watcher.take() {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}

/// What tells a changed file: modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Polls each watched file at its interval. Polling (not inotify) sees a
/// file replaced by rename and works on every file system.
fn spawn_watcher(mut watched: Vec<(Arc<Model>, Duration, Stamp, SystemTime)>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let tick = watched.iter().map(|w| w.1).min().unwrap_or(Duration::from_secs(1)).min(Duration::from_millis(250));
    std::thread::Builder::new()
        .name("model-watch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(tick);
                let now = SystemTime::now();
                for (model, every, last, checked) in &mut watched {
                    if now.duration_since(*checked).unwrap_or_default() < *every {
                        continue;
                    }
                    *checked = now;
                    let current = stamp(&model.path);
                    if current != *last {
                        *last = current;
                        model.reload();
                    }
                }
            }
        })
        .expect("spawning the model watcher")
}
