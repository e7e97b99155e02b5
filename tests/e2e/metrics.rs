//! Metric compliance, as Vector checks its components: every kind of
//! source, step and sink updates the metric families the docs promise for
//! it. Each pipeline runs with `--metrics-file` and the file is read back.
//! (The Kafka source and sink are checked in `kafka/`, against the broker.)

use crate::harness::{assert_ok, plugin, scratch, toml_path, weir, write_lines};
use crate::live::{Reaper, free_port, post, wait_until};
use std::path::Path;

/// One promised series: the metric, the label naming the component (and
/// a prefix of its value), and another label it must carry ("" for none).
type Series = (&'static str, &'static str, &'static str, &'static str);

/// The families a component of each kind must update. A counter must be
/// above zero, a gauge present.
pub const PROMISED: &[(&str, &[Series])] = &[
    (
        "source",
        &[
            ("weir_source_events_total", "source", "", ""),
            ("weir_source_bytes_total", "source", "", ""),
            ("weir_batch_size_events_count", "stage", "source:", ""),
        ],
    ),
    (
        "step",
        &[
            ("weir_step_events_in_total", "step", "", ""),
            ("weir_step_events_out_total", "step", "", "output=\"out\""),
            ("weir_batch_size_events_count", "stage", "step:", ""),
        ],
    ),
    (
        "plugin step",
        &[("weir_plugin_call_duration_seconds_count", "step", "", ""), ("weir_plugin_version_info", "step", "", "")],
    ),
    (
        "query step (windows)",
        &[
            ("weir_window_results_total", "step", "", "kind=\"final\""),
            ("weir_windows_open", "step", "", ""),
            ("weir_watermark_milliseconds", "step", "", ""),
        ],
    ),
    ("sink", &[("weir_sink_events_total", "sink", "", "")]),
    (
        "checkpoint",
        &[
            ("weir_checkpoints_total", "result", "", ""),
            ("weir_checkpoint_epoch", "", "", ""),
            ("weir_checkpoint_stall_seconds_count", "", "", ""),
        ],
    ),
    ("kafka source", &[("weir_kafka_consumer_lag", "source", "", "")]),
    (
        "shard",
        &[
            ("weir_shard_events_total", "shard", "", ""),
            ("weir_shard_busy_seconds_total", "shard", "", ""),
            ("weir_shard_queue_batches", "shard", "", ""),
        ],
    ),
    ("kafka sink (exactly-once)", &[("weir_kafka_transactions_total", "result", "", "")]),
];

const GAUGES: &[&str] =
    &["weir_windows_open", "weir_watermark_milliseconds", "weir_kafka_consumer_lag", "weir_shard_queue_batches"];

/// Asserts that `metrics` (Prometheus text) has, for the component `name`
/// of `kind`, every promised series with a value above zero (gauges: any).
pub fn assert_promised(metrics: &str, kind: &str, name: &str) {
    let series = PROMISED.iter().find(|(k, _)| *k == kind).unwrap_or_else(|| panic!("no kind {kind}")).1;
    for (metric, label, prefix, extra) in series {
        let component = format!("{label}=\"{prefix}{name}\"");
        let found = metrics.lines().find(|l| {
            l.starts_with(&format!("{metric}{{"))
                && (label.is_empty() || l.contains(&component))
                && (extra.is_empty() || l.contains(extra))
        });
        let line = found.unwrap_or_else(|| panic!("{kind} `{name}`: no series {metric}{{{component}}} in\n{metrics}"));
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(GAUGES.contains(metric) || value > 0.0, "{kind} `{name}`: {line} was never updated");
    }
}

fn run_with_metrics(dir: &Path, text: &str) -> String {
    let pipeline = dir.join("p.toml");
    std::fs::write(&pipeline, text).unwrap();
    let file = dir.join("metrics.prom");
    let out = weir().arg("run").arg(&pipeline).arg("--metrics-file").arg(&file).output().unwrap();
    assert_ok(&out);
    std::fs::read_to_string(&file).unwrap()
}

#[test]
fn file_and_generator_sources_plugin_and_query_steps_and_file_stdout_discard_sinks() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(&input, (0..500).map(|i| format!(r#"{{"k":"k{}","t":{},"v":{i}}}"#, i % 5, i * 100)));
    let text = format!(
        r#"
[pipeline]
name = "compliance"
batch_size = 64

[[sources]]
name = "events"
kind = "file"
path = {input}
timestamp_field = "t"

[[steps]]
name = "identity"
plugin = {plugin}

[[steps]]
name = "windows"
query = "SELECT k, COUNT(*) AS n FROM identity GROUP BY k, TumblingWindow(second, 10)"

[[sinks]]
name = "results"
kind = "file"
path = {out}

[[sinks]]
name = "copy"
kind = "stdout"
from = "identity"

[[sinks]]
name = "late"
kind = "discard"
from = "windows.late"

[checkpoint]
dir = {ckpt}

[dead_letter]
path = {dead}
"#,
        input = toml_path(&input),
        plugin = toml_path(&plugin("identity")),
        out = toml_path(&dir.path().join("out.ndjson")),
        ckpt = toml_path(&dir.path().join("ckpt")),
        dead = toml_path(&dir.path().join("dead.ndjson")),
    );
    let m = run_with_metrics(dir.path(), &text);
    assert_promised(&m, "source", "events");
    for step in ["identity", "windows"] {
        assert_promised(&m, "step", step);
    }
    assert_promised(&m, "plugin step", "identity");
    assert_promised(&m, "query step (windows)", "windows");
    for sink in ["results", "copy"] {
        assert_promised(&m, "sink", sink);
    }
    assert_promised(&m, "checkpoint", "ok");

    let text = format!(
        "[pipeline]\nname = \"gen\"\n\n[[sources]]\nname = \"vitals\"\nkind = \"generator\"\ngenerate = \"vitals\"\ncount = 300\n\n\
         [[sinks]]\nname = \"drop\"\nkind = \"discard\"\n\n[dead_letter]\npath = {}\n",
        toml_path(&dir.path().join("dead2.ndjson"))
    );
    let m = run_with_metrics(dir.path(), &text);
    assert_promised(&m, "source", "vitals");
    assert_promised(&m, "sink", "drop");
}

#[test]
fn an_http_source() {
    let dir = scratch();
    let port = free_port();
    let text = format!(
        "[pipeline]\nname = \"http\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n\n[[sources]]\nname = \"in\"\nkind = \"http\"\n\n\
         [[sinks]]\nname = \"out\"\nkind = \"file\"\npath = {}\n\n[dead_letter]\npath = {}\n",
        toml_path(&dir.path().join("out.ndjson")),
        toml_path(&dir.path().join("dead.ndjson")),
    );
    let pipeline = dir.path().join("p.toml");
    std::fs::write(&pipeline, text).unwrap();
    let file = dir.path().join("metrics.prom");
    let child = weir().arg("run").arg(&pipeline).arg("--metrics-file").arg(&file).spawn().unwrap();
    let mut child = Reaper(Some(child));
    wait_until("the server", || post(port, "/api/v1/ingest/in", b"{\"a\":1}\n{\"a\":2}").is_some_and(|r| r.0 == 200));
    let out = crate::live::sigterm(&mut child);
    assert_ok(&out);
    let m = std::fs::read_to_string(&file).unwrap();
    assert_promised(&m, "source", "in");
    assert_promised(&m, "sink", "out");
}
