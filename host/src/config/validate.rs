//! Second stage of loading: the parsed file checked in context and turned
//! into a [`PipelineSpec`] that the runtime can build without further checks.

use super::kafka::{CheckpointSpec, KafkaSinkSpec, KafkaSourceSpec};
use super::load::{ConfigError, Locator};
use super::server::ServerSpec;
use super::types::*;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// A validated pipeline.
#[derive(Debug)]
pub struct PipelineSpec {
    pub name: String,
    pub batch_size: usize,
    pub batch_linger: Duration,
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
    pub models: Vec<crate::models::ModelSpec>,
    /// `[deploy] watch`: the folder watched for new plugin versions.
    pub deploy_watch: Option<PathBuf>,
    /// `[deploy] probation_batches`.
    pub probation_batches: u32,
    /// `[checkpoint]`, if the pipeline checkpoints.
    pub checkpoint: Option<CheckpointSpec>,
}

#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub timestamp_field: Option<String>,
    pub key_field: Option<String>,
    pub max_out_of_orderness: Duration,
    /// The JSON Schema every event must satisfy.
    pub schema: Option<std::sync::Arc<crate::event::Schema>>,
    pub kind: SourceSpecKind,
}

#[derive(Debug, Clone)]
pub enum SourceSpecKind {
    File { path: PathBuf },
    Generator(GeneratorSpec),
    Http { queue: usize, max_body: usize },
    Kafka(KafkaSourceSpec),
}

#[derive(Debug, Clone, Copy)]
pub struct GeneratorSpec {
    pub generate: GeneratorKind,
    /// Event time of the first event, epoch ms; `None`: the time of start.
    pub start_ms: Option<i64>,
    /// Event time between events, microseconds; `None`: from the rate.
    pub interval_us: Option<u64>,
    /// Largest random shift of an event time, milliseconds.
    pub jitter_ms: u64,
    /// Events per second, 0 = unthrottled.
    pub rate: u64,
    pub count: Option<u64>,
    pub keys: u64,
    pub seed: u64,
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
    pub plan: crate::query::Plan,
    pub allowed_lateness: Duration,
}

#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub name: String,
    pub kind: SinkSpecKind,
    pub from: Route,
    /// Write each event's metadata (`"_weir"`) into it.
    pub metadata: bool,
}

#[derive(Debug, Clone)]
pub enum SinkSpecKind {
    File { path: PathBuf },
    Stdout,
    Kafka(KafkaSinkSpec),
    Discard,
}

/// Where a sink takes its events from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Events straight from the sources (pipelines without steps).
    Sources,
    /// An output of a step ("out" is the main one).
    Step { step: usize, output: String },
}

pub(super) fn validate(file: PipelineFile, at: &Locator<'_>) -> Result<PipelineSpec, ConfigError> {
    let p = &file.pipeline;
    if p.batch_size == 0 || p.batch_size > 1 << 20 {
        return Err(at.error(None, "pipeline.batch_size", "must be between 1 and 1048576"));
    }
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
        file.sources.iter().enumerate().map(|(i, s)| source(i, s, &p.name, at)).collect::<Result<_, _>>()?;
    let mut steps: Vec<StepSpec> = Vec::new();
    for (i, s) in file.steps.iter().enumerate() {
        let input = match steps.last() {
            Some(prev) => Input::Step(&prev.name),
            None => Input::Sources(file.sources.iter().map(|s| s.name.get_ref().as_str()).collect()),
        };
        steps.push(step(i, s, input, &models, at)?);
    }
    let sinks: Vec<SinkSpec> =
        file.sinks.iter().enumerate().map(|(i, s)| sink(i, s, &steps, at)).collect::<Result<_, _>>()?;
    let checkpoint = super::kafka::checkpoint(&file.checkpoint, at)?;
    if checkpoint.is_none()
        && let Some(i) = sources.iter().position(|s| matches!(s.kind, SourceSpecKind::Kafka(_)))
    {
        return Err(at.error(
            Some(file.sources[i].kind.span()),
            format!("sources[{i}].kind"),
            "a kafka source needs a [checkpoint] section: its offsets are committed with each checkpoint",
        ));
    }
    one_producer(&sinks, &checkpoint, at)?;
    Ok(PipelineSpec {
        name: p.name.clone(),
        batch_size: p.batch_size,
        batch_linger: p.batch_linger,
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
    })
}

/// Exactly-once needs one transaction: every Kafka sink on one cluster,
/// written by one producer.
fn one_producer(sinks: &[SinkSpec], checkpoint: &Option<CheckpointSpec>, at: &Locator<'_>) -> Result<(), ConfigError> {
    if !checkpoint.as_ref().is_some_and(|c| c.exactly_once) {
        return Ok(());
    }
    let mut kafka = sinks.iter().filter_map(|s| match &s.kind {
        SinkSpecKind::Kafka(k) => Some((s, k)),
        _ => None,
    });
    let Some((_, first)) = kafka.next() else { return Ok(()) };
    for (s, k) in kafka {
        if k.brokers != first.brokers || k.properties != first.properties {
            return Err(at.error(
                None,
                format!("sinks.{}.brokers", s.name),
                "with exactly_once, every kafka sink writes to the same brokers with the same properties (one transaction)",
            ));
        }
    }
    Ok(())
}

fn deploy_watch(deploy: &Option<DeploySection>, at: &Locator<'_>) -> Result<Option<PathBuf>, ConfigError> {
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
    at: &Locator<'_>,
) -> Result<Vec<crate::models::ModelSpec>, ConfigError> {
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
        out.push(crate::models::ModelSpec {
            name: name.clone(),
            path: m.path.get_ref().clone(),
            threads,
            reload_check: (!reload_check.is_zero()).then_some(reload_check),
        });
    }
    Ok(out)
}

fn source(i: usize, s: &SourceConfig, pipeline: &str, at: &Locator<'_>) -> Result<SourceSpec, ConfigError> {
    let key = |field: &str| format!("sources[{i}].{field}");
    let kind_span = Some(s.kind.span());
    if *s.kind.get_ref() != SourceKind::Kafka
        && let Some(field) = super::kafka::kafka_only_source_field(s)
    {
        return Err(at.error(kind_span, key(field), "applies only to sources of kind `kafka`"));
    }
    let not_for = |field: &str, present: bool, kind: &str| {
        if present {
            Err(at.error(kind_span.clone(), key(field), format!("does not apply to a source of kind `{kind}`")))
        } else {
            Ok(())
        }
    };
    let http_only = [("queue", s.queue.is_some()), ("max_body", s.max_body.is_some())];
    let generator_only = [
        ("generate", s.generate.is_some()),
        ("rate", s.rate.is_some()),
        ("count", s.count.is_some()),
        ("keys", s.keys.is_some()),
        ("seed", s.seed.is_some()),
        ("start", s.start.is_some()),
        ("interval", s.interval.is_some()),
        ("jitter", s.jitter.is_some()),
    ];
    let kind = match s.kind.get_ref() {
        SourceKind::Kafka => SourceSpecKind::Kafka(super::kafka::source(i, s, pipeline, at)?),
        SourceKind::File => {
            for (field, present) in http_only.into_iter().chain(generator_only) {
                not_for(field, present, "file")?;
            }
            let path = s
                .path
                .as_ref()
                .ok_or_else(|| at.error(kind_span.clone(), key("path"), "a file source needs `path`"))?;
            if !path.get_ref().is_file() {
                return Err(at.error(
                    Some(path.span()),
                    key("path"),
                    format!("input file `{}` not found", path.get_ref().display()),
                ));
            }
            SourceSpecKind::File { path: path.get_ref().clone() }
        }
        SourceKind::Http => {
            for (field, present) in [("path", s.path.is_some())].into_iter().chain(generator_only) {
                not_for(field, present, "http")?;
            }
            let queue = s.queue.unwrap_or(10_000);
            if queue == 0 {
                return Err(at.error(kind_span.clone(), key("queue"), "must be at least 1"));
            }
            let max_body = s.max_body.map_or(8 << 20, |b| b.as_u64() as usize);
            SourceSpecKind::Http { queue, max_body }
        }
        SourceKind::Generator => {
            not_for("path", s.path.is_some(), "generator")?;
            not_for("schema", s.schema.is_some(), "generator")?;
            for (field, present) in http_only {
                not_for(field, present, "generator")?;
            }
            let generate = s.generate.ok_or_else(|| {
                at.error(
                    kind_span.clone(),
                    key("generate"),
                    "a generator needs `generate` = \"vitals\", \"orders\" or \"transactions\"",
                )
            })?;
            let keys = s.keys.unwrap_or(100);
            if keys == 0 {
                return Err(at.error(kind_span.clone(), key("keys"), "must be at least 1"));
            }
            let start_ms = match &s.start {
                None => None,
                Some(t) => Some(
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map_err(|e| {
                            at.error(kind_span.clone(), key("start"), format!("`{t}` is not an RFC 3339 time ({e})"))
                        })?
                        .timestamp_millis(),
                ),
            };
            if s.interval.is_some_and(|i| i.is_zero()) {
                return Err(at.error(kind_span.clone(), key("interval"), "must be more than zero"));
            }
            SourceSpecKind::Generator(GeneratorSpec {
                generate,
                start_ms,
                interval_us: s.interval.map(|i| i.as_micros() as u64),
                jitter_ms: s.jitter.map_or(0, |j| j.as_millis() as u64),
                rate: s.rate.unwrap_or(0),
                count: s.count,
                keys,
                seed: s.seed.unwrap_or(1),
            })
        }
    };
    let schema = match &s.schema {
        Some(path) => Some(std::sync::Arc::new(
            crate::event::Schema::load(path.get_ref()).map_err(|e| at.error(Some(path.span()), key("schema"), e))?,
        )),
        None => None,
    };
    Ok(SourceSpec {
        name: s.name.get_ref().clone(),
        timestamp_field: s.timestamp_field.clone(),
        key_field: s.key_field.clone(),
        max_out_of_orderness: s.max_out_of_orderness.unwrap_or_default(),
        schema,
        kind,
    })
}

/// What a step reads: the sources (first step) or the step before it.
enum Input<'a> {
    Sources(Vec<&'a str>),
    Step(&'a str),
}

fn step(
    i: usize,
    s: &StepConfig,
    input: Input<'_>,
    models: &[crate::models::ModelSpec],
    at: &Locator<'_>,
) -> Result<StepSpec, ConfigError> {
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
            ] {
                if present {
                    return Err(at.error(Some(query.span()), key(field), "applies only to plugin steps"));
                }
            }
            let plan = crate::query::parse(query.get_ref())
                .map_err(|e| at.error(Some(query.span()), key("query"), e.to_string()))?;
            let from_ok = match &input {
                Input::Sources(names) => names.len() == 1 && names[0] == plan.from,
                Input::Step(prev) => *prev == plan.from,
            };
            if !from_ok {
                let expected = match &input {
                    Input::Sources(names) if names.len() == 1 => format!("the source `{}`", names[0]),
                    Input::Sources(names) => format!(
                        "one source, but this first step receives every source ({}); give the query its own pipeline or a step before it",
                        names.join(", ")
                    ),
                    Input::Step(prev) => format!("the step before it, `{prev}`"),
                };
                return Err(at.error(
                    Some(query.span()),
                    key("query"),
                    format!("FROM `{}`: this step reads {expected}", plan.from),
                ));
            }
            StepSpecKind::Query(QuerySpec {
                sql: query.get_ref().clone(),
                plan,
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
    models: &[crate::models::ModelSpec],
    at: &Locator<'_>,
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
    Ok(PluginSpec { plugin: plugin.get_ref().clone(), config, limits, models: granted, grants, circuit })
}

fn sink(i: usize, s: &SinkConfig, steps: &[StepSpec], at: &Locator<'_>) -> Result<SinkSpec, ConfigError> {
    let key = |field: &str| format!("sinks[{i}].{field}");
    if s.kind != SinkKind::Kafka
        && let Some(field) = super::kafka::kafka_only_sink_field(s)
    {
        return Err(at.error(Some(s.name.span()), key(field), "applies only to sinks of kind `kafka`"));
    }
    let kind = match s.kind {
        SinkKind::Kafka => SinkSpecKind::Kafka(super::kafka::sink(i, s, at)?),
        SinkKind::File => {
            let path =
                s.path.clone().ok_or_else(|| at.error(Some(s.name.span()), key("path"), "a file sink needs `path`"))?;
            SinkSpecKind::File { path }
        }
        SinkKind::Stdout | SinkKind::Discard if s.path.is_some() => {
            return Err(at.error(Some(s.name.span()), key("path"), "applies only to sinks of kind `file`"));
        }
        SinkKind::Discard if s.metadata => {
            return Err(at.error(Some(s.name.span()), key("metadata"), "applies only to file and stdout sinks"));
        }
        SinkKind::Stdout => SinkSpecKind::Stdout,
        SinkKind::Discard => SinkSpecKind::Discard,
    };
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
    Ok(SinkSpec { name: s.name.get_ref().clone(), kind, from, metadata: s.metadata })
}
