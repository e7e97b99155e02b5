//! Checking the Kafka sources and sinks and the `[checkpoint]` section.

use super::load::{ConfigError, Locator};
use super::types::{CheckpointSection, SinkConfig, SourceConfig};
use std::path::PathBuf;
use std::time::Duration;

/// A Kafka source: a member of a consumer group reading one topic.
#[derive(Debug, Clone)]
pub struct KafkaSourceSpec {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    /// Where to begin without a checkpoint or a committed offset.
    pub start: KafkaStart,
    pub stop_at_end: bool,
    /// librdkafka settings passed through.
    pub properties: Vec<(String, String)>,
}

/// Where a Kafka source begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaStart {
    Earliest,
    Latest,
    /// The first offset at or after this time (epoch ms).
    Time(i64),
}

impl std::str::FromStr for KafkaStart {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" => Ok(KafkaStart::Earliest),
            "latest" => Ok(KafkaStart::Latest),
            t => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| KafkaStart::Time(d.timestamp_millis()))
                .map_err(|e| format!("`{t}` is neither \"earliest\", \"latest\" nor an RFC 3339 time ({e})")),
        }
    }
}

/// A Kafka sink: one message per event.
#[derive(Debug, Clone)]
pub struct KafkaSinkSpec {
    pub brokers: String,
    pub topic: String,
    pub key_field: Option<String>,
    pub properties: Vec<(String, String)>,
}

/// `[checkpoint]`, checked.
#[derive(Debug, Clone)]
pub struct CheckpointSpec {
    pub dir: PathBuf,
    pub interval: Duration,
    pub keep: usize,
    pub exactly_once: bool,
}

pub(super) fn source(
    i: usize,
    s: &SourceConfig,
    pipeline: &str,
    at: &Locator<'_>,
) -> Result<KafkaSourceSpec, ConfigError> {
    let key = |field: &str| format!("sources[{i}].{field}");
    let span = Some(s.kind.span());
    let foreign = [
        ("path", s.path.is_some()),
        ("queue", s.queue.is_some()),
        ("max_body", s.max_body.is_some()),
        ("generate", s.generate.is_some()),
        ("rate", s.rate.is_some()),
        ("count", s.count.is_some()),
        ("keys", s.keys.is_some()),
        ("seed", s.seed.is_some()),
        ("interval", s.interval.is_some()),
        ("jitter", s.jitter.is_some()),
    ];
    if let Some((field, _)) = foreign.iter().find(|(_, present)| *present) {
        return Err(at.error(span, key(field), "does not apply to a source of kind `kafka`"));
    }
    let required = |value: &Option<String>, field: &str| {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| at.error(span.clone(), key(field), format!("a kafka source needs `{field}`")))
    };
    let start = match &s.start {
        None => KafkaStart::Earliest,
        Some(t) => t.parse().map_err(|e: String| at.error(span.clone(), key("start"), e))?,
    };
    Ok(KafkaSourceSpec {
        brokers: required(&s.brokers, "brokers")?,
        topic: required(&s.topic, "topic")?,
        group: s.group.clone().unwrap_or_else(|| format!("weir-{pipeline}")),
        start,
        stop_at_end: s.stop_at_end.unwrap_or(false),
        properties: properties(&s.properties, &key("properties"), span.clone(), at)?,
    })
}

/// Kafka fields on a source of another kind.
pub(super) fn kafka_only_source_field(s: &SourceConfig) -> Option<&'static str> {
    [
        ("brokers", s.brokers.is_some()),
        ("topic", s.topic.is_some()),
        ("group", s.group.is_some()),
        ("stop_at_end", s.stop_at_end.is_some()),
        ("properties", s.properties.is_some()),
    ]
    .into_iter()
    .find_map(|(f, present)| present.then_some(f))
}

/// Kafka fields on a sink of another kind.
pub(super) fn kafka_only_sink_field(s: &SinkConfig) -> Option<&'static str> {
    [
        ("brokers", s.brokers.is_some()),
        ("topic", s.topic.is_some()),
        ("key_field", s.key_field.is_some()),
        ("properties", s.properties.is_some()),
    ]
    .into_iter()
    .find_map(|(f, present)| present.then_some(f))
}

pub(super) fn sink(i: usize, s: &SinkConfig, at: &Locator<'_>) -> Result<KafkaSinkSpec, ConfigError> {
    let key = |field: &str| format!("sinks[{i}].{field}");
    let span = Some(s.name.span());
    if s.path.is_some() {
        return Err(at.error(span, key("path"), "applies only to sinks of kind `file`"));
    }
    let required = |value: &Option<String>, field: &str| {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| at.error(span.clone(), key(field), format!("a kafka sink needs `{field}`")))
    };
    Ok(KafkaSinkSpec {
        brokers: required(&s.brokers, "brokers")?,
        topic: required(&s.topic, "topic")?,
        key_field: s.key_field.clone(),
        properties: properties(&s.properties, &key("properties"), span.clone(), at)?,
    })
}

fn properties(
    props: &Option<std::collections::BTreeMap<String, String>>,
    key: &str,
    span: Option<std::ops::Range<usize>>,
    at: &Locator<'_>,
) -> Result<Vec<(String, String)>, ConfigError> {
    // Weir sets these itself: overriding them would break its guarantees.
    const OWNED: [&str; 6] = [
        "enable.auto.commit",
        "enable.auto.offset.store",
        "transactional.id",
        "enable.idempotence",
        "group.id",
        "bootstrap.servers",
    ];
    let props = props.clone().unwrap_or_default();
    if let Some(k) = props.keys().find(|k| OWNED.contains(&k.as_str())) {
        return Err(at.error(span, format!("{key}.{k}"), "is set by Weir (brokers, group, [checkpoint]); remove it"));
    }
    Ok(props.into_iter().collect())
}

pub(super) fn checkpoint(
    c: &Option<CheckpointSection>,
    at: &Locator<'_>,
) -> Result<Option<CheckpointSpec>, ConfigError> {
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
    Ok(Some(CheckpointSpec { dir: c.dir.clone(), interval, keep, exactly_once: c.exactly_once.unwrap_or(true) }))
}
