//! Making each step of a pipeline from its spec: plugin steps (the version
//! kept from before a restart when there is one, the circuit's fallback,
//! the declared outputs) and query steps (their plans and time settings).
//! It may depend on what the rest of `pipeline` may.

use super::plugin_step::{PluginStep, PluginStepOptions};
use crate::deploy::StepControl;
use anyhow::Context;
use std::sync::Arc;
use weir_config::{PipelineSpec, PluginSpec, Route, StepSpecKind};
use weir_core::metrics::Metrics;
use weir_core::step::Step;
use weir_models::ModelRegistry;
use weir_plugin_host::{InstanceSettings, PluginEngine, PluginInstance};
use weir_query::{QueryStep, QueryStepSettings};

/// The steps, the fields to read at ingestion when the first is a query,
/// and the controls of the plugin steps.
pub(super) struct Built {
    pub steps: Vec<Box<dyn Step>>,
    pub columns: Option<Arc<[String]>>,
    pub controls: Vec<Arc<StepControl>>,
}

pub(super) fn build_steps(
    spec: &PipelineSpec,
    checked: &super::build::Checked,
    engine: &PluginEngine,
    metrics: &Metrics,
    models: &ModelRegistry,
    pipeline_watermark: bool,
    kept: Option<(&Arc<crate::deploy::VersionStore>, &crate::deploy::VersionRecord)>,
) -> anyhow::Result<Built> {
    let mut columns = None;
    let mut steps: Vec<Box<dyn Step>> = Vec::new();
    let mut controls = Vec::new();
    for (i, s) in spec.steps.iter().enumerate() {
        match &s.kind {
            StepSpecKind::Plugin(p) => {
                // Keyed state is keyed by the sources' key field.
                let key_field = spec.sources.iter().find_map(|s| s.key_field.as_deref());
                // The version that ran before a restart, if it is not the file's.
                let instead =
                    kept.and_then(|(store, record)| store.instead_of(&s.name, record.steps.get(&s.name), &p.plugin));
                let runs = match &instead {
                    Some((path, _)) => PluginSpec { plugin: path.clone(), ..p.clone() },
                    None => p.clone(),
                };
                let started = start_plugin(engine, &s.name, &runs, metrics, models, key_field);
                let (instance, settings) = match (started, &instead) {
                    // The kept version must be the one recorded, and start;
                    // else the pipeline file's version runs.
                    (Ok((i, _)), Some((_, digest))) if i.digest() != digest => {
                        tracing::warn!(step = %s.name, "the kept version's file does not match its digest; the pipeline file's version runs");
                        start_plugin(engine, &s.name, p, metrics, models, key_field)?
                    }
                    (Err(e), Some(_)) => {
                        tracing::warn!(step = %s.name, error = %format!("{e:#}"),
                            "the version deployed before the restart does not start; the pipeline file's version runs");
                        start_plugin(engine, &s.name, p, metrics, models, key_field)?
                    }
                    (other, _) => other?,
                };
                let restored = instead.is_some_and(|(_, digest)| instance.digest() == digest);
                let fallback = match &p.circuit.fallback {
                    Some((path, config)) => {
                        let spec = PluginSpec { plugin: path.clone(), config: config.clone(), ..p.clone() };
                        let (fallback, _) = start_plugin(engine, &s.name, &spec, metrics, models, key_field)
                            .context("the circuit's fallback plugin")?;
                        Some(fallback)
                    }
                    None => None,
                };
                // Declared outputs: the step's own, and those a sink takes.
                let mut outputs = p.outputs.clone();
                for k in &spec.sinks {
                    if let Route::Step { step, output } = &k.from
                        && *step == i
                        && output != "out"
                        && !outputs.contains(output)
                    {
                        outputs.push(output.clone());
                    }
                }
                let opts = PluginStepOptions {
                    circuit: p.circuit.clone(),
                    fallback,
                    probation_batches: spec.probation_batches,
                    outputs,
                };
                let (step, control) = PluginStep::new(instance, settings, metrics, opts);
                if let Some((store, record)) = kept {
                    control.keep_in(store.clone(), record.steps.get(&s.name), restored, engine);
                }
                steps.push(Box::new(step));
                controls.push(control);
            }
            StepSpecKind::Query(q) => {
                let settings = QueryStepSettings {
                    name: s.name.clone(),
                    plan: checked.plans[i].clone().expect("a query step has a plan"),
                    lateness: i64::try_from(q.allowed_lateness.as_millis()).unwrap_or(i64::MAX),
                    out_of_orderness: spec
                        .sources
                        .iter()
                        .map(|src| i64::try_from(src.max_out_of_orderness.as_millis()).unwrap_or(i64::MAX))
                        .collect(),
                    late_to_dead_letter: !spec
                        .sinks
                        .iter()
                        .any(|k| matches!(&k.from, Route::Step { step, output } if *step == i && output == "late")),
                    pipeline_watermark,
                    time_range: spec.time_range,
                };
                let step = QueryStep::new(settings, metrics.step(&s.name), metrics.window(&s.name));
                if i == 0 {
                    columns = Some(step.columns());
                }
                steps.push(Box::new(step));
            }
        }
    }
    Ok(Built { steps, columns, controls })
}

/// Loads a step's plugin and starts an instance with its config, limits
/// and grants; errors name the step. The settings start later versions.
pub fn start_plugin(
    engine: &PluginEngine,
    step: &str,
    s: &PluginSpec,
    metrics: &Metrics,
    models: &ModelRegistry,
    key_field: Option<&str>,
) -> anyhow::Result<(PluginInstance, InstanceSettings)> {
    let plugin = engine.load(&s.plugin).with_context(|| format!("step `{step}`"))?;
    let settings = InstanceSettings {
        step: step.to_string(),
        config: s.config.clone(),
        limits: s.limits.clone(),
        grants: s.grants.clone(),
        metrics: metrics.plugin_api(step),
        models: s.models.iter().filter_map(|m| models.get(m)).collect(),
        state: Some(weir_plugin_host::KeyedState::bounded(
            key_field.map(str::to_string),
            weir_plugin_host::Quota { bytes: s.limits.state_bytes.as_u64(), keys: s.limits.state_keys },
            Some({
                let sandbox = metrics.plugin_api(step).sandbox;
                (sandbox.state_bytes, sandbox.state_keys)
            }),
        )),
    };
    let instance = PluginInstance::start(plugin, settings.clone()).with_context(|| format!("step `{step}`"))?;
    tracing::info!(step = %step, plugin = %s.plugin.display(), digest = %instance.digest(), "plugin started");
    Ok((instance, settings))
}
