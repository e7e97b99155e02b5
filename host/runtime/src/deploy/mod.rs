//! Hot-loading: new plugin versions for a running pipeline.
//!
//! A new version is compiled, instantiated and `init`ed aside, on the
//! caller's thread (the admin API or the folder watcher); the data path
//! never waits for a compiler. If any of that fails the version is rejected
//! and the old one serves on. Otherwise the ready instance is handed to the
//! step, which swaps it in at its next batch boundary (or within
//! [`IDLE_TICK`] when no events flow): every event is processed by exactly
//! one version. The new version is then on probation: if a call fails
//! before it has processed `probation_batches` batches, the step rolls back
//! to the previous instance and re-runs that batch on it, so a broken
//! version loses nothing.

mod step;
mod store;
mod watch;

pub use step::{CircuitState, StepControl};
pub use watch::Watcher;

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use weir_core::metrics::events::{Deploy, InternalEvent};
use weir_plugin_host::{InstanceSettings, LoadedPlugin, PluginEngine, PluginInstance};

/// How long a step waits for events before it looks for a pending swap anyway.
pub const IDLE_TICK: Duration = Duration::from_millis(20);
/// How long a deployment waits for the step to take the new version.
const SWAP_WAIT: Duration = Duration::from_secs(10);

/// Every plugin step of a running pipeline, for the admin API and the watcher.
pub struct Deployments {
    pub pipeline: String,
    engine: Arc<PluginEngine>,
    steps: Vec<Arc<StepControl>>,
    /// Query steps, listed with their status but not deployable.
    queries: Vec<String>,
    running: Arc<AtomicBool>,
    /// The same steps in the other shards, by step name: every new version
    /// goes to each of them too.
    replicas: std::collections::HashMap<String, Vec<Arc<StepControl>>>,
    /// Each shard's key groups and counters, for the admin API.
    shards: Vec<(std::ops::Range<u16>, crate::pipeline::ShardMetrics)>,
}

/// One shard as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ShardView {
    pub shard: usize,
    /// The key groups it owns, `first..end`.
    pub key_groups: String,
    pub events: u64,
    pub busy_seconds: f64,
    pub queue_batches: i64,
}

/// The fewest hex digits of a version's sha256 a rollback names it by.
pub const MIN_DIGEST_PREFIX: usize = 8;

/// Why a deployment or rollback did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("no plugin step named `{0}`")]
    NoStep(String),
    #[error("{0}")]
    Rejected(String),
    #[error("no version {0} to roll back to")]
    NoVersion(String),
    /// A digest prefix too short, not hex, or matching several versions.
    #[error("{0}")]
    BadDigest(String),
    #[error("the pipeline did not take the new version within {}s; it is not running", SWAP_WAIT.as_secs())]
    NotRunning,
}

pub use store::{Record as VersionRecord, StepRecord, VersionStore};

/// Where a version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Config,
    Api,
    Watch,
    Rollback,
    /// Deployed before a restart, and run again after it (see [`VersionStore`]).
    Restored,
}

/// What became of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Serving now (on probation until `probation_batches` batches passed).
    Active,
    /// Served before; can be rolled back to.
    Inactive,
    /// Did not compile, link or init; never served.
    Rejected,
    /// Failed a call during probation; the previous version took over.
    RolledBack,
}

/// One version of a step's plugin, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    pub digest: String,
    pub origin: Origin,
    pub status: Status,
    /// When it was offered (RFC 3339, UTC).
    pub loaded_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Compile (or cache load) and pre-link time, milliseconds.
    pub compile_ms: f64,
    /// Instantiate and `init` time, milliseconds.
    pub init_ms: f64,
    /// From the upload accepted to its first batch processed, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_batch_ms: Option<f64>,
    /// How long the event flow stood still for the swap: from taking the new
    /// version at a batch boundary to its first batch done, milliseconds
    /// (absent when the swap happened while no events flowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_stall_ms: Option<f64>,
    /// Whether probation is over (always true for the first version).
    pub proven: bool,
}

impl VersionView {
    /// A version that served before this process measured anything of it.
    fn proven(digest: String, origin: Origin, status: Status, loaded_at: String) -> Self {
        VersionView {
            digest,
            origin,
            status,
            loaded_at,
            error: None,
            compile_ms: 0.0,
            init_ms: 0.0,
            first_batch_ms: None,
            swap_stall_ms: None,
            proven: true,
        }
    }
}

struct Version {
    view: VersionView,
    plugin: Option<LoadedPlugin>,
    accepted: Instant,
}

/// A version ready to swap in, waiting for the step's next batch boundary.
pub struct Pending {
    pub instance: PluginInstance,
    pub accepted: Instant,
    reply: crossbeam_channel::Sender<()>,
}

/// Tells the deployer that the step now runs the version.
pub struct Taken(crossbeam_channel::Sender<()>);

impl Taken {
    pub fn done(self) {
        let _ = self.0.send(());
    }
}

impl Pending {
    /// The instance, and the reply to send once the step runs it.
    pub fn take(self) -> (PluginInstance, Taken) {
        (self.instance, Taken(self.reply))
    }
}

fn now_rfc3339() -> String {
    chrono::DateTime::<chrono::Utc>::from(SystemTime::now()).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Deployments {
    pub fn new(
        pipeline: String,
        engine: Arc<PluginEngine>,
        steps: Vec<Arc<StepControl>>,
        queries: Vec<String>,
        running: Arc<AtomicBool>,
    ) -> Self {
        Deployments { pipeline, engine, steps, queries, running, replicas: Default::default(), shards: Vec::new() }
    }

    /// With the shards' key groups and counters.
    pub fn with_shards(mut self, shards: Vec<(std::ops::Range<u16>, crate::pipeline::ShardMetrics)>) -> Self {
        self.shards = shards;
        self
    }

    /// Each shard's key groups and counters: skew between them shows a hot key.
    pub fn shards(&self) -> Vec<ShardView> {
        self.shards
            .iter()
            .enumerate()
            .map(|(shard, (groups, m))| ShardView {
                shard,
                key_groups: format!("{}..{}", groups.start, groups.end),
                events: m.events.get(),
                busy_seconds: m.busy.get(),
                queue_batches: m.queue.get(),
            })
            .collect()
    }

    /// With the controls of the steps' copies in the other shards.
    pub fn with_replicas(mut self, replicas: std::collections::HashMap<String, Vec<Arc<StepControl>>>) -> Self {
        self.replicas = replicas;
        self
    }

    /// Offers `plugin` to `control`'s step and then to its copies in the
    /// other shards. Every copy starts the same component with the same
    /// config, so one that fails where the first did not is logged.
    fn offer_all(
        &self,
        control: &StepControl,
        plugin: LoadedPlugin,
        origin: Origin,
        accepted: Instant,
        compile_ms: f64,
    ) -> Result<VersionView, DeployError> {
        let view = control.offer(plugin.clone(), origin, accepted, compile_ms)?;
        for replica in self.replicas.get(&control.step).into_iter().flatten() {
            if let Err(e) = replica.offer(plugin.clone(), origin, accepted, compile_ms) {
                tracing::error!(step = %control.step, "a shard's copy of the step did not take the new version: {e}");
            }
        }
        Ok(view)
    }

    pub fn step(&self, name: &str) -> Result<&Arc<StepControl>, DeployError> {
        self.steps.iter().find(|s| s.step == name).ok_or_else(|| DeployError::NoStep(name.to_string()))
    }

    pub fn steps(&self) -> &[Arc<StepControl>] {
        &self.steps
    }

    pub fn queries(&self) -> &[String] {
        &self.queries
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Deploys the component `bytes` to `step`. Returns the new version's
    /// record once the step runs it; the same bytes as the active version
    /// change nothing.
    pub fn deploy(&self, step: &str, bytes: &[u8], origin: Origin) -> Result<VersionView, DeployError> {
        let accepted = Instant::now();
        let control = self.step(step)?;
        let _one = lock(&control.deploying);
        let shown = Path::new("upload").join(format!("{step}.wasm"));
        let t = Instant::now();
        let loaded = self.engine.load_bytes(&shown, bytes);
        let compile_ms = t.elapsed().as_secs_f64() * 1e3;
        let plugin = match loaded {
            Ok(p) => {
                // Kept before it can run, so that a restart finds it.
                if let Some(store) = lock(&control.store).clone()
                    && let Err(e) = store.keep(&p.digest, bytes)
                {
                    return Err(DeployError::Rejected(format!(
                        "the version cannot be kept for restarts ({e}); it was not deployed"
                    )));
                }
                p
            }
            Err(e) => {
                let view = VersionView {
                    digest: weir_plugin_host::digest(bytes),
                    origin,
                    status: Status::Rejected,
                    loaded_at: now_rfc3339(),
                    error: Some(e.to_string()),
                    compile_ms,
                    init_ms: 0.0,
                    first_batch_ms: None,
                    swap_stall_ms: None,
                    proven: false,
                };
                control.record(view, None, accepted);
                return Err(DeployError::Rejected(e.to_string()));
            }
        };
        if control.active().as_deref() == Some(&*plugin.digest) {
            let versions = control.versions();
            return Ok(versions.into_iter().rev().find(|v| v.status == Status::Active).expect("active"));
        }
        self.offer_all(control, plugin, origin, accepted, compile_ms)
    }

    /// Rolls `step` back to version `digest` (a prefix of at least
    /// [`MIN_DIGEST_PREFIX`] hex digits that names one version will do), or,
    /// without one, to the version that served before the active one.
    pub fn rollback(&self, step: &str, digest: Option<&str>) -> Result<VersionView, DeployError> {
        let accepted = Instant::now();
        let control = self.step(step)?;
        let _one = lock(&control.deploying);
        let digest = digest.map(|d| d.trim().to_ascii_lowercase());
        if let Some(d) = &digest
            && (d.len() < MIN_DIGEST_PREFIX || !d.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(DeployError::BadDigest(format!(
                "`{d}` is not a version: give at least {MIN_DIGEST_PREFIX} hex digits of its sha256"
            )));
        }
        let plugin = {
            let versions = lock(&control.versions);
            if let Some(d) = &digest {
                unique(d, versions.iter().filter(|v| v.plugin.is_some()).map(|v| v.view.digest.as_str()))?;
            }
            let active = versions.iter().rposition(|v| v.view.status == Status::Active);
            let candidate = versions.iter().enumerate().rev().find(|(i, v)| match &digest {
                Some(d) => v.view.digest.starts_with(d.as_str()) && v.plugin.is_some(),
                None => Some(*i) != active && v.view.status == Status::Inactive && v.plugin.is_some(),
            });
            match candidate {
                Some((_, v)) => v.plugin.clone().expect("checked"),
                None => {
                    return Err(DeployError::NoVersion(digest.unwrap_or_else(|| "before the active one".to_string())));
                }
            }
        };
        self.offer_all(control, plugin, Origin::Rollback, accepted, 0.0)
    }
}

/// Refuses a digest prefix that names more than one of `digests`.
fn unique<'a>(prefix: &str, digests: impl Iterator<Item = &'a str>) -> Result<(), DeployError> {
    let mut matching: Vec<&str> = digests.filter(|d| d.starts_with(prefix)).collect();
    matching.sort_unstable();
    matching.dedup();
    if matching.len() > 1 {
        return Err(DeployError::BadDigest(format!(
            "`{prefix}` matches {} versions ({}): give more of the digest",
            matching.len(),
            matching.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_prefix_must_name_one_version() {
        let digests = ["abcdef0011", "abcdef0022", "abcdef0011", "99"];
        assert!(super::unique("abcdef00", digests.into_iter()).unwrap_err().to_string().contains("matches 2 versions"));
        assert!(super::unique("abcdef001", digests.into_iter()).is_ok(), "the same version twice is one version");
        assert!(super::unique("abcdef003", digests.into_iter()).is_ok());
    }
}
