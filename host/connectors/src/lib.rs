//! weir-connectors: where events come from and where results go, one
//! folder per connector, each with its options, its source and/or sink, and
//! its tests. It may depend on `weir-core` and `weir-config`.
//!
//! The runtime knows connectors only through this registry: it looks a
//! source's or sink's `kind` up in [`CONNECTORS`], asks the connector to
//! check its options ([`Connector::check`]), opens one [`Session`] per
//! connector in use before any checkpoint is restored (a Kafka consumer's
//! committed offsets decide which checkpoint that is), and opens its
//! sources and sinks through the session. Adding a connector is a folder
//! here and a line in [`CONNECTORS`].

pub mod discard;
pub mod file;
pub mod generator;
pub mod http;
pub mod kafka;
pub mod nexmark;
mod pace;
pub mod stdout;

use std::sync::Arc;
use weir_config::{ConfigError, PipelineSpec, SinkSpec, SourceSpec};
use weir_core::checkpoint::{Coordinator, Gate};
use weir_core::dead_letter::DeadLetters;
use weir_core::event::FieldPlan;
use weir_core::metrics::Metrics;
use weir_core::position::{Position, StartFrom};
use weir_core::sink::Sink;
use weir_core::source::Opened;

/// Every connector, by the kinds it serves.
pub static CONNECTORS: &[&dyn Connector] = &[
    &file::File,
    &generator::Generators,
    &nexmark::Nexmark,
    &http::Http,
    &kafka::Kafka,
    &stdout::Stdout,
    &discard::Discard,
];

/// A connector: the source and sink kinds it serves.
pub trait Connector: Sync {
    /// The connector's name (its folder).
    fn name(&self) -> &'static str;

    /// Source kinds (`kind = "..."` of `[[sources]]`).
    fn source_kinds(&self) -> &'static [&'static str] {
        &[]
    }

    /// Sink kinds (`kind = "..."` of `[[sinks]]`).
    fn sink_kinds(&self) -> &'static [&'static str] {
        &[]
    }

    /// Checks the options of the pipeline's sources and sinks of its kinds,
    /// and whatever else they need of the pipeline (a `[checkpoint]`).
    fn check(&self, spec: &PipelineSpec) -> Result<(), ConfigError>;

    /// Opens what the pipeline's sources and sinks of its kinds share,
    /// before a checkpoint is restored.
    fn session(&self, cx: &SessionContext<'_>) -> anyhow::Result<Box<dyn Session>>;
}

/// What a connector's session may need of the pipeline.
pub struct SessionContext<'a> {
    pub spec: &'a PipelineSpec,
    /// This process's name among those running the pipeline.
    pub instance: &'a str,
    /// Where a source that gives up partitions asks for a checkpoint.
    pub gate: &'a Arc<Gate>,
    pub metrics: &'a Metrics,
    pub from: StartFrom,
}

/// What a source needs to be opened.
pub struct SourceContext<'a> {
    pub spec: &'a SourceSpec,
    /// Its place in the pipeline file (events' origins carry it).
    pub index: u16,
    pub dead: &'a Arc<DeadLetters>,
    pub metrics: &'a Metrics,
    /// Where the restored checkpoint left it.
    pub restored: Option<&'a Position>,
}

/// One connector's part of one running pipeline.
pub trait Session: Send {
    /// Its part in every checkpoint, if the connector commits with them.
    fn coordinator(&mut self) -> Option<Box<dyn Coordinator>> {
        None
    }

    /// Opens a source of one of the connector's kinds (none by default: a
    /// sink-only connector is never asked).
    fn open_source(&mut self, cx: &SourceContext<'_>) -> anyhow::Result<Opened> {
        anyhow::bail!("`{}` is not a source kind", cx.spec.kind)
    }

    /// Opens a sink of one of the connector's kinds (none by default).
    fn open_sink(&mut self, spec: &SinkSpec, _metrics: &Metrics) -> anyhow::Result<Box<dyn Sink>> {
        anyhow::bail!("`{}` is not a sink kind", spec.kind)
    }
}

fn source_connector(kind: &str) -> Option<&'static dyn Connector> {
    CONNECTORS.iter().copied().find(|c| c.source_kinds().contains(&kind))
}

fn sink_connector(kind: &str) -> Option<&'static dyn Connector> {
    CONNECTORS.iter().copied().find(|c| c.sink_kinds().contains(&kind))
}

/// Every connector the pipeline uses, each once.
fn used(spec: &PipelineSpec) -> Vec<&'static dyn Connector> {
    let mut out: Vec<&'static dyn Connector> = Vec::new();
    let kinds = spec.sources.iter().filter_map(|s| source_connector(&s.kind));
    for c in kinds.chain(spec.sinks.iter().filter_map(|s| sink_connector(&s.kind))) {
        if !out.iter().any(|o| o.name() == c.name()) {
            out.push(c);
        }
    }
    out
}

/// Checks that every kind exists and that its connector accepts its options.
pub fn check(spec: &PipelineSpec) -> Result<(), ConfigError> {
    let all = |f: fn(&dyn Connector) -> &'static [&'static str]| {
        CONNECTORS.iter().flat_map(|c| f(*c).iter().copied()).collect::<Vec<_>>().join(", ")
    };
    for s in &spec.sources {
        if source_connector(&s.kind).is_none() {
            let known = all(|c| c.source_kinds());
            return Err(s.options.error("kind", format!("unknown source kind `{}` (kinds: {known})", s.kind)));
        }
    }
    for s in &spec.sinks {
        if sink_connector(&s.kind).is_none() {
            let known = all(|c| c.sink_kinds());
            return Err(s.options.error("kind", format!("unknown sink kind `{}` (kinds: {known})", s.kind)));
        }
    }
    for c in used(spec) {
        c.check(spec)?;
    }
    Ok(())
}

/// The sessions of every connector a pipeline uses.
pub struct Sessions {
    open: Vec<(&'static dyn Connector, Box<dyn Session>)>,
}

impl Sessions {
    /// Opens a session for every connector the pipeline uses.
    pub fn open(cx: &SessionContext<'_>) -> anyhow::Result<Sessions> {
        let mut open = Vec::new();
        for c in used(cx.spec) {
            open.push((c, c.session(cx)?));
        }
        Ok(Sessions { open })
    }

    /// The coordinators of the connectors that commit with checkpoints.
    pub fn coordinators(&mut self) -> Vec<Box<dyn Coordinator>> {
        self.open.iter_mut().filter_map(|(_, s)| s.coordinator()).collect()
    }

    pub fn open_source(&mut self, cx: &SourceContext<'_>) -> anyhow::Result<Opened> {
        let session = self.session(&cx.spec.kind, |c| c.source_kinds())?;
        session.open_source(cx)
    }

    pub fn open_sink(&mut self, spec: &SinkSpec, metrics: &Metrics) -> anyhow::Result<Box<dyn Sink>> {
        let session = self.session(&spec.kind, |c| c.sink_kinds())?;
        session.open_sink(spec, metrics)
    }

    fn session(
        &mut self,
        kind: &str,
        kinds: fn(&dyn Connector) -> &'static [&'static str],
    ) -> anyhow::Result<&mut Box<dyn Session>> {
        let found = self.open.iter_mut().find(|(c, _)| kinds(*c).contains(&kind));
        found.map(|(_, s)| s).ok_or_else(|| anyhow::anyhow!("no connector serves kind `{kind}`"))
    }
}

/// The fields a source that leaves decoding to the pipeline reads.
pub fn field_plan(spec: &SourceSpec) -> Arc<FieldPlan> {
    Arc::new(FieldPlan {
        timestamp_field: spec.timestamp_field.clone(),
        key_field: spec.key_field.clone(),
        route_field: None,
        columns: None,
        schema: spec.schema.clone(),
        time_range: spec.time_range,
    })
}

/// Refuses a `schema` on a source whose events are never decoded.
fn no_schema(s: &SourceSpec) -> Result<(), ConfigError> {
    if s.schema.is_some() {
        return Err(s.options.error("schema", format!("does not apply to a source of kind `{}`", s.kind)));
    }
    Ok(())
}

/// The sources of `kinds` in `spec`, with their index.
fn sources_of<'a>(spec: &'a PipelineSpec, kinds: &'a [&str]) -> impl Iterator<Item = (usize, &'a SourceSpec)> + 'a {
    spec.sources.iter().enumerate().filter(move |(_, s)| kinds.contains(&s.kind.as_str()))
}

/// The sinks of `kinds` in `spec`.
fn sinks_of<'a>(spec: &'a PipelineSpec, kinds: &'a [&str]) -> impl Iterator<Item = &'a SinkSpec> + 'a {
    spec.sinks.iter().filter(move |s| kinds.contains(&s.kind.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_kind_is_served_once() {
        let mut sources: Vec<_> = CONNECTORS.iter().flat_map(|c| c.source_kinds().iter().copied()).collect();
        let mut sinks: Vec<_> = CONNECTORS.iter().flat_map(|c| c.sink_kinds().iter().copied()).collect();
        sources.sort();
        sinks.sort();
        assert_eq!(sources, ["file", "generator", "http", "kafka", "nexmark"]);
        assert_eq!(sinks, ["discard", "file", "kafka", "stdout"]);
    }

    #[test]
    fn an_unknown_kind_is_named_with_the_kinds_there_are() {
        let text = "[pipeline]\nname = \"p\"\n\n[[sources]]\nname = \"s\"\nkind = \"ftp\"\n";
        let spec = weir_config::load_str(Path::new("p.toml"), text).unwrap();
        assert_eq!(
            check(&spec).unwrap_err().to_string(),
            "p.toml:6: sources[0].kind: unknown source kind `ftp` (kinds: file, generator, nexmark, http, kafka)"
        );
    }
}
