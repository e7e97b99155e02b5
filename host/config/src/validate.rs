//! Second stage of loading: the parsed file checked in context and turned
//! into a [`PipelineSpec`]. What belongs to a connector (its kind's keys) or
//! to the query language (a query's text) is checked by those, when the
//! runtime builds the pipeline; [`PipelineSpec::text`] lets them name the
//! line too.

use super::keys::encryption;
use super::load::{ConfigError, Locator, SourceText};
use super::options::Options;
use super::server::ServerSpec;
use super::types::*;
use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weir_core::at_rest::Keyring;
use weir_core::event::decode::TimeRange;
use weir_core::source::BatchLimit;

/// A validated pipeline.
#[derive(Debug)]
pub struct PipelineSpec {
    pub name: String,
    pub batch_size: usize,
    /// `[pipeline] batch_bytes`.
    pub batch_bytes: usize,
    pub batch_linger: Duration,
    /// `[pipeline] parallelism` as asked (the runtime may run fewer shards
    /// when the pipeline has no key; see `weir validate`).
    pub parallelism: u16,
    /// `[pipeline] max_parallelism`: the number of key groups.
    pub max_parallelism: u16,
    /// `[pipeline] event_time_min` and `event_time_max`.
    pub time_range: TimeRange,
    pub listen: Option<String>,
    pub sources: Vec<SourceSpec>,
    pub steps: Vec<StepSpec>,
    pub sinks: Vec<SinkSpec>,
    pub dead_letter: Option<PathBuf>,
    /// `[dead_letter] redact`: fields masked in dead-letter records.
    pub redact: Vec<String>,
    /// `[server]` settings besides `listen`.
    pub server: ServerSpec,
    /// `[onnx] library`, if given.
    pub onnx_library: Option<PathBuf>,
    pub models: Vec<ModelSpec>,
    /// `[deploy] watch`: the folder watched for new plugin versions.
    pub deploy_watch: Option<PathBuf>,
    /// `[deploy] probation_batches`.
    pub probation_batches: u32,
    /// `[checkpoint]`, if the pipeline checkpoints.
    pub checkpoint: Option<CheckpointSpec>,
    /// `[encryption]`: the keys that encrypt what is written at rest.
    pub encryption: Option<Arc<Keyring>>,
    /// `[encryption] accept_plaintext_checkpoints`.
    pub accept_plaintext_checkpoints: bool,
    /// The file, for errors of later stages.
    pub text: Arc<SourceText>,
}

/// A model as the pipeline file declares it.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
    /// Threads ONNX Runtime may use inside one call.
    pub threads: usize,
    /// How often the file is checked for a new version; `None`: never.
    pub reload_check: Option<Duration>,
}

/// `[checkpoint]`, checked.
#[derive(Debug, Clone)]
pub struct CheckpointSpec {
    pub dir: PathBuf,
    pub interval: Duration,
    pub keep: usize,
    pub exactly_once: bool,
    /// Checkpoints write only the state changed since the one before.
    pub incremental: bool,
    /// Incremental checkpoints in a row before the chain is folded into a
    /// whole one in the background.
    pub compact_after: usize,
}

#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    /// The connector's kind, e.g. "file".
    pub kind: String,
    pub timestamp_field: Option<String>,
    pub key_field: Option<String>,
    pub max_out_of_orderness: Duration,
    /// The pipeline's accepted event times (`[pipeline] event_time_min/max`).
    pub time_range: TimeRange,
    /// `idle_timeout`; `None`: a partition never counts as idle.
    pub idle_timeout: Option<Duration>,
    /// The JSON Schema every event must satisfy.
    pub schema: Option<std::sync::Arc<weir_core::event::Schema>>,
    /// The kind's own keys, for its connector.
    pub options: Options,
}

#[derive(Debug, Clone)]
pub struct StepSpec {
    pub name: String,
    pub kind: StepSpecKind,
}

#[derive(Debug, Clone)]
pub enum StepSpecKind {
    Plugin(PluginSpec),
    Query(QuerySpec),
}

#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub plugin: PathBuf,
    pub config: String,
    pub limits: Limits,
    /// Models the plugin may call.
    pub models: Vec<String>,
    pub grants: Grants,
    pub circuit: CircuitSpec,
    /// `outputs`: the named outputs it may emit to besides "out".
    pub outputs: Vec<String>,
}

/// The circuit breaker of a plugin step.
#[derive(Debug, Clone)]
pub struct CircuitSpec {
    /// 0: never opens.
    pub failures: u32,
    pub cool_down: Duration,
    /// The fallback plugin and its config.
    pub fallback: Option<(PathBuf, String)>,
}

#[derive(Debug, Clone)]
pub struct QuerySpec {
    pub sql: String,
    /// Where the query is in the file, for its errors.
    pub span: Option<Range<usize>>,
    pub allowed_lateness: Duration,
}

#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub name: String,
    /// The connector's kind, e.g. "file".
    pub kind: String,
    pub from: Route,
    /// The kind's own keys, for its connector.
    pub options: Options,
}

/// Where a sink takes its events from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Events straight from the sources (pipelines without steps).
    Sources,
    /// An output of a step ("out" is the main one).
    Step { step: usize, output: String },
}

pub(super) fn validate(file: PipelineFile, at: &Arc<SourceText>) -> Result<PipelineSpec, ConfigError> {
    let p = &file.pipeline;
    if p.batch_size == 0 || p.batch_size > 1 << 20 {
        return Err(at.error(None, "pipeline.batch_size", "must be between 1 and 1048576"));
    }
    let batch_bytes = p.batch_bytes.map_or(BatchLimit::DEFAULT_BYTES as u64, |b| b.as_u64());
    if !(1024..=BatchLimit::MAX_BYTES as u64).contains(&batch_bytes) {
        return Err(at.error(None, "pipeline.batch_bytes", "must be between 1KiB and 1GiB"));
    }
    let max_parallelism = p.max_parallelism.unwrap_or(weir_core::keys::DEFAULT_MAX_PARALLELISM);
    if max_parallelism == 0 || max_parallelism > weir_core::keys::MAX_KEY_GROUPS {
        return Err(at.error(None, "pipeline.max_parallelism", "must be between 1 and 32768"));
    }
    let parallelism = p.parallelism.unwrap_or(1);
    if parallelism == 0 || parallelism > max_parallelism {
        return Err(at.error(
            None,
            "pipeline.parallelism",
            format!("must be between 1 and max_parallelism ({max_parallelism})"),
        ));
    }
    let time_range = time_range(p, at)?;
    if file.sources.is_empty() {
        return Err(at.error(None, "sources", "a pipeline needs at least one [[sources]] table"));
    }
    let mut names = HashSet::new();
    let mut unique = |name: &toml::Spanned<String>, key: &str| {
        if name.get_ref().is_empty() || name.get_ref().contains('.') {
            return Err(at.error(Some(name.span()), key, "names must be non-empty and contain no '.'"));
        }
        if !names.insert(name.get_ref().clone()) {
            return Err(at.error(Some(name.span()), key, format!("the name `{}` is used twice", name.get_ref())));
        }
        Ok(())
    };
    for (i, s) in file.sources.iter().enumerate() {
        unique(&s.name, &format!("sources[{i}].name"))?;
    }
    for (i, s) in file.steps.iter().enumerate() {
        unique(&s.name, &format!("steps[{i}].name"))?;
    }
    for (i, s) in file.sinks.iter().enumerate() {
        unique(&s.name, &format!("sinks[{i}].name"))?;
    }
    let models = models(&file.models, at)?;
    let sources: Vec<SourceSpec> =
        file.sources.iter().enumerate().map(|(i, s)| source(i, s, time_range, at)).collect::<Result<_, _>>()?;
    let mut steps: Vec<StepSpec> = Vec::new();
    for (i, s) in file.steps.iter().enumerate() {
        steps.push(step(i, s, &models, at)?);
    }
    let sinks: Vec<SinkSpec> =
        file.sinks.iter().enumerate().map(|(i, s)| sink(i, s, &steps, at)).collect::<Result<_, _>>()?;
    let checkpoint = checkpoint(&file.checkpoint, at)?;
    let encryption = file.encryption.as_ref().map(|e| encryption(e, at)).transpose()?.map(Arc::new);
    Ok(PipelineSpec {
        name: p.name.clone(),
        batch_size: p.batch_size,
        batch_bytes: batch_bytes as usize,
        batch_linger: p.batch_linger,
        parallelism,
        max_parallelism,
        time_range,
        listen: file.server.as_ref().map(|s| s.listen.clone()),
        sources,
        steps,
        sinks,
        redact: file.dead_letter.as_ref().map(|d| d.redact.clone()).unwrap_or_default(),
        dead_letter: file.dead_letter.and_then(|d| d.path),
        server: file.server.as_ref().map(|s| super::server::server(s, at)).transpose()?.unwrap_or_default(),
        onnx_library: file.onnx.and_then(|o| o.library),
        models,
        deploy_watch: deploy_watch(&file.deploy, at)?,
        probation_batches: file.deploy.as_ref().and_then(|d| d.probation_batches).unwrap_or(16),
        checkpoint,
        accept_plaintext_checkpoints: file.encryption.as_ref().and_then(|e| e.accept_plaintext_checkpoints)
            == Some(true),
        encryption,
        text: at.clone(),
    })
}

fn checkpoint(c: &Option<CheckpointSection>, at: &Locator) -> Result<Option<CheckpointSpec>, ConfigError> {
    let Some(c) = c else { return Ok(None) };
    let interval = c.interval.unwrap_or(Duration::from_secs(1));
    if interval.is_zero() {
        return Err(at.error(None, "checkpoint.interval", "must be more than zero"));
    }
    let keep = c.keep.unwrap_or(3);
    if keep < 2 {
        return Err(at.error(
            None,
            "checkpoint.keep",
            "must be at least 2 (a corrupt checkpoint falls back to the one before)",
        ));
    }
    let compact_after = c.compact_after.unwrap_or(10);
    if compact_after == 0 {
        return Err(at.error(
            None,
            "checkpoint.compact_after",
            "must be at least 1 (a chain of incremental checkpoints that is never folded grows without bound)",
        ));
    }
    Ok(Some(CheckpointSpec {
        dir: c.dir.clone(),
        interval,
        keep,
        exactly_once: c.exactly_once.unwrap_or(true),
        incremental: c.incremental.unwrap_or(true),
        compact_after,
    }))
}

fn deploy_watch(deploy: &Option<DeploySection>, at: &Locator) -> Result<Option<PathBuf>, ConfigError> {
    let Some(watch) = deploy.as_ref().and_then(|d| d.watch.as_ref()) else { return Ok(None) };
    if !watch.get_ref().is_dir() {
        return Err(at.error(
            Some(watch.span()),
            "deploy.watch",
            format!("`{}` is not a folder", watch.get_ref().display()),
        ));
    }
    Ok(Some(watch.get_ref().clone()))
}

fn models(
    models: &std::collections::BTreeMap<String, ModelConfig>,
    at: &Locator,
) -> Result<Vec<ModelSpec>, ConfigError> {
    let mut out = Vec::new();
    for (name, m) in models {
        let key = |field: &str| format!("models.{name}.{field}");
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(at.error(
                Some(m.path.span()),
                format!("models.{name}"),
                "model names use letters, digits, '_' and '-'",
            ));
        }
        if !m.path.get_ref().is_file() {
            return Err(at.error(
                Some(m.path.span()),
                key("path"),
                format!("model file `{}` not found", m.path.get_ref().display()),
            ));
        }
        let threads = m.threads.unwrap_or(1);
        if !(1..=256).contains(&threads) {
            return Err(at.error(Some(m.path.span()), key("threads"), "must be between 1 and 256"));
        }
        let reload_check = m.reload_check.unwrap_or(Duration::from_secs(1));
        out.push(ModelSpec {
            name: name.clone(),
            path: m.path.get_ref().clone(),
            threads,
            reload_check: (!reload_check.is_zero()).then_some(reload_check),
        });
    }
    Ok(out)
}

/// The accepted event times: RFC 3339 bounds, each inside ±2^53 ms.
fn time_range(p: &PipelineSection, at: &Locator) -> Result<TimeRange, ConfigError> {
    let read = |text: &Option<String>, key: &str, default: i64| -> Result<i64, ConfigError> {
        let Some(text) = text else { return Ok(default) };
        let ms = chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| at.error(None, key, format!("`{text}` is not an RFC 3339 time ({e})")))?
            .timestamp_millis();
        if ms.abs() > TimeRange::LIMIT {
            return Err(at.error(None, key, "must be within 285,000 years of 1970"));
        }
        Ok(ms)
    };
    let min = read(&p.event_time_min, "pipeline.event_time_min", TimeRange::DEFAULT_MIN)?;
    let max = read(&p.event_time_max, "pipeline.event_time_max", TimeRange::DEFAULT_MAX)?;
    if min >= max {
        return Err(at.error(None, "pipeline.event_time_max", "must be later than event_time_min"));
    }
    Ok(TimeRange { min, max })
}

/// The most named outputs a plugin step declares.
const MAX_OUTPUTS: usize = 32;

/// The longest `max_out_of_orderness` and `allowed_lateness`.
const MAX_DISORDER: Duration = Duration::from_secs(366 * 86_400);

fn source(i: usize, s: &SourceConfig, time_range: TimeRange, at: &Arc<SourceText>) -> Result<SourceSpec, ConfigError> {
    let key = |field: &str| format!("sources[{i}].{field}");
    let schema = match &s.schema {
        Some(path) => Some(std::sync::Arc::new(
            weir_core::event::Schema::load(path.get_ref())
                .map_err(|e| at.error(Some(path.span()), key("schema"), e))?,
        )),
        None => None,
    };
    let keys = s.options.keys().cloned().collect();
    if s.max_out_of_orderness.is_some_and(|d| d > MAX_DISORDER) {
        return Err(at.error(Some(s.name.span()), key("max_out_of_orderness"), "must be at most 366 days"));
    }
    Ok(SourceSpec {
        name: s.name.get_ref().clone(),
        kind: s.kind.get_ref().clone(),
        timestamp_field: s.timestamp_field.clone(),
        key_field: s.key_field.clone(),
        max_out_of_orderness: s.max_out_of_orderness.unwrap_or_default(),
        time_range,
        idle_timeout: match s.idle_timeout {
            None => Some(Duration::from_secs(30)),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
        },
        schema,
        options: Options::new(at, "sources", i, SOURCE_KEYS, &s.kind, keys),
    })
}

fn step(i: usize, s: &StepConfig, models: &[ModelSpec], at: &Locator) -> Result<StepSpec, ConfigError> {
    let key = |field: &str| format!("steps[{i}].{field}");
    let name = s.name.get_ref().clone();
    let kind = match (&s.plugin, &s.query) {
        (Some(_), Some(q)) => {
            return Err(at.error(Some(q.span()), key("query"), "a step runs a `plugin` or a `query`, not both"));
        }
        (None, None) => {
            return Err(at.error(Some(s.name.span()), key("plugin"), "a step needs a `plugin` or a `query`"));
        }
        (Some(plugin), None) => {
            if s.allowed_lateness.is_some() {
                return Err(at.error(Some(plugin.span()), key("allowed_lateness"), "applies only to query steps"));
            }
            StepSpecKind::Plugin(plugin_step(i, s, plugin, models, at)?)
        }
        (None, Some(query)) => {
            for (field, present) in [
                ("config", s.config.is_some()),
                ("config_file", s.config_file.is_some()),
                ("limits", s.limits.is_some()),
                ("models", s.models.is_some()),
                ("grants", s.grants.is_some()),
                ("circuit", s.circuit.is_some()),
                ("outputs", s.outputs.is_some()),
            ] {
                if present {
                    return Err(at.error(Some(query.span()), key(field), "applies only to plugin steps"));
                }
            }
            if s.allowed_lateness.is_some_and(|d| d > MAX_DISORDER) {
                return Err(at.error(Some(query.span()), key("allowed_lateness"), "must be at most 366 days"));
            }
            StepSpecKind::Query(QuerySpec {
                sql: query.get_ref().clone(),
                span: Some(query.span()),
                allowed_lateness: s.allowed_lateness.unwrap_or_default(),
            })
        }
    };
    Ok(StepSpec { name, kind })
}

fn plugin_step(
    i: usize,
    s: &StepConfig,
    plugin: &toml::Spanned<PathBuf>,
    models: &[ModelSpec],
    at: &Locator,
) -> Result<PluginSpec, ConfigError> {
    let key = |field: &str| format!("steps[{i}].{field}");
    if !plugin.get_ref().is_file() {
        return Err(at.error(
            Some(plugin.span()),
            key("plugin"),
            format!("plugin file `{}` not found", plugin.get_ref().display()),
        ));
    }
    let config = match (&s.config, &s.config_file) {
        (Some(_), Some(f)) => {
            return Err(at.error(Some(f.span()), key("config_file"), "give `config` or `config_file`, not both"));
        }
        (Some(c), None) => c.clone(),
        (None, Some(f)) => std::fs::read_to_string(f.get_ref()).map_err(|e| {
            at.error(Some(f.span()), key("config_file"), format!("cannot read `{}`: {e}", f.get_ref().display()))
        })?,
        (None, None) => String::new(),
    };
    let limits = s.limits.clone().unwrap_or_default();
    if limits.deadline.is_zero() {
        return Err(at.error(Some(s.name.span()), key("limits.deadline"), "must be more than zero"));
    }
    if limits.memory.as_u64() < 1 << 20 {
        return Err(at.error(Some(s.name.span()), key("limits.memory"), "must be at least 1MiB"));
    }
    if limits.max_outputs_per_event == 0 {
        return Err(at.error(Some(s.name.span()), key("limits.max_outputs_per_event"), "must be at least 1"));
    }
    let grants = s.grants.clone().unwrap_or_default();
    if let Some(dir) = &grants.read_dir
        && !dir.is_dir()
    {
        return Err(at.error(
            Some(s.name.span()),
            key("grants.read_dir"),
            format!("`{}` is not a folder", dir.display()),
        ));
    }
    let c = s.circuit.clone().unwrap_or_default();
    if c.failures > 0 && c.cool_down.is_zero() {
        return Err(at.error(Some(s.name.span()), key("circuit.cool_down"), "must be more than zero"));
    }
    let fallback = match &c.fallback {
        Some(f) if !f.get_ref().is_file() => {
            return Err(at.error(
                Some(f.span()),
                key("circuit.fallback"),
                format!("plugin file `{}` not found", f.get_ref().display()),
            ));
        }
        Some(f) => Some((f.get_ref().clone(), c.fallback_config.clone().unwrap_or_default())),
        None if c.fallback_config.is_some() => {
            return Err(at.error(
                Some(s.name.span()),
                key("circuit.fallback_config"),
                "applies only with `circuit.fallback`",
            ));
        }
        None => None,
    };
    let circuit = CircuitSpec { failures: c.failures, cool_down: c.cool_down, fallback };
    let granted = s.models.as_ref().map(|m| m.get_ref().clone()).unwrap_or_default();
    for name in &granted {
        if !models.iter().any(|m| &m.name == name) {
            let known: Vec<_> = models.iter().map(|m| m.name.as_str()).collect();
            let span = s.models.as_ref().map(|m| m.span());
            return Err(at.error(
                span,
                key("models"),
                format!(
                    "no model named `{name}` (models: {})",
                    if known.is_empty() { "none; declare it as [models.<name>]".into() } else { known.join(", ") }
                ),
            ));
        }
    }
    let outputs = s.outputs.clone().unwrap_or_default();
    if outputs.len() > MAX_OUTPUTS {
        return Err(at.error(Some(s.name.span()), key("outputs"), format!("at most {MAX_OUTPUTS} outputs")));
    }
    for o in &outputs {
        let valid =
            !o.is_empty() && o.len() <= 64 && o.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid || o == "out" {
            return Err(at.error(
                Some(s.name.span()),
                key("outputs"),
                format!("`{o}` is not an output name: letters, digits, '_' and '-', at most 64, not \"out\""),
            ));
        }
    }
    Ok(PluginSpec { plugin: plugin.get_ref().clone(), config, limits, models: granted, grants, circuit, outputs })
}

fn sink(i: usize, s: &SinkConfig, steps: &[StepSpec], at: &Arc<SourceText>) -> Result<SinkSpec, ConfigError> {
    let key = |field: &str| format!("sinks[{i}].{field}");
    let from = match &s.from {
        None if steps.is_empty() => Route::Sources,
        None => Route::Step { step: steps.len() - 1, output: "out".into() },
        Some(from) => {
            let (step_name, output) = from.get_ref().split_once('.').unwrap_or((from.get_ref(), "out"));
            let step = steps.iter().position(|s| s.name == step_name).ok_or_else(|| {
                let known: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
                at.error(
                    Some(from.span()),
                    key("from"),
                    format!(
                        "no step named `{step_name}` (steps: {})",
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ),
                )
            })?;
            Route::Step { step, output: output.to_string() }
        }
    };
    let keys = s.options.keys().cloned().collect();
    let options = Options::new(at, "sinks", i, SINK_KEYS, &s.kind, keys);
    Ok(SinkSpec { name: s.name.get_ref().clone(), kind: s.kind.get_ref().clone(), from, options })
}
