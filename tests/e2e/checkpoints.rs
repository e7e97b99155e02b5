//! Checkpoints without Kafka: a file source resumes at the byte offset its
//! checkpoint recorded, window state survives a restart, and a damaged
//! checkpoint is reported loudly and the one before it used.

use crate::harness::{assert_ok, ndjson, scratch, toml_path, weir, write_lines};
use std::path::Path;

fn lines(from: u64, to: u64) -> Vec<String> {
    // Windows include their end: t = 1 s·i + 1 ms keeps line 100 out of (0, 100 s].
    (from..to).map(|i| format!(r#"{{"k":"k{}","t":{},"v":1}}"#, i % 3, 1_000 * i + 1)).collect()
}

fn pipeline(dir: &Path, input: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"
[pipeline]
name = "ckpt"
batch_size = 10

[[sources]]
name = "s"
kind = "file"
path = {input}
timestamp_field = "t"

[[steps]]
name = "count"
query = "SELECT k, COUNT(*) AS n FROM s GROUP BY k, TumblingWindow(second, 100)"

[[sinks]]
name = "out"
kind = "file"
path = {out}

[checkpoint]
dir = {ckpt}

[dead_letter]
path = {dead}
"#,
        dead = toml_path(&dir.join("dead.ndjson")),
        input = toml_path(input),
        out = toml_path(&dir.join("out.ndjson")),
        ckpt = toml_path(&dir.join("ckpt")),
    );
    let path = dir.join("p.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run_logged(p: &Path) -> String {
    let out = weir().arg("run").arg(p).env("RUST_LOG", "info").output().unwrap();
    assert_ok(&out);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_file_source_resumes_at_its_offset_and_a_damaged_checkpoint_falls_back() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(&input, lines(0, 250));
    let p = pipeline(dir.path(), &input);

    // Run 1 reads 250 events; run 2 finds nothing new: two checkpoints,
    // both at the end of the 250 lines.
    run_logged(&p);
    assert_eq!(ndjson(&dir.path().join("out.ndjson")).len(), 9, "3 keys × 3 windows");
    let log = run_logged(&p);
    assert!(log.contains("source resumes from the checkpoint"), "{log}");
    assert_eq!(ndjson(&dir.path().join("out.ndjson")).len(), 9, "a resumed run read old lines again");

    // 50 more lines; the newest checkpoint damaged on disk.
    let mut more = std::fs::read_to_string(&input).unwrap();
    for l in lines(250, 300) {
        more.push_str(&l);
        more.push('\n');
    }
    std::fs::write(&input, more).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("ckpt")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let newest = files.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(newest, bytes).unwrap();

    // Run 3 says so loudly, restores the one before (same position), and
    // reads only the 50 new lines, with their line numbers. Run 1's end of
    // input closed every window for good (its watermark went to the end of
    // time), so they are late: dead-lettered, not counted into a window.
    let log = run_logged(&p);
    assert!(log.contains("CHECKPOINT DAMAGED"), "{log}");
    assert!(log.contains("checksum mismatch"), "{log}");
    assert_eq!(ndjson(&dir.path().join("out.ndjson")).len(), 9);
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    let lines: Vec<u64> = dead.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, (251..=300).collect::<Vec<_>>());
    assert!(dead.iter().all(|d| d["reason"] == "late-event"));
}

/// Keyed plugin state (`weir:plugin/state`) is written into checkpoints and
/// restored: a running count per key continues across runs.
#[test]
fn plugin_keyed_state_survives_a_restart() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    let line = |i: u64| format!(r#"{{"k":"k{}","seq":{i}}}"#, i % 3);
    write_lines(&input, (0..100).map(line));
    let out = dir.path().join("out.ndjson");
    let text = format!(
        r#"
[pipeline]
name = "state"
batch_size = 7

[[sources]]
name = "s"
kind = "file"
path = {input}
key_field = "k"

[[steps]]
name = "count"
plugin = {plugin}

[[sinks]]
name = "out"
kind = "file"
path = {out}

[checkpoint]
dir = {ckpt}
"#,
        input = toml_path(&input),
        plugin = toml_path(&crate::harness::plugin("running_count")),
        out = toml_path(&out),
        ckpt = toml_path(&dir.path().join("ckpt")),
    );
    let p = dir.path().join("p.toml");
    std::fs::write(&p, text).unwrap();
    run_logged(&p);
    let mut all = std::fs::read_to_string(&input).unwrap();
    for i in 100..250 {
        all.push_str(&line(i));
        all.push('\n');
    }
    std::fs::write(&input, all).unwrap();
    run_logged(&p);

    // Every event once, and each key's counts 1, 2, 3, ... in input order
    // across both runs.
    let rows = ndjson(&out);
    assert_eq!(rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>(), (0..250).collect::<Vec<_>>());
    let mut seen = std::collections::HashMap::new();
    for r in &rows {
        let n = seen.entry(r["k"].as_str().unwrap().to_string()).or_insert(0u64);
        *n += 1;
        assert_eq!(r["n"].as_u64().unwrap(), *n, "{r}");
    }
}
