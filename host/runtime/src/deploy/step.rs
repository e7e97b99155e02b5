//! One plugin step's deployment control: its versions, the instance
//! waiting to be swapped in, probation and rollback, the circuit state the
//! admin API shows, and where the running version is kept for restarts.

use super::*;

/// The control side of one plugin step, shared by the step (on the worker
/// thread) and whoever deploys.
pub struct StepControl {
    pub step: String,
    settings: InstanceSettings,
    pub probation_batches: u32,
    pub(super) versions: Mutex<Vec<Version>>,
    pending: Mutex<Option<Pending>>,
    has_pending: AtomicBool,
    /// One deployment at a time per step.
    pub(super) deploying: Mutex<()>,
    circuit: Arc<AtomicU8>,
    rejected: prometheus::IntCounter,
    /// Where the running version is recorded for restarts, if anywhere.
    pub(super) store: Mutex<Option<Arc<VersionStore>>>,
}

/// The circuit breaker's state, as shown by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CircuitState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl StepControl {
    /// The control of a step whose first instance (from the pipeline file) is `first`.
    pub fn new(
        first: &PluginInstance,
        settings: InstanceSettings,
        probation_batches: u32,
        rejected: prometheus::IntCounter,
    ) -> Arc<Self> {
        let view = VersionView::proven(first.digest().to_string(), Origin::Config, Status::Active, now_rfc3339());
        let version = Version { view, plugin: Some(first.plugin().clone()), accepted: Instant::now() };
        Arc::new(StepControl {
            step: settings.step.clone(),
            settings,
            probation_batches,
            versions: Mutex::new(vec![version]),
            pending: Mutex::new(None),
            has_pending: AtomicBool::new(false),
            deploying: Mutex::new(()),
            circuit: Arc::new(AtomicU8::new(0)),
            rejected,
            store: Mutex::new(None),
        })
    }

    /// Records the running version in `store` from now on; `record` is what
    /// it held for this step when the run began (its history is shown
    /// again), and `restored` says that the first version came from it.
    pub fn keep_in(
        &self,
        store: Arc<VersionStore>,
        record: Option<&StepRecord>,
        restored: bool,
        engine: &PluginEngine,
    ) {
        {
            let mut versions = lock(&self.versions);
            if restored && let Some(first) = versions.last_mut() {
                first.view.origin = Origin::Restored;
            }
            let current = versions.last().map(|v| v.view.digest.clone()).unwrap_or_default();
            let mut earlier = Vec::new();
            for kept in record.map(|r| r.history.as_slice()).unwrap_or_default() {
                if kept.digest == current && kept.status == Status::Active {
                    continue;
                }
                let path = store.path_of(&kept.digest);
                let plugin = path.is_file().then(|| engine.load(&path).ok()).flatten();
                let status = if kept.status == Status::Active { Status::Inactive } else { kept.status };
                let view = VersionView::proven(kept.digest.clone(), kept.origin, status, kept.loaded_at.clone());
                earlier.push(Version { view, plugin, accepted: Instant::now() });
            }
            versions.splice(0..0, earlier);
        }
        *lock(&self.store) = Some(store);
        // A step never deployed to leaves nothing to record.
        if record.is_some() {
            self.persist();
        }
    }

    /// Writes the running version and the history to the store, if any.
    fn persist(&self) {
        let Some(store) = lock(&self.store).clone() else { return };
        let record = {
            let versions = lock(&self.versions);
            let history: Vec<store::Kept> = versions
                .iter()
                .filter(|v| v.view.status != Status::Rejected)
                .map(|v| store::Kept {
                    digest: v.view.digest.clone(),
                    origin: v.view.origin,
                    status: v.view.status,
                    loaded_at: v.view.loaded_at.clone(),
                })
                .collect();
            let active = versions.iter().rev().find(|v| v.view.status == Status::Active);
            StepRecord { active: active.map(|v| v.view.digest.clone()).unwrap_or_default(), history }
        };
        if let Err(e) = store.write_step(&self.step, record) {
            tracing::error!(step = %self.step, error = %e, "cannot record the running plugin version; a restart may run an older one");
        }
    }

    /// A version waiting to be swapped in, if any; one atomic load when none.
    pub fn take_pending(&self) -> Option<Pending> {
        if !self.has_pending.load(Ordering::Acquire) {
            return None;
        }
        self.has_pending.store(false, Ordering::Release);
        lock(&self.pending).take()
    }

    /// The step now runs `digest` (probation starts).
    pub fn activated(&self, digest: &str) {
        {
            let mut versions = lock(&self.versions);
            let newest = versions.iter().rposition(|v| v.view.digest == digest);
            for (i, v) in versions.iter_mut().enumerate() {
                if Some(i) == newest {
                    v.view.status = Status::Active;
                } else if v.view.status == Status::Active {
                    v.view.status = Status::Inactive;
                }
            }
        }
        self.persist();
    }

    /// `digest` processed its first batch; `stall` is how long the flow
    /// stood still for the swap, if it happened at a batch boundary.
    pub fn first_batch(&self, digest: &str, stall: Option<Duration>) {
        if let Some(v) = lock(&self.versions).iter_mut().rev().find(|v| v.view.digest == digest) {
            v.view.first_batch_ms.get_or_insert(v.accepted.elapsed().as_secs_f64() * 1e3);
            v.view.swap_stall_ms = stall.map(|d| d.as_secs_f64() * 1e3);
        }
    }

    /// `digest` passed probation.
    pub fn proven(&self, digest: &str) {
        if let Some(v) = lock(&self.versions).iter_mut().rev().find(|v| v.view.digest == digest) {
            v.view.proven = true;
        }
    }

    /// `failed` failed during probation with `error`; `back` serves again.
    pub fn rolled_back(&self, failed: &str, back: &str, error: &str) {
        {
            let mut versions = lock(&self.versions);
            if let Some(v) = versions.iter_mut().rev().find(|v| v.view.digest == failed) {
                v.view.status = Status::RolledBack;
                v.view.error = Some(error.to_string());
            }
            if let Some(v) = versions.iter_mut().rev().find(|v| v.view.digest == back) {
                v.view.status = Status::Active;
            }
        }
        self.persist();
    }

    /// The cell the step's circuit breaker writes its state to.
    pub fn circuit_cell(&self) -> Arc<AtomicU8> {
        self.circuit.clone()
    }

    pub fn circuit(&self) -> CircuitState {
        match self.circuit.load(Ordering::Relaxed) {
            1 => CircuitState::Open,
            2 => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }

    pub fn versions(&self) -> Vec<VersionView> {
        lock(&self.versions).iter().map(|v| v.view.clone()).collect()
    }

    pub fn active(&self) -> Option<String> {
        lock(&self.versions).iter().rev().find(|v| v.view.status == Status::Active).map(|v| v.view.digest.clone())
    }

    pub(super) fn record(&self, view: VersionView, plugin: Option<LoadedPlugin>, accepted: Instant) {
        if view.status == Status::Rejected {
            let error = view.error.as_deref().unwrap_or_default();
            Deploy::Rejected { counter: &self.rejected, step: &self.step, error }.emit();
        }
        lock(&self.versions).push(Version { view, plugin, accepted });
    }

    /// Starts `plugin` aside, hands it to the step and waits until the step
    /// runs it. `compile_ms` is what loading it cost the caller.
    pub(super) fn offer(
        &self,
        plugin: LoadedPlugin,
        origin: Origin,
        accepted: Instant,
        compile_ms: f64,
    ) -> Result<VersionView, DeployError> {
        let digest = plugin.digest.to_string();
        let t = Instant::now();
        let started = PluginInstance::start(plugin.clone(), self.settings.clone());
        let init_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut view = VersionView {
            digest: digest.clone(),
            origin,
            status: Status::Inactive,
            loaded_at: now_rfc3339(),
            error: None,
            compile_ms,
            init_ms,
            first_batch_ms: None,
            swap_stall_ms: None,
            proven: false,
        };
        let instance = match started {
            Ok(i) => i,
            Err(e) => {
                view.status = Status::Rejected;
                view.error = Some(e.to_string());
                self.record(view, None, accepted);
                return Err(DeployError::Rejected(e.to_string()));
            }
        };
        self.record(view, Some(plugin), accepted);
        let (reply, taken) = crossbeam_channel::bounded(1);
        *lock(&self.pending) = Some(Pending { instance, accepted, reply });
        self.has_pending.store(true, Ordering::Release);
        if taken.recv_timeout(SWAP_WAIT).is_err() {
            // Withdraw it, unless the step took it at the last moment.
            self.has_pending.store(false, Ordering::Release);
            if lock(&self.pending).take().is_some() {
                return Err(DeployError::NotRunning);
            }
        }
        tracing::info!(step = %self.step, %digest, ?origin, "plugin version activated");
        let versions = lock(&self.versions);
        Ok(versions.iter().rev().find(|v| v.view.digest == digest).map(|v| v.view.clone()).expect("recorded above"))
    }
}
