//! The pipeline file's shape. Each field's doc comment is its reference text
//! (`docs/config.md` follows it).

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// A whole pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    pub pipeline: PipelineSection,
    #[serde(default)]
    pub server: Option<ServerSection>,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    pub dead_letter: Option<DeadLetterConfig>,
    /// `[onnx]`: where ONNX Runtime is.
    pub onnx: Option<OnnxSection>,
    /// `[models.<name>]`: ONNX models plugins may call.
    #[serde(default)]
    pub models: std::collections::BTreeMap<String, ModelConfig>,
    /// `[deploy]`: hot-loading new plugin versions.
    pub deploy: Option<DeploySection>,
    /// `[checkpoint]`: periodic checkpoints and exactly-once delivery.
    pub checkpoint: Option<CheckpointSection>,
    /// `[encryption]`: encryption at rest.
    pub encryption: Option<EncryptionSection>,
}

/// `[encryption]`: what Weir writes to disk that holds event data —
/// checkpoints, the dead-letter output and file sinks (each may opt out
/// with `encrypt = false`) — is encrypted with AES-256-GCM. The keys are
/// never in this file: give exactly one of `keys_file` and `keys_env`.
/// Keys are entries `<key id> <64 hex digits>` (one per line, or separated
/// by commas); the first encrypts new writes, every one listed decrypts.
/// To rotate, put a new key first and restart; keep the old ones while a
/// file written with them is needed. See docs/security.md.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSection {
    /// A file holding the keys (readable by Weir's user only).
    pub keys_file: Option<Spanned<PathBuf>>,
    /// An environment variable holding the keys.
    pub keys_env: Option<Spanned<String>>,
    /// Restore a checkpoint written before encryption was turned on
    /// (default false: with `[encryption]`, a plaintext checkpoint stops
    /// the start, since whoever can write the folder could plant one). Set
    /// it for the one restart that turns encryption on, then remove it.
    pub accept_plaintext_checkpoints: Option<bool>,
    /// Refused (also as `keys`): a key written here would be in every copy
    /// of the pipeline file. The error names the line, never the value.
    #[serde(default, alias = "keys")]
    pub key: Option<Spanned<toml::Value>>,
}

/// `[checkpoint]`: every `interval` the pipeline stops at a batch boundary
/// and writes one checkpoint: the position of every source and the state of
/// every step (windows), checksummed. With a Kafka sink and `exactly_once`,
/// the Kafka transaction holding the outputs since the last checkpoint and
/// the consumed offsets commits right after. On start, the newest complete
/// checkpoint is restored and every source resumes from it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// Folder of checkpoint files (created if missing); one pipeline per folder.
    pub dir: PathBuf,
    /// Time between checkpoints (default "1s").
    #[serde(default, with = "humantime_serde::option")]
    pub interval: Option<Duration>,
    /// Checkpoints kept on disk (default 3, at least 2: a corrupt newest
    /// one falls back to the one before).
    pub keep: Option<usize>,
    /// Kafka sinks write in transactions that also commit the consumed
    /// offsets, so `read_committed` readers see each result exactly once
    /// (default true). False: an idempotent producer, at-least-once.
    pub exactly_once: Option<bool>,
    /// Write only the state changed since the last checkpoint (default
    /// true): window slots and plugin keyed state entries put or removed.
    /// The first checkpoint of a run is whole. False: every one is whole.
    pub incremental: Option<bool>,
    /// Incremental checkpoints in a row after which a background thread
    /// folds the chain into a whole checkpoint (default 10), so a restore
    /// reads at most this many files past the whole one.
    pub compact_after: Option<usize>,
}

/// `[deploy]`: how new plugin versions reach a running pipeline (besides
/// `POST /api/v1/pipelines/<pipeline>/steps/<step>/versions`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySection {
    /// A folder to watch: a component written (or renamed) there as
    /// `<step>.wasm` is deployed to that step. Write elsewhere and rename in,
    /// so that a half-written file is never read.
    pub watch: Option<Spanned<PathBuf>>,
    /// Batches a new version must process without a failed call before the
    /// previous one is let go (default 16); a failure before that rolls
    /// back to the previous version, which then processes the batch.
    pub probation_batches: Option<u32>,
}

/// `[onnx]`: the ONNX Runtime library.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxSection {
    /// Path of `libonnxruntime.so.1.31.1`; default: `$ORT_DYLIB_PATH`.
    pub library: Option<PathBuf>,
}

/// `[models.<name>]`: an ONNX model run by the host; plugin steps that list
/// the name in `models` may call it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Path of the `.onnx` file. When the file changes, the new version is
    /// loaded and swapped in between batches (replace it by renaming).
    pub path: Spanned<PathBuf>,
    /// Threads ONNX Runtime may use within one call (default 1).
    pub threads: Option<usize>,
    /// How often the file is checked for a new version (default "1s";
    /// "0s" never checks).
    #[serde(default, with = "humantime_serde::option")]
    pub reload_check: Option<Duration>,
}

/// `[pipeline]`: the pipeline's name and batching.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Name of the pipeline; a label on every metric.
    pub name: String,
    /// Largest number of events in one batch (default 1024).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Most payload bytes in one batch (default "16MiB", at most "1GiB"); also
    /// the largest event a source accepts (a longer file line is
    /// dead-lettered).
    pub batch_bytes: Option<bytesize::ByteSize>,
    /// Longest a source waits to fill a batch before sending it (default "5ms").
    #[serde(default = "default_linger", with = "humantime_serde")]
    pub batch_linger: Duration,
    /// Shards the keyed steps run on, each on its own thread with its own
    /// state and plugin instances (default 1). Used only when the pipeline
    /// has a key: see docs/parallelism.md.
    pub parallelism: Option<u16>,
    /// Key groups: the most shards the pipeline can ever be rescaled to,
    /// and the unit its state is split by (default 128, at most 32768).
    /// Fixed for the life of the pipeline's checkpoints.
    pub max_parallelism: Option<u16>,
    /// Earliest event time accepted, RFC 3339 (default
    /// "1900-01-01T00:00:00Z"); earlier events are dead-lettered.
    pub event_time_min: Option<String>,
    /// Latest event time accepted, RFC 3339 (default
    /// "9999-12-31T23:59:59.999Z"); later events are dead-lettered.
    pub event_time_max: Option<String>,
}

fn default_batch_size() -> usize {
    1024
}

fn default_linger() -> Duration {
    Duration::from_millis(5)
}

/// `[server]`: the HTTP server for `/healthz`, `/readyz`, `/metrics`, the
/// admin API and HTTP ingestion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address to listen on, e.g. "127.0.0.1:9464". Port 0 picks a free one.
    pub listen: String,
    /// `[server.tls]`: serve HTTPS with this certificate and key.
    pub tls: Option<TlsSection>,
    /// Serve plain HTTP on an address other than loopback (default false:
    /// beyond loopback, `tls` is required).
    #[serde(default)]
    pub allow_plaintext: bool,
    /// `/metrics` without a token (default false: it needs the `read` scope).
    #[serde(default)]
    pub metrics_public: bool,
    /// Append-only JSON lines, one per admin action (default: none).
    pub audit_log: Option<PathBuf>,
    /// `[[server.tokens]]`: bearer tokens and their scopes. With none, the
    /// server must listen on loopback and checks nothing.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// A TOML file of `[[tokens]]` tables (`id`, `scopes`, `sha256`, as in
    /// `[[server.tokens]]`; no `env`), read at start and again on SIGHUP or
    /// when its contents change (checked every 250 ms): a token added,
    /// changed or removed there is accepted or refused within a second,
    /// without a restart. A file that cannot be read or used revokes every
    /// token in it until it is fixed (fail closed). Replace it atomically
    /// (write a new file, rename it over the old one). At most 1 MiB.
    pub tokens_file: Option<Spanned<PathBuf>>,
    /// Most connections open at once (default 512). At the limit, a new
    /// connection closes the one that has been quiet longest; the process's
    /// file-descriptor limit must leave 256 more.
    pub max_connections: Option<usize>,
    /// Longest a client may take to send a request's headers, and longest
    /// a kept-alive connection may sit idle (default "10s"); also the TLS
    /// handshake's limit.
    #[serde(default, with = "humantime_serde::option")]
    pub header_timeout: Option<Duration>,
    /// Longest a client may take to send a request's body (default "30s");
    /// past it the request gets 408.
    #[serde(default, with = "humantime_serde::option")]
    pub body_timeout: Option<Duration>,
    /// Refused admin requests written to the audit log per second,
    /// sustained (default 1); all are counted, the rest not written.
    pub audit_denials_per_second: Option<u32>,
    /// Refused admin requests written at once before that rate applies (default 20).
    pub audit_denials_burst: Option<u32>,
}

/// `[server.tls]`: PEM files for HTTPS (rustls).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Certificate chain, PEM.
    pub cert: Spanned<PathBuf>,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: Spanned<PathBuf>,
}

/// `[[server.tokens]]`: one bearer token. The file never holds the token
/// itself: give its SHA-256 (`sha256`), or the environment variable that
/// holds it (`env`); either way only the hash is kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for the token, written to the audit log (never the token).
    pub id: Spanned<String>,
    /// What the token may do: "ingest", "read", "admin".
    pub scopes: Vec<Spanned<String>>,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    pub sha256: Option<Spanned<String>>,
    /// Name of an environment variable holding the token.
    pub env: Option<Spanned<String>>,
}

/// The contents of `[server] tokens_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    /// `[[tokens]]`: as `[[server.tokens]]`, with `sha256` (`env` is read
    /// once at start, so it has no place in a file read again).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// `[[sources]]`: where events come from. The keys below are common to
/// every kind; the others belong to the kind (see its connector).
#[derive(Debug, Deserialize)]
pub struct SourceConfig {
    /// Unique name; dead-letter records and metrics use it.
    pub name: Spanned<String>,
    /// The connector: "file" (NDJSON replay), "generator" (synthetic
    /// events), "http" (`POST /api/v1/ingest/<name>`) or "kafka" (a
    /// consumer group).
    pub kind: Spanned<String>,
    /// Field holding the event time: epoch milliseconds or an RFC 3339 string.
    /// Without it, the event time is the time of ingestion.
    pub timestamp_field: Option<String>,
    /// Field holding the event's key (string or number). An event without it
    /// goes to the dead-letter output.
    pub key_field: Option<String>,
    /// How far event times may run behind the latest one, e.g. "5s"
    /// (default "0s"): query steps' watermarks trail the latest event time
    /// by this much (see queries.md).
    #[serde(default, with = "humantime_serde::option")]
    pub max_out_of_orderness: Option<Duration>,
    /// How long a partition of the source (a Kafka partition; a source
    /// without partitions is one) may send nothing before the pipeline's
    /// watermark stops waiting for it (default "30s"; "0s": never).
    #[serde(default, with = "humantime_serde::option")]
    pub idle_timeout: Option<Duration>,
    /// A JSON Schema file each event must satisfy; violations go to the
    /// dead-letter output with reason `schema-violation` (kinds that
    /// decode events: file, http, kafka).
    pub schema: Option<Spanned<PathBuf>>,
    /// The kind's own keys, read by its connector.
    #[serde(flatten)]
    pub options: toml::Table,
}

/// The keys of [`SourceConfig`] that every kind has.
pub const SOURCE_KEYS: &[&str] =
    &["name", "kind", "timestamp_field", "key_field", "max_out_of_orderness", "idle_timeout", "schema"];

/// `[[steps]]`: processing, in order; each step takes the previous step's
/// main output (or all sources, for the first). A step runs a plugin
/// (`plugin`) or a query (`query`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Unique name; a label on metrics and the `step` of dead-letter records.
    pub name: Spanned<String>,
    /// Path of the plugin component (.wasm).
    pub plugin: Option<Spanned<PathBuf>>,
    /// plugin: configuration string handed to the plugin's `init`.
    pub config: Option<String>,
    /// plugin: a file whose contents are handed to `init` instead of `config`.
    pub config_file: Option<Spanned<PathBuf>>,
    /// plugin: sandbox limits for each call.
    pub limits: Option<Limits>,
    /// plugin: names of the `[models.<name>]` the plugin may call with `infer`.
    pub models: Option<Spanned<Vec<String>>>,
    /// plugin: capabilities granted to the sandbox; none by default.
    pub grants: Option<Grants>,
    /// plugin: the circuit breaker.
    pub circuit: Option<CircuitConfig>,
    /// plugin: the named outputs it may emit to besides "out" (outputs a
    /// sink takes, `from = "<step>.<output>"`, count as declared). Events
    /// emitted to any other output are dead-lettered (`plugin-invalid-output`)
    /// and counted under the output label "undeclared". At most 32.
    pub outputs: Option<Vec<String>>,
    /// A query in Stream Analytics-style SQL (see docs/queries.md).
    pub query: Option<Spanned<String>>,
    /// query: how long after a window fires a late event still corrects
    /// it (default "0s": a late event goes to the `late` output at once).
    #[serde(default, with = "humantime_serde::option")]
    pub allowed_lateness: Option<Duration>,
}

/// Per-call sandbox limits of a plugin step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Longest a single `process` call may run (default "100ms"); past it the
    /// call is interrupted and the batch retried in halves, down to the
    /// events that fail alone, which are dead-lettered.
    #[serde(default = "default_deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// Largest linear memory the plugin may have (default "128MiB").
    #[serde(default = "default_memory")]
    pub memory: bytesize::ByteSize,
    /// Most events a plugin may emit for one input event (default 1000);
    /// more fails the batch with reason `plugin-output-limit`.
    #[serde(default = "default_outputs_per_event")]
    pub max_outputs_per_event: u32,
    /// Most payload bytes a plugin may emit for one batch (default "32MiB");
    /// more fails the batch with reason `plugin-output-limit`.
    #[serde(default = "default_output_bytes")]
    pub max_output_bytes: bytesize::ByteSize,
    /// Most bytes of keyed state (`weir:plugin/state`) the step may hold per
    /// shard, counting keys, names, values and 64 bytes per entry (default
    /// "64MiB"); a `put` past it fails the call with reason `plugin-state-quota`.
    #[serde(default = "default_state_bytes")]
    pub state_bytes: bytesize::ByteSize,
    /// Most entries (key and name) of keyed state the step may hold per
    /// shard (default 1000000); past it, as `state_bytes`.
    #[serde(default = "default_state_keys")]
    pub state_keys: u64,
    /// Lines per second the plugin may log, sustained, per stream (stdout,
    /// stderr, the `log` import) and instance (default 20); more are
    /// dropped and counted.
    #[serde(default = "default_log_rate")]
    pub log_lines_per_second: u32,
    /// Lines it may log at once before `log_lines_per_second` applies (default 100).
    #[serde(default = "default_log_burst")]
    pub log_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: default_deadline(),
            memory: default_memory(),
            max_outputs_per_event: default_outputs_per_event(),
            max_output_bytes: default_output_bytes(),
            state_bytes: default_state_bytes(),
            state_keys: default_state_keys(),
            log_lines_per_second: default_log_rate(),
            log_burst: default_log_burst(),
        }
    }
}

fn default_state_bytes() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(64)
}

fn default_log_rate() -> u32 {
    20
}

fn default_log_burst() -> u32 {
    100
}

fn default_state_keys() -> u64 {
    1_000_000
}

fn default_outputs_per_event() -> u32 {
    1000
}

fn default_output_bytes() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(32)
}

/// `[steps.grants]`: what a plugin may reach besides its events. A plugin
/// gets no files, no environment, no network and a wall clock stuck at
/// 1970-01-01 unless granted here. Network access is never granted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// A host folder the plugin may read (not write), seen in the plugin as `/data`.
    pub read_dir: Option<PathBuf>,
    /// Names of environment variables the plugin may read (their values
    /// are taken from Weir's environment when an instance starts).
    #[serde(default)]
    pub env: Vec<String>,
    /// The real wall clock (default false: the clock reads 1970-01-01).
    /// Event times come with the events; plugins rarely need it.
    #[serde(default)]
    pub wall_clock: bool,
}

/// `[steps.circuit]`: after `failures` consecutive poison events (events
/// whose call fails with them alone, see docs/hot-loading.md) the
/// circuit opens: batches skip the plugin and go to the `fallback`
/// plugin, or to the dead-letter output with reason `circuit-open`. After
/// `cool_down` one batch tries the plugin again (half-open): success closes
/// the circuit, failure opens it for another `cool_down`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitConfig {
    /// Consecutive poison events that open the circuit (default 5; 0 never opens it).
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// How long the circuit stays open before a trial batch (default "30s").
    #[serde(default = "default_cool_down", with = "humantime_serde")]
    pub cool_down: Duration,
    /// A plugin component that processes the step's batches while the circuit is open.
    pub fallback: Option<Spanned<PathBuf>>,
    /// Configuration string for the fallback plugin's `init`.
    pub fallback_config: Option<String>,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            failures: default_failures(),
            cool_down: default_cool_down(),
            fallback: None,
            fallback_config: None,
        }
    }
}

fn default_failures() -> u32 {
    5
}

fn default_cool_down() -> Duration {
    Duration::from_secs(30)
}

fn default_deadline() -> Duration {
    Duration::from_millis(100)
}

fn default_memory() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(128)
}

/// `[[sinks]]`: where results go. The keys below are common to every
/// kind; the others belong to the kind (see its connector).
#[derive(Debug, Deserialize)]
pub struct SinkConfig {
    /// Unique name.
    pub name: Spanned<String>,
    /// The connector: "file" (NDJSON), "stdout" (NDJSON), "kafka" (one
    /// message per event) or "discard" (benchmarks).
    pub kind: Spanned<String>,
    /// What the sink takes: "step" (its main output), "step.output" (a named
    /// output) or a source name. Default: the last step's main output, or the
    /// sources when there are no steps.
    pub from: Option<Spanned<String>>,
    /// The kind's own keys, read by its connector.
    #[serde(flatten)]
    pub options: toml::Table,
}

/// The keys of [`SinkConfig`] that every kind has.
pub const SINK_KEYS: &[&str] = &["name", "kind", "from"];

/// `[dead_letter]`: where invalid, rejected and failed events go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// NDJSON file of dead-letter records, created at the first record
    /// (default "dead-letter.ndjson").
    pub path: Option<PathBuf>,
    /// Fields whose values are masked ("***") wherever they appear in the
    /// original event of a dead-letter record, e.g. ["PatientId", "ssn"].
    #[serde(default)]
    pub redact: Vec<String>,
}
