//! Building a pipeline from its spec and running it to the end of its input
//! or until it is told to stop.
//!
//! Two steps: [`prepare`] checks the spec in context, starts every plugin
//! and opens every source and sink (nothing flows yet), and hands out what
//! a server serves ([`ServerParts`]); [`Prepared::start`] starts the threads.
//! The server itself is started between the two by the caller, so that the
//! runtime does not depend on it.

use super::build::Sharding;
use super::router::{Router, Watermark};
use super::steps::build_steps;
use super::worker::{Shard, ShardFamilies, SinkStage, StopOnPanic, ToShard};
use crate::deploy::Deployments;
use anyhow::Context;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use weir_config::{PipelineSpec, StepSpecKind};
use weir_core::dead_letter::{self, DeadLetters};
use weir_core::event::{Batch, Ingested};
use weir_core::ingest::IngestEndpoint;
use weir_core::metrics::{Family, Metrics};
use weir_core::position::Position;
use weir_core::sink::RunStart;
use weir_core::source::{Fill, Source};
use weir_core::step::Step;
use weir_models::ModelRegistry;
use weir_plugin_host::PluginEngine;

/// Batches in flight between the sources and the router, and into each
/// shard and out of it; a full channel pauses what feeds it.
const CHANNEL_BATCHES: usize = 8;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Overrides `[server] listen`.
    pub listen: Option<String>,
    /// Folder of precompiled components; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// The last checkpoint, or a replay.
    pub from: weir_core::position::StartFrom,
    /// This process's name among those running the pipeline: part of its
    /// Kafka transactional id and group instance id.
    pub instance: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { listen: None, cache_dir: None, from: Default::default(), instance: "0".into() }
    }
}

/// A pipeline that is running.
pub struct Running {
    pub metrics: Metrics,
    stop: Arc<AtomicBool>,
    sources: Vec<JoinHandle<anyhow::Result<()>>>,
    /// The sink stage, the shards and the router, joined in that order (a
    /// failure downstream makes those upstream stop too).
    core: Vec<JoinHandle<anyhow::Result<()>>>,
    started: Instant,
    dead: Arc<DeadLetters>,
    _watcher: Option<crate::deploy::Watcher>,
    _models: ModelRegistry,
    /// Hot-loading into the running steps.
    pub deployments: Arc<Deployments>,
    pipeline: String,
    sink_notes: Vec<(String, String)>,
}

/// What a server serves for a pipeline: its metrics, its readiness, its
/// plugin steps (admin API) and its push sources (ingestion).
#[derive(Clone)]
pub struct ServerParts {
    pub metrics: Metrics,
    /// True once every part has started and until the run ends.
    pub ready: Arc<AtomicBool>,
    pub deployments: Arc<Deployments>,
    /// Push sources by name.
    pub ingest: HashMap<String, Arc<dyn IngestEndpoint>>,
    pub security: weir_config::ServerSpec,
    /// Where to listen (`--listen`, else `[server] listen`), if anywhere.
    pub listen: Option<String>,
}

/// A pipeline with every part started and opened, before the first event moves.
pub struct Prepared {
    spec: PipelineSpec,
    metrics: Metrics,
    dead: Arc<DeadLetters>,
    models: ModelRegistry,
    durable: super::durable::Durable,
    /// Each shard's steps.
    shards: Vec<Vec<Box<dyn Step>>>,
    sharding: Sharding,
    watermark: Option<Watermark>,
    columns: Option<Arc<[String]>>,
    sinks: Vec<super::worker::SinkSlot>,
    /// How each sink's output begins (file sinks' `mode`).
    sink_starts: Vec<RunStart>,
    opened: Vec<(String, Box<dyn Source>)>,
    running_flag: Arc<AtomicBool>,
    parts: ServerParts,
}

/// What a finished run did, for the summary.
#[derive(Debug)]
pub struct RunReport {
    pub pipeline: String,
    pub elapsed: Duration,
    pub events_read: u64,
    pub bytes_read: u64,
    pub steps: Vec<(String, u64, u64)>,
    pub sinks: Vec<(String, u64)>,
    /// (sink, what it did with the output it found when the run began).
    pub sink_notes: Vec<(String, String)>,
    pub dead_letters: Vec<(String, u64)>,
    pub dead_letter_path: PathBuf,
    pub stopped_by_signal: bool,
    /// (step, capability, count) of refused capability uses.
    pub denied: Vec<(String, String, u64)>,
}

/// Checks `spec` in context and starts every part of the pipeline but its
/// threads. Fails, with nothing left running, if a plugin, file or
/// connection cannot be opened.
pub fn prepare(spec: PipelineSpec, opts: RunOptions) -> anyhow::Result<Prepared> {
    let checked = super::build::check(&spec)?;
    let metrics = Metrics::new(&spec.name);
    let dead_path = spec.dead_letter.clone().unwrap_or_else(|| PathBuf::from(dead_letter::DEFAULT_PATH));
    let source_names = spec.sources.iter().map(|s| s.name.clone()).collect();
    let dead = Arc::new(
        DeadLetters::new(dead_path, source_names, metrics.clone())
            .with_redact(spec.redact.clone())
            .with_keyring(spec.encryption.clone()),
    );

    let models = ModelRegistry::load(&spec.models, spec.onnx_library.as_deref(), metrics.models())?;
    let engine = Arc::new(PluginEngine::new(opts.cache_dir.clone()).context("cannot start the WebAssembly engine")?);
    let sharding = super::build::sharding(&spec, &checked)
        .map_err(|e| spec.text.error(None, "pipeline.parallelism", format!("{} shards: {e}", spec.parallelism)))?;
    let mut durable = super::durable::Durable::open(&spec, opts.from, &opts.instance, &metrics)?;
    // With checkpoints, deployed versions are kept and run again after a restart.
    let store = match &spec.checkpoint {
        Some(c) => Some(Arc::new(crate::deploy::VersionStore::open(&c.dir.join("plugins"))?)),
        None => None,
    };
    let record = store.as_ref().map(|s| s.read());
    let kept = store.as_ref().zip(record.as_ref());
    let mut shards = Vec::new();
    let (mut columns, mut controls, mut replicas) = (None, Vec::new(), HashMap::<String, Vec<_>>::new());
    for shard in 0..sharding.parallelism {
        let built = build_steps(&spec, &checked, &engine, &metrics, &models, sharding.watermarks, kept)?;
        if shard == 0 {
            (columns, controls) = (built.columns, built.controls);
        } else {
            for c in built.controls {
                replicas.entry(c.step.clone()).or_default().push(c);
            }
        }
        shards.push(built.steps);
    }
    let key = spec.sources[0].key_field.as_deref().or(sharding.route_field.as_deref());
    durable.restore_steps(&mut shards, spec.max_parallelism, key)?;
    let mut watermark = sharding.watermarks.then(|| {
        Watermark::new(
            spec.sources
                .iter()
                .map(|s| (i64::try_from(s.max_out_of_orderness.as_millis()).unwrap_or(i64::MAX), s.idle_timeout))
                .collect(),
        )
    });
    if let Some(w) = &mut watermark {
        durable.restore_router(w)?;
    }
    if sharding.parallelism > 1 {
        tracing::info!(
            shards = sharding.parallelism,
            key_groups = spec.max_parallelism,
            "keyed steps split among shards"
        );
    }
    let running_flag = Arc::new(AtomicBool::new(true));
    let queries =
        spec.steps.iter().filter(|s| matches!(s.kind, StepSpecKind::Query(_))).map(|s| s.name.clone()).collect();
    let families = metrics.family::<ShardFamilies>();
    let shard_views = (0..sharding.parallelism)
        .map(|i| (weir_core::keys::groups_of(i, spec.max_parallelism, sharding.parallelism), families.shard(i)))
        .collect();
    let deployments = Arc::new(
        Deployments::new(spec.name.clone(), engine, controls, queries, running_flag.clone())
            .with_replicas(replicas)
            .with_shards(shard_views),
    );
    let mut sinks = super::durable::open_sinks(&spec, &mut durable, &metrics)?;
    let mut opened = Vec::new();
    let mut ingest = HashMap::new();
    for (i, s) in spec.sources.iter().enumerate() {
        let (source, http) = durable
            .open_source(&spec, i, &dead, &metrics)
            .with_context(|| format!("cannot open source `{}`", s.name))?;
        if let Some(h) = http {
            ingest.insert(s.name.clone(), h);
        }
        opened.push((s.name.clone(), source));
    }
    // Outputs and dead letters since the checkpoint are written again by the
    // restarted run only if every source replays its input; a push source
    // (HTTP) does not, so then they are kept (some may appear twice, none is
    // lost).
    let replays = opened.iter().all(|(_, s)| s.position().is_some());
    dead.check_form()?; // encrypted or not, as this run writes it
    let resumed = if replays {
        durable.restore_dead_letters(&dead)?;
        durable.restore_sinks(&mut sinks)?
    } else {
        Vec::new()
    };
    // A sink the run did not take back to a checkpoint decides what its
    // output keeps (a file sink's `mode`); a run that resumed a checkpoint
    // with a push source keeps what is there.
    let from_beginning = opened.iter().all(|(_, s)| {
        matches!(s.position(), Some(Position::File { offset: 0, .. } | Position::Sequence { next: 0, .. }))
    });
    // Applied when the run starts (after the server is up): a start that
    // fails before then leaves every output as it was.
    let sink_starts = sinks
        .iter()
        .map(|slot| {
            if resumed.contains(&slot.name) || durable.resumed() {
                RunStart::Resumed
            } else if from_beginning {
                RunStart::FromBeginning
            } else {
                RunStart::Continuing
            }
        })
        .collect();
    let listen = opts.listen.clone().or(spec.listen.clone());
    if listen.is_none()
        && let Some(name) = ingest.keys().next()
    {
        anyhow::bail!(
            "source `{name}` is an http source: the pipeline needs a server ([server] listen, or weir run --listen)"
        );
    }
    let parts = ServerParts {
        metrics: metrics.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        deployments,
        ingest,
        security: spec.server.clone(),
        listen,
    };
    Ok(Prepared {
        spec,
        metrics,
        dead,
        models,
        durable,
        shards,
        sharding,
        watermark,
        columns,
        sinks,
        sink_starts,
        opened,
        running_flag,
        parts,
    })
}

/// Prepares and starts a pipeline without a server (benchmarks, tests).
pub fn start(spec: PipelineSpec, opts: RunOptions) -> anyhow::Result<Running> {
    prepare(spec, opts)?.start()
}

impl Prepared {
    /// What a server serves for this pipeline.
    pub fn server_parts(&self) -> &ServerParts {
        &self.parts
    }

    /// Starts the sources and the worker; the returned [`Running`] is
    /// waited on with [`Running::wait`].
    pub fn start(self) -> anyhow::Result<Running> {
        let Prepared {
            spec,
            metrics,
            dead,
            models,
            durable,
            shards,
            sharding,
            watermark,
            columns,
            mut sinks,
            sink_starts,
            opened,
            running_flag,
            parts,
        } = self;
        let mut sink_notes = Vec::new();
        for (slot, start) in sinks.iter_mut().zip(sink_starts) {
            let note = slot.sink.begin(start).with_context(|| format!("cannot open sink `{}`", slot.name))?;
            if let Some(note) = note {
                tracing::info!(sink = %slot.name, "{note}");
                sink_notes.push((slot.name.clone(), note));
            }
        }
        let deployments = parts.deployments.clone();
        let watcher = match &spec.deploy_watch {
            Some(dir) => Some(
                crate::deploy::Watcher::start(dir, deployments.clone())
                    .with_context(|| format!("cannot watch `{}`", dir.display()))?,
            ),
            None => None,
        };

        // Every plugin has started and every source and sink is open: ready,
        // before the first event moves.
        metrics.set_up(true);
        parts.ready.store(true, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded::<Ingested>(CHANNEL_BATCHES);
        let mut source_threads = Vec::new();
        for (index, (name, mut source)) in opened.into_iter().enumerate() {
            let (tx, stop, m) = (tx.clone(), stop.clone(), metrics.source(&name));
            let (batch_size, linger) = (spec.batch_size, spec.batch_linger);
            let limit = weir_core::source::BatchLimit { events: batch_size, bytes: spec.batch_bytes };
            // A query step right after the sources gets its fields read while
            // the events are decoded: one parse per event.
            // With shards, a source without a key field is routed by the
            // first query's GROUP BY field.
            let route_field = (sharding.parallelism > 1).then(|| sharding.route_field.clone()).flatten();
            let plan = source.field_plan().map(|p| {
                let mut plan = (*p).clone();
                if let Some(c) = &columns {
                    plan.columns = Some(c.clone());
                }
                if plan.key_field.is_none() {
                    plan.route_field = route_field.clone();
                }
                Arc::new(plan)
            });
            let handle = std::thread::Builder::new().name(format!("source-{name}")).spawn(move || {
                let result = (|| -> std::io::Result<()> {
                    let mut read_so_far = source.bytes_read();
                    let mut partitions: Option<Vec<u32>> = None;
                    let mut draining = false;
                    loop {
                        if !draining && stop.load(Ordering::Relaxed) {
                            // An HTTP source refuses new requests and hands over
                            // what it accepted; others stop here.
                            draining = source.drains_after_stop();
                            if !draining {
                                break;
                            }
                        }
                        let mut batch = Batch::with_capacity(batch_size, batch_size * 160);
                        let fill = source.fill(&mut batch, limit, linger)?;
                        let read = source.bytes_read();
                        m.bytes.inc_by(read - read_so_far);
                        read_so_far = read;
                        if !batch.is_empty() {
                            m.events.inc_by(batch.len() as u64);
                            m.batch_events.observe(batch.len() as f64);
                            let mut msg = Ingested::new(batch, plan.clone());
                            msg.position = source.position().map(|p| (index as u16, p));
                            let now = source.partitions();
                            if now.is_some() && now != partitions {
                                msg.partitions.clone_from(&now);
                                partitions = now;
                            }
                            // Decode here while the worker has work queued;
                            // otherwise leave it to the worker, which would wait.
                            if !tx.is_empty() {
                                msg.decode();
                            }
                            if tx.send(msg).is_err() {
                                break; // the worker is gone; its error is reported there
                            }
                        }
                        if fill == Fill::Done {
                            break;
                        }
                    }
                    Ok(())
                })();
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                result.with_context(|| format!("source `{name}` failed"))
            })?;
            source_threads.push(handle);
        }
        drop(tx);

        let checkpointing = spec.checkpoint.is_some();
        let gate = durable.gate.clone();
        let (clock, checkpointer) = match durable.checkpointer(&spec, &metrics, dead.clone())? {
            Some((clock, checkpointer)) => (Some(clock), Some(checkpointer)),
            None => (None, None),
        };
        let routes: Vec<weir_config::Route> = sinks.iter().map(|s| s.from.clone()).collect();
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let families = metrics.family::<ShardFamilies>();
        let mut core = Vec::new();
        let mut to_shards = Vec::new();
        let mut from_shards = Vec::new();
        let mut shard_threads = Vec::new();
        for (index, steps) in shards.into_iter().enumerate() {
            let (tx, rx) = crossbeam_channel::bounded::<ToShard>(CHANNEL_BATCHES);
            let (out, out_rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
            to_shards.push(tx);
            from_shards.push(out_rx);
            let shard = Shard {
                index: index as u16,
                parallelism: sharding.parallelism,
                steps,
                routes: routes.clone(),
                out,
                metrics: families.shard(index as u16),
            };
            let (dead, stop) = (dead.clone(), stop.clone());
            let handle = std::thread::Builder::new().name(format!("shard-{index}")).spawn(move || {
                let _guard = StopOnPanic(stop.clone());
                let result = shard.run(rx, &dead);
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                result.with_context(|| format!("shard {index} failed"))
            })?;
            shard_threads.push(handle);
        }
        let stage = SinkStage {
            sinks,
            shape: (sharding.parallelism, spec.max_parallelism),
            checkpointer,
            done: done_tx,
            stall: metrics.durability().stall_seconds,
        };
        let stage_stop = stop.clone();
        core.push(std::thread::Builder::new().name("sinks".into()).spawn(move || {
            let _guard = StopOnPanic(stage_stop.clone());
            let result = stage.run(from_shards);
            if result.is_err() {
                stage_stop.store(true, Ordering::Relaxed);
            }
            result.context("the sink stage failed")
        })?);
        core.extend(shard_threads);
        let router = Router {
            told: vec![i64::MIN; to_shards.len()],
            shards: to_shards,
            source_names: spec.sources.iter().map(|s| s.name.clone()).collect(),
            key_fields: spec
                .sources
                .iter()
                .map(|s| s.key_field.clone().or_else(|| sharding.route_field.clone()))
                .collect(),
            max_parallelism: spec.max_parallelism,
            watermark,
            clock,
            done: done_rx,
            gate: gate.clone(),
        };
        let worker_dead = dead.clone();
        let worker_stop = stop.clone();
        core.push(std::thread::Builder::new().name("router".into()).spawn(move || {
            let _guard = StopOnPanic(worker_stop.clone());
            // All sources done: the steps release what they hold, unless
            // stopped by a signal with checkpoints (their state is in the
            // last checkpoint, for the next run).
            let release = || !(checkpointing && worker_stop.load(Ordering::Relaxed));
            let result = router.run(rx, &worker_dead, release);
            if result.is_err() {
                worker_stop.store(true, Ordering::Relaxed);
            }
            gate.worker_gone();
            running_flag.store(false, Ordering::Relaxed);
            result.context("worker failed")
        })?);

        Ok(Running {
            metrics,
            stop,
            sources: source_threads,
            core,
            started: Instant::now(),
            dead,
            _watcher: watcher,
            _models: models,
            deployments,
            pipeline: spec.name.clone(),
            sink_notes,
        })
    }
}

impl Running {
    /// The flag that stops the sources; the worker then drains what is in
    /// flight, flushes, and the run ends.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Waits for the end of the input (or a stop) and reports.
    pub fn wait(self) -> anyhow::Result<RunReport> {
        let mut first_error = None;
        for h in self.sources {
            if let Err(e) = h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a source thread panicked"))) {
                first_error.get_or_insert(e);
            }
        }
        for h in self.core {
            if let Err(e) = h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a pipeline thread panicked"))) {
                first_error.get_or_insert(e);
            }
        }
        self.metrics.set_up(false);
        if let Some(e) = first_error {
            return Err(e);
        }
        let m = &self.metrics;
        let ins = m.by_label(Family::StepIn);
        let rejected = m.by_label(Family::StepRejected);
        let steps = ins
            .into_iter()
            .map(|(name, n)| {
                let r = rejected.iter().find(|(s, _)| *s == name).map_or(0, |(_, r)| *r);
                (name, n, r)
            })
            .collect();
        Ok(RunReport {
            pipeline: self.pipeline,
            elapsed: self.started.elapsed(),
            events_read: m.source_events_total(),
            bytes_read: m.source_bytes_total(),
            steps,
            sinks: m.by_label(Family::SinkEvents),
            sink_notes: self.sink_notes,
            dead_letters: m.by_label(Family::DeadLetter),
            dead_letter_path: self.dead.path().to_path_buf(),
            stopped_by_signal: self.stop.load(Ordering::Relaxed),
            denied: m.denied(),
        })
    }
}
