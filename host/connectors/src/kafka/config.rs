//! The options of Kafka sources and sinks, checked.

use serde::Deserialize;
use std::collections::BTreeMap;
use weir_config::{ConfigError, Options, PipelineSpec, SinkSpec, SourceSpec};
use weir_core::position::StartAt;

/// Where a Kafka source begins without a checkpoint or a committed offset.
pub type KafkaStart = StartAt;

/// `[[sources]] kind = "kafka"`: a member of a consumer group reading one
/// topic; needs a `[checkpoint]` section (offsets commit with checkpoints).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceOptions {
    /// Bootstrap servers, "host:port,host:port".
    pub brokers: String,
    /// The topic to read (all its partitions, shared with the other
    /// members of the consumer group).
    pub topic: String,
    /// Consumer group (default "weir-<pipeline>").
    pub group: Option<String>,
    /// Where to begin when there is no checkpoint and the group has no
    /// committed offset: "earliest" (default), "latest" or an RFC 3339 time.
    pub start: Option<String>,
    /// Stop once every assigned partition has been read to its end (for
    /// replays and benchmarks; default false: run until stopped).
    pub stop_at_end: Option<bool>,
    /// librdkafka settings passed through as they are, e.g.
    /// `{ "security.protocol" = "sasl_ssl", "sasl.mechanism" = "SCRAM-SHA-512",
    /// "sasl.password" = { env = "KAFKA_PASSWORD" } }`. A value is a string,
    /// or `{ env = "VAR" }` / `{ file = "path" }` read when the client is
    /// made; secrets (passwords, private keys) may only be given that way.
    pub properties: Option<BTreeMap<String, Property>>,
}

/// `[[sinks]] kind = "kafka"`: one message per event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkOptions {
    /// Bootstrap servers, "host:port,host:port".
    pub brokers: String,
    /// The topic to write.
    pub topic: String,
    /// A field of the event whose value (string or number) becomes the
    /// message key, so that one key's results share a partition.
    pub key_field: Option<String>,
    /// librdkafka settings passed through as they are (TLS, SASL, ...),
    /// as for sources: secrets only as `{ env = "VAR" }` or `{ file = "path" }`.
    pub properties: Option<BTreeMap<String, Property>>,
    /// Add each event's `"_weir"` metadata, as the file sink does (default false).
    #[serde(default)]
    pub metadata: bool,
}

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
    pub properties: Vec<(String, Property)>,
}

/// A Kafka sink: one message per event.
#[derive(Debug, Clone)]
pub struct KafkaSinkSpec {
    pub brokers: String,
    pub topic: String,
    pub key_field: Option<String>,
    pub properties: Vec<(String, Property)>,
    pub metadata: bool,
}

/// A librdkafka property's value: given, or read from the environment or
/// a file when the client is made (so that a secret is never in the
/// pipeline file, and never in a log line: `Debug` shows only where it
/// comes from).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Property {
    Value(String),
    Env { env: String },
    File { file: std::path::PathBuf },
}

impl std::fmt::Debug for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Property::Value(_) => f.write_str("<value>"),
            Property::Env { env } => write!(f, "<env {env}>"),
            Property::File { file } => write!(f, "<file {}>", file.display()),
        }
    }
}

impl Property {
    /// The value: from the environment or the file (trailing newlines
    /// dropped) when it is given that way.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Property::Value(v) => Ok(v.clone()),
            Property::Env { env } => std::env::var(env).map_err(|_| format!("environment variable `{env}` is not set")),
            Property::File { file } => weir_config::read_at_most(file, MAX_PROPERTY_FILE)
                .and_then(|b| String::from_utf8(b).map_err(|_| std::io::Error::other("not UTF-8")))
                .map(|t| t.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("cannot read `{}`: {e}", file.display())),
        }
    }
}

/// Largest file a property's value is read from.
const MAX_PROPERTY_FILE: u64 = 64 << 10;

/// librdkafka properties that hold secrets (its `_RK_SENSITIVE` ones that
/// are not paths or names, and their aliases): never written in the
/// pipeline file.
const SECRETS: [&str; 10] = [
    "sasl.password",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl_key",
    "ssl.keystore.password",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
];

fn required(o: &Options, value: String, field: &str, what: &str) -> Result<String, ConfigError> {
    if value.is_empty() {
        return Err(o.error(field, format!("a kafka {what} needs `{field}`")));
    }
    Ok(value)
}

impl KafkaSourceSpec {
    pub fn of(s: &SourceSpec, spec: &PipelineSpec) -> Result<KafkaSourceSpec, ConfigError> {
        let o = &s.options;
        if spec.checkpoint.is_none() {
            return Err(o.error(
                "kind",
                "a kafka source needs a [checkpoint] section: its offsets are committed with each checkpoint",
            ));
        }
        let k: KafkaSourceOptions = o.deserialize()?;
        let start = match &k.start {
            None => KafkaStart::Earliest,
            Some(t) => t.parse().map_err(|e: String| o.error("start", e))?,
        };
        Ok(KafkaSourceSpec {
            brokers: required(o, k.brokers, "brokers", "source")?,
            topic: required(o, k.topic, "topic", "source")?,
            group: k.group.unwrap_or_else(|| format!("weir-{}", spec.name)),
            start,
            stop_at_end: k.stop_at_end.unwrap_or(false),
            properties: properties(o, k.properties)?,
        })
    }
}

impl KafkaSinkSpec {
    pub fn of(s: &SinkSpec) -> Result<KafkaSinkSpec, ConfigError> {
        let o = &s.options;
        let k: KafkaSinkOptions = o.deserialize()?;
        Ok(KafkaSinkSpec {
            brokers: required(o, k.brokers, "brokers", "sink")?,
            topic: required(o, k.topic, "topic", "sink")?,
            key_field: k.key_field,
            properties: properties(o, k.properties)?,
            metadata: k.metadata,
        })
    }
}

fn properties(o: &Options, props: Option<BTreeMap<String, Property>>) -> Result<Vec<(String, Property)>, ConfigError> {
    // Weir sets these itself: overriding them would break its guarantees.
    const OWNED: [&str; 6] = [
        "enable.auto.commit",
        "enable.auto.offset.store",
        "transactional.id",
        "enable.idempotence",
        "group.id",
        "bootstrap.servers",
    ];
    let props = props.unwrap_or_default();
    for (k, v) in &props {
        let key = format!("properties.{k}");
        if OWNED.contains(&k.as_str()) {
            return Err(o.error(&key, "is set by Weir (brokers, group, [checkpoint]); remove it"));
        }
        if SECRETS.contains(&k.as_str()) && matches!(v, Property::Value(_)) {
            return Err(o.error(
                &key,
                "is a secret: give `{ env = \"VARIABLE\" }` or `{ file = \"path\" }`, never the value in the pipeline file",
            ));
        }
        // Checked now, so that a missing secret stops the start, not the
        // first connection; read again when each client is made.
        v.resolve().map_err(|e| o.error(&key, e))?;
    }
    Ok(props.into_iter().collect())
}

/// Exactly-once needs one transaction: every Kafka sink on one cluster,
/// written by one producer.
pub fn one_producer(spec: &PipelineSpec, sinks: &[(&SinkSpec, KafkaSinkSpec)]) -> Result<(), ConfigError> {
    if !spec.checkpoint.as_ref().is_some_and(|c| c.exactly_once) {
        return Ok(());
    }
    let Some((_, first)) = sinks.first() else { return Ok(()) };
    for (s, k) in &sinks[1..] {
        if k.brokers != first.brokers || k.properties != first.properties {
            return Err(s.options.error(
                "brokers",
                "with exactly_once, every kafka sink writes to the same brokers with the same properties (one transaction)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const HEAD: &str = "[pipeline]\nname = \"p\"\n\n";
    const SRC: &str = "[[sources]]\nname = \"k\"\nkind = \"kafka\"\nbrokers = \"b:9092\"\ntopic = \"t\"\n";
    const CK: &str = "\n[checkpoint]\ndir = \"/tmp/weir-ckpt\"\n";

    fn err(text: &str) -> String {
        let spec = weir_config::load_str(Path::new("p.toml"), text).map_err(|e| e.to_string());
        match spec {
            Ok(spec) => crate::check(&spec).unwrap_err().to_string(),
            Err(e) => e,
        }
    }

    #[test]
    fn kafka_sources_and_sinks_are_checked() {
        let e = err(&format!("{HEAD}{SRC}"));
        assert_eq!(
            e,
            "p.toml:6: sources[0].kind: a kafka source needs a [checkpoint] section: its offsets are committed with each checkpoint"
        );
        let spec = weir_config::load_str(Path::new("p.toml"), &format!("{HEAD}{SRC}{CK}")).unwrap();
        crate::check(&spec).unwrap();
        let k = super::KafkaSourceSpec::of(&spec.sources[0], &spec).unwrap();
        assert_eq!((k.group.as_str(), k.start, k.stop_at_end), ("weir-p", super::KafkaStart::Earliest, false));
        let c = spec.checkpoint.unwrap();
        assert_eq!((c.interval, c.keep, c.exactly_once), (std::time::Duration::from_secs(1), 3, true));
        let e = err(&format!("{HEAD}{SRC}start = \"yesterday\"\n{CK}"));
        assert!(e.starts_with("p.toml:6: sources[0].start: `yesterday` is neither"), "{e}");
        let e = err(&format!("{HEAD}{SRC}properties = {{ \"enable.auto.commit\" = \"true\" }}\n{CK}"));
        assert!(e.contains("sources[0].properties.enable.auto.commit: is set by Weir"), "{e}");
        let e =
            err(&format!("{HEAD}{SRC}{CK}\n[[sinks]]\nname = \"f\"\nkind = \"file\"\npath = \"x\"\ntopic = \"t\"\n"));
        assert!(e.contains("unknown field `topic`"), "{e}");
        let e = err(&format!("{HEAD}{SRC}{CK}\n[[sinks]]\nname = \"o\"\nkind = \"kafka\"\nbrokers = \"b\"\n"));
        assert!(e.contains("missing field `topic`"), "{e}");
        let two = "\n[[sinks]]\nname = \"a\"\nkind = \"kafka\"\nbrokers = \"b\"\ntopic = \"x\"\n\n[[sinks]]\nname = \"c\"\nkind = \"kafka\"\nbrokers = \"other\"\ntopic = \"y\"\n";
        let e = err(&format!("{HEAD}{SRC}{CK}{two}"));
        assert!(e.ends_with("sinks[1].brokers: with exactly_once, every kafka sink writes to the same brokers with the same properties (one transaction)"), "{e}");
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file_and_are_never_shown() {
        let e = err(&format!("{HEAD}{SRC}properties = {{ \"sasl.password\" = \"hunter2-secret\" }}\n{CK}"));
        assert!(e.contains("sources[0].properties.sasl.password: is a secret: give `{ env"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = err(&format!(
            "{HEAD}{SRC}properties = {{ \"sasl.password\" = {{ env = \"WEIR_TEST_NO_SUCH_VAR\" }} }}\n{CK}"
        ));
        assert!(
            e.contains("sources[0].properties.sasl.password: environment variable `WEIR_TEST_NO_SUCH_VAR` is not set"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("password");
        std::fs::write(&secret, "hunter2-secret\n").unwrap();
        let text = format!(
            "{HEAD}{SRC}properties = {{ \"sasl.password\" = {{ file = {:?} }}, \"sasl.username\" = \"weir\" }}\n{CK}",
            secret.display().to_string()
        );
        let spec = weir_config::load_str(Path::new("p.toml"), &text).unwrap();
        let k = super::KafkaSourceSpec::of(&spec.sources[0], &spec).unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("hunter2") && shown.contains("<file "), "{shown}");
        let values: Vec<String> = k.properties.iter().map(|(_, v)| v.resolve().unwrap()).collect();
        assert_eq!(values, ["hunter2-secret", "weir"], "the file's value without its newline");
    }
}
