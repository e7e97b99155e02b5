//! One plugin instance: a Store with a memory cap, calls with a deadline,
//! and a fresh instance after any failed call.

use super::PluginError;
use super::bindings::{Batch, Outcomes, Processor};
use super::engine::{EPOCH_TICK, LoadedPlugin};
use super::host_api::HostApi;
use super::stdio::CapturedOutput;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use weir_config::{Grants, Limits};
use weir_core::metrics::PluginApiMetrics;
use weir_models::{Model, ModelSessions};

/// What an instance needs besides its component.
#[derive(Clone)]
pub struct InstanceSettings {
    pub step: String,
    pub config: String,
    pub limits: Limits,
    pub grants: Grants,
    pub metrics: PluginApiMetrics,
    /// Models the plugin may call with `infer`.
    pub models: Vec<Arc<Model>>,
    /// The step's keyed state (`weir:plugin/state`), shared by its instances.
    pub state: Option<Arc<super::state::KeyedState>>,
}

/// The data of one Store.
pub struct StoreData {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    pub(super) api: HostApi,
    pub(super) models: ModelSessions,
    pub(super) state: super::state::StateCall,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps the sum of all linear memories of an instance and remembers that the
/// cap was hit (a refused grow is an error, not a `Trap`, so it must be told apart).
struct MemoryCap {
    cap: usize,
    used: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let after = self.used - current.min(self.used) + desired;
        if after > self.cap {
            self.hit = true;
            wasmtime::bail!(
                "memory cap of {} exceeded (the plugin asked for {} in all)",
                human(self.cap),
                human(after)
            );
        }
        self.used = after;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

fn human(bytes: usize) -> String {
    bytesize::ByteSize::b(bytes as u64).display().iec().to_string()
}

/// Why a call failed; each kind is a dead-letter reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The guest trapped (panic, unreachable, out-of-bounds access, ...).
    Trap,
    /// The call ran past its deadline and was interrupted.
    Deadline,
    /// The guest tried to grow its memory past the cap.
    Memory,
    /// The guest returned outcomes that do not describe the batch.
    InvalidOutput,
    /// No instance could be started (its `init` failed after a restart).
    Unavailable,
    /// The guest emitted more events or bytes than its limits allow.
    OutputLimit,
    /// A `put` would have passed the step's keyed-state quota.
    StateQuota,
}

impl FailureKind {
    pub fn reason(self) -> &'static str {
        match self {
            FailureKind::Trap => "plugin-trap",
            FailureKind::Deadline => "plugin-deadline",
            FailureKind::Memory => "plugin-memory",
            FailureKind::InvalidOutput => "plugin-invalid-output",
            FailureKind::Unavailable => "plugin-unavailable",
            FailureKind::OutputLimit => "plugin-output-limit",
            FailureKind::StateQuota => "plugin-state-quota",
        }
    }
}

/// A failed call: its whole batch goes to the dead-letter output.
#[derive(Debug, Clone)]
pub struct CallFailure {
    pub kind: FailureKind,
    pub message: String,
}

/// A live instance of a plugin for one step of one worker.
pub struct PluginInstance {
    plugin: LoadedPlugin,
    settings: InstanceSettings,
    live: Option<Live>,
    deadline_ticks: u64,
}

struct Live {
    store: Store<StoreData>,
    processor: Processor,
}

impl PluginInstance {
    /// Instantiates `plugin` and runs its `init` with the step's config.
    pub fn start(plugin: LoadedPlugin, settings: InstanceSettings) -> Result<Self, PluginError> {
        let deadline_ticks = (settings.limits.deadline.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64 + 1;
        let mut instance = PluginInstance { plugin, settings, live: None, deadline_ticks };
        instance.live = Some(instance.instantiate()?);
        Ok(instance)
    }

    pub fn digest(&self) -> &str {
        &self.plugin.digest
    }

    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }

    /// The sandbox's WASI context: nothing but what the step grants.
    fn wasi(&self) -> Result<WasiCtx, PluginError> {
        let s = &self.settings;
        let step: Arc<str> = s.step.as_str().into();
        let sandbox = &s.metrics.sandbox;
        let mut b = WasiCtx::builder();
        let limits = &self.settings.limits;
        b.stdout(CapturedOutput::new(step.clone(), "stdout", sandbox.stdout.clone(), limits));
        b.stderr(CapturedOutput::new(step.clone(), "stderr", sandbox.stderr.clone(), limits));
        // Sockets: the linker refuses to create any (see `deny_sockets`),
        // and no address would pass the default check either.
        if let Some(dir) = &s.grants.read_dir {
            b.preopened_dir(dir, "/data", wasmtime_wasi::FsPerms::ReadOnly)
                .map_err(|e| PluginError::Start(format!("cannot grant read access to `{}`: {e}", dir.display())))?;
        }
        for name in &s.grants.env {
            if let Ok(value) = std::env::var(name) {
                b.env(name, value);
            }
        }
        if !s.grants.wall_clock {
            b.wall_clock(EpochClock);
        }
        Ok(b.build())
    }

    fn instantiate(&self) -> Result<Live, PluginError> {
        let engine = self.plugin.pre.engine();
        let data = StoreData {
            wasi: self.wasi()?,
            table: ResourceTable::new(),
            limiter: MemoryCap { cap: self.settings.limits.memory.as_u64() as usize, used: 0, hit: false },
            api: HostApi::new(
                self.settings.step.clone(),
                self.settings.metrics.clone_for_instance(),
                &self.settings.limits,
            ),
            models: ModelSessions::new(&self.settings.step, &self.settings.models),
            state: super::state::StateCall::new(self.settings.state.clone()),
        };
        let mut store = Store::new(engine, data);
        store.limiter(|d| &mut d.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks);
        let processor =
            self.plugin.pre.instantiate(&mut store).map_err(|e| start_failure(&store, "instantiate", &e))?;
        store.set_epoch_deadline(self.deadline_ticks);
        match processor.call_init(&mut store, &self.settings.config) {
            Ok(Ok(())) => Ok(Live { store, processor }),
            Ok(Err(message)) => Err(PluginError::Init(message)),
            Err(e) => Err(start_failure(&store, "init", &e)),
        }
    }

    /// Runs `process` on a batch. The batch's buffers are lent to the call and
    /// handed back unchanged. On failure the instance is replaced before returning.
    pub fn process(
        &mut self,
        payloads: &mut Vec<u8>,
        ends: &mut Vec<u32>,
        timestamps: &mut Vec<i64>,
    ) -> Result<Outcomes, CallFailure> {
        if self.live.is_none() {
            match self.instantiate() {
                Ok(live) => self.live = Some(live),
                Err(e) => return Err(CallFailure { kind: FailureKind::Unavailable, message: e.to_string() }),
            }
        }
        let live = self.live.as_mut().expect("instance is live");
        let batch = Batch {
            payloads: std::mem::take(payloads),
            ends: std::mem::take(ends),
            timestamps: std::mem::take(timestamps),
        };
        live.store.data_mut().models.begin_batch();
        live.store.data_mut().state.begin(&batch.payloads, &batch.ends);
        live.store.set_epoch_deadline(self.deadline_ticks);
        let result = live.processor.call_process(&mut live.store, &batch);
        let n = batch.ends.len();
        (*payloads, *ends, *timestamps) = (batch.payloads, batch.ends, batch.timestamps);
        let failure = match result {
            Ok(outcomes) => match check_outcomes(&outcomes, n) {
                Ok(()) => match check_limits(&outcomes, ends, &self.settings.limits) {
                    Ok(()) => {
                        live.store.data_mut().state.end(true);
                        return Ok(outcomes);
                    }
                    Err(message) => CallFailure { kind: FailureKind::OutputLimit, message },
                },
                Err(message) => CallFailure { kind: FailureKind::InvalidOutput, message },
            },
            Err(e) => classify(&live.store, &e),
        };
        live.store.data_mut().state.end(false);
        self.restart();
        Err(failure)
    }

    /// Replaces the instance after a failure; a start that fails leaves none,
    /// and the next call tries again.
    fn restart(&mut self) {
        self.live = None;
        match self.instantiate() {
            Ok(live) => self.live = Some(live),
            Err(e) => tracing::error!(step = %self.settings.step, error = %e, "plugin instance cannot be restarted"),
        }
    }
}

/// A failed start, with the guest's backtrace in the debug log (`-vv`).
fn start_failure(store: &Store<StoreData>, during: &str, e: &wasmtime::Error) -> PluginError {
    tracing::debug!(during, "plugin start failed: {e:?}");
    PluginError::Start(describe(store, e))
}

fn classify(store: &Store<StoreData>, e: &wasmtime::Error) -> CallFailure {
    if let Some(why) = &store.data().state.over_quota {
        return CallFailure { kind: FailureKind::StateQuota, message: why.clone() };
    }
    let kind = if store.data().limiter.hit {
        FailureKind::Memory
    } else if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        FailureKind::Deadline
    } else {
        FailureKind::Trap
    };
    CallFailure { kind, message: describe(store, e) }
}

/// A one-line description of a guest failure, without the wasm backtrace.
fn describe(store: &Store<StoreData>, e: &wasmtime::Error) -> String {
    if store.data().limiter.hit
        && let Some(cause) = e.chain().find(|c| c.to_string().starts_with("memory cap"))
    {
        return cause.to_string();
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => "the call ran past its deadline and was interrupted".to_string(),
            other => other.to_string(),
        };
    }
    e.chain().last().map(|c| c.to_string()).unwrap_or_default()
}

/// The wall clock of a plugin not granted one: always 1970-01-01T00:00:00Z.
struct EpochClock;

impl wasmtime_wasi::HostWallClock for EpochClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// Payload bytes of the emitted events, counting forwarded ones (empty
/// payload) at their input's size: what the host will hold and write.
fn output_bytes(e: &super::bindings::Emitted, ends: &[u32]) -> u64 {
    let mut bytes = e.payloads.len() as u64;
    let mut start = 0;
    for (k, &end) in e.ends.iter().enumerate() {
        if end == start {
            let i = e.inputs[k] as usize;
            bytes += u64::from(ends[i] - if i == 0 { 0 } else { ends[i - 1] });
        }
        start = end;
    }
    bytes
}

/// Checks the step's output limits (after [`check_outcomes`]); `ends` are
/// the input batch's.
fn check_limits(o: &Outcomes, ends: &[u32], limits: &Limits) -> Result<(), String> {
    let e = &o.emitted;
    let n = ends.len();
    let input_bytes = u64::from(ends.last().copied().unwrap_or(0));
    // At most one output per input forwards at most the input's bytes; only
    // past that bound is it worth counting exactly.
    let bound = if e.ends.len() <= n { e.payloads.len() as u64 + input_bytes } else { u64::MAX };
    let bytes = if bound > limits.max_output_bytes.as_u64() { output_bytes(e, ends) } else { 0 };
    if bytes > limits.max_output_bytes.as_u64() {
        return Err(format!(
            "the batch emitted {} of payloads; the limit is {} (limits.max_output_bytes)",
            bytesize::ByteSize::b(bytes).display().iec(),
            limits.max_output_bytes.display().iec()
        ));
    }
    let per_event = limits.max_outputs_per_event as usize;
    if e.inputs.len() > per_event {
        let mut counts = vec![0u32; n];
        for &i in &e.inputs {
            counts[i as usize] += 1;
        }
        if let Some((i, &c)) = counts.iter().enumerate().find(|&(_, &c)| c as usize > per_event) {
            return Err(format!(
                "input event {i} of the batch produced {c} events; the limit is {per_event} \
                 (limits.max_outputs_per_event)"
            ));
        }
    }
    Ok(())
}

/// Most distinct outputs one plugin may name (each is a metric label).
pub const MAX_OUTPUTS: usize = 32;

/// Checks that outcomes describe a batch of `n` events.
fn check_outcomes(o: &Outcomes, n: usize) -> Result<(), String> {
    if o.outputs.len() > MAX_OUTPUTS {
        return Err(format!("{} outputs named; at most {MAX_OUTPUTS} are allowed", o.outputs.len()));
    }
    let e = &o.emitted;
    let count = e.ends.len();
    if e.inputs.len() != count || e.ports.len() != count {
        return Err(format!(
            "emitted lists differ in length (ends {}, inputs {}, ports {})",
            count,
            e.inputs.len(),
            e.ports.len()
        ));
    }
    let mut prev = 0u32;
    for &end in &e.ends {
        if end < prev || end as usize > e.payloads.len() {
            return Err(format!("emitted end offset {end} is out of order or past the payload buffer"));
        }
        prev = end;
    }
    if let Some(&i) = e.inputs.iter().find(|&&i| i as usize >= n) {
        return Err(format!("emitted event names input {i}, but the batch has {n} events"));
    }
    if let Some(&p) = e.ports.iter().find(|&&p| p as usize >= o.outputs.len()) {
        return Err(format!("emitted event names output {p}, but only {} outputs are declared", o.outputs.len()));
    }
    if let Some(r) = o.rejected.iter().find(|r| r.input as usize >= n) {
        return Err(format!("rejection names input {}, but the batch has {n} events", r.input));
    }
    if memchr::memchr(b'\n', &e.payloads).is_some() {
        return Err("an emitted payload contains a newline; events must be single-line JSON".to_string());
    }
    Ok(())
}
