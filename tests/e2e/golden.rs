//! The golden matrix: every pipeline under `examples/` runs twice, straight
//! through and with a `kill -9` after a checkpoint and a restart, and both
//! runs write exactly its `expected-<output>.ndjson` files — as Arroyo runs
//! every golden query straight and again through checkpoint → restore.
//! Each pipeline that can split by key runs both ways again on two shards
//! (`parallelism = 2`): the same lines, in any order across keys.
//!
//! The killed run is the example's own file with a `[checkpoint]` section
//! added and its sources paced (`rate`), so that it is still running when
//! its first checkpoint lands; the restart resumes from the newest
//! checkpoint. Outputs written after that checkpoint are cut back and
//! written again, so each line appears once.

use crate::harness::{assert_ok, plugin, repo, scratch, stderr, weir};
use crate::live::{Reaper, wait_until};
use std::path::{Path, PathBuf};

/// Every pipeline file of the examples (not their benchmark inputs).
fn example_pipelines() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(repo().join("examples")).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "toml") {
                out.push(f.strip_prefix(repo()).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The outputs a run of `example` writes into `out`: (written, expected).
/// Every file sink and the dead-letter output; a dead-letter output with no
/// expected file must stay empty.
struct Golden {
    pipeline: PathBuf,
    outputs: Vec<(PathBuf, Option<PathBuf>)>,
    /// The dead-letter output (the last of `outputs`).
    dead_letter: PathBuf,
    paced: toml::Table,
}

fn golden(example: &Path, dir: &Path) -> Golden {
    let text = std::fs::read_to_string(repo().join(example)).unwrap();
    let folder = example.parent().unwrap();
    let name = folder.file_name().unwrap().to_str().unwrap();
    let out_prefix = format!("out/{name}/");
    assert!(text.contains(&out_prefix), "{}: writes under {out_prefix}", example.display());
    let text = text.replace(&out_prefix, &format!("{}/", dir.join("out").display()));
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut outputs = Vec::new();
    let expected = |path: &str| {
        let file = Path::new(path).file_name().unwrap().to_str().unwrap();
        repo().join(folder).join(format!("expected-{file}"))
    };
    for sink in table["sinks"].as_array().unwrap() {
        if let Some(path) = sink.get("path").and_then(|p| p.as_str()) {
            let want = expected(path);
            assert!(want.is_file(), "{}: no {} for sink output {path}", example.display(), want.display());
            outputs.push((PathBuf::from(path), Some(want)));
        }
    }
    let dead = table["dead_letter"]["path"].as_str().unwrap();
    let want = expected(dead);
    outputs.push((PathBuf::from(dead), want.is_file().then_some(want)));
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, &text).unwrap();
    Golden { pipeline, outputs, dead_letter: PathBuf::from(dead), paced: table }
}

impl Golden {
    /// The same outputs as the expected files, as sets of lines: shards
    /// interleave their keys' results in any order.
    fn assert_same_lines(&self, run: &str) {
        let sorted = |text: String| {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        for (written, expected) in &self.outputs {
            let got = sorted(std::fs::read_to_string(written).unwrap_or_default());
            let want = sorted(expected.as_ref().map(|e| std::fs::read_to_string(e).unwrap()).unwrap_or_default());
            assert!(
                got == want,
                "{run}: {} differs from {} ({} lines, expected {})",
                written.display(),
                expected.as_ref().map_or("nothing".into(), |e| e.display().to_string()),
                got.len(),
                want.len()
            );
        }
    }

    /// `pipeline` with `[pipeline] parallelism = 2`, written next to it.
    fn on_two_shards(pipeline: &Path) -> PathBuf {
        let mut t: toml::Table = toml::from_str(&std::fs::read_to_string(pipeline).unwrap()).unwrap();
        t["pipeline"].as_table_mut().unwrap().insert("parallelism".into(), toml::Value::Integer(2));
        let path = pipeline.with_extension("sharded.toml");
        std::fs::write(&path, toml::to_string(&t).unwrap()).unwrap();
        path
    }

    /// `batched_like_the_example`: false for a paced run, whose batches are
    /// smaller: dead letters of different stages (ingestion, a plugin)
    /// then interleave otherwise, so they are compared as a set of records.
    fn assert_outputs(&self, run: &str, batched_like_the_example: bool) {
        let sorted = |text: String| {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort();
            lines.join("\n")
        };
        for (written, expected) in &self.outputs {
            let mut got = std::fs::read_to_string(written).unwrap_or_default();
            let mut want = expected.as_ref().map(|e| std::fs::read_to_string(e).unwrap()).unwrap_or_default();
            if !batched_like_the_example && *written == self.dead_letter {
                (got, want) = (sorted(got), sorted(want));
            }
            assert!(
                got == want,
                "{run}: {} differs from {} ({} lines, expected {})",
                written.display(),
                expected.as_ref().map_or("nothing".into(), |e| e.display().to_string()),
                got.lines().count(),
                want.lines().count()
            );
        }
    }

    /// The pipeline with a checkpoint every 50 ms and sources paced to
    /// last about three seconds.
    fn killable(&self, dir: &Path) -> PathBuf {
        let mut t = self.paced.clone();
        let ckpt = dir.join("ckpt");
        let section: toml::Table =
            toml::from_str(&format!("dir = {:?}\ninterval = \"50ms\"", ckpt.display().to_string())).unwrap();
        t.insert("checkpoint".into(), toml::Value::Table(section));
        for s in t["sources"].as_array_mut().unwrap() {
            let s = s.as_table_mut().unwrap();
            let events = match s["kind"].as_str().unwrap() {
                "generator" | "nexmark" => s["count"].as_integer().unwrap(),
                "file" => {
                    let path = repo().join(s["path"].as_str().unwrap());
                    std::fs::read_to_string(path).unwrap().lines().count() as i64
                }
                other => panic!("no pace for a {other} source"),
            };
            s.insert("rate".into(), toml::Value::Integer((events / 3).max(1)));
        }
        let path = dir.join("killable.toml");
        std::fs::write(&path, toml::to_string(&t).unwrap()).unwrap();
        path
    }
}

/// Runs `example` straight, then killed after a checkpoint and restarted,
/// then both again on two shards.
fn straight_and_killed(example: &str) {
    straight_and_killed_on(example, 1);
    straight_and_killed_on(example, 2);
}

/// Runs `example` on one shard, or refuses to split it and says why.
fn refused_on_two_shards(example: &str, why: &str) {
    straight_and_killed_on(example, 1);
    let dir = scratch();
    let g = golden(Path::new(example), dir.path());
    let out = weir().arg("run").arg(Golden::on_two_shards(&g.pipeline)).output().unwrap();
    assert!(!out.status.success(), "{example} ran on two shards");
    assert!(stderr(&out).contains("pipeline.parallelism") && stderr(&out).contains(why), "{}", stderr(&out));
}

fn straight_and_killed_on(example: &str, shards: u16) {
    let example = Path::new(example);
    // The examples load the Rust plugins the build makes.
    plugin("drug_interaction");
    let dir = scratch();
    let g = golden(example, dir.path());
    let pipeline = if shards == 1 { g.pipeline.clone() } else { Golden::on_two_shards(&g.pipeline) };
    let out = weir().arg("run").arg(&pipeline).output().unwrap();
    assert_ok(&out);
    if shards == 1 {
        g.assert_outputs("straight", true);
    } else {
        g.assert_same_lines("straight on two shards");
    }

    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    let killable = g.killable(dir.path());
    let killable = if shards == 1 { killable } else { Golden::on_two_shards(&killable) };
    let ckpt = dir.path().join("ckpt");
    let mut child = Reaper(Some(weir().arg("run").arg(&killable).arg("-q").spawn().unwrap()));
    // Killed once an incremental checkpoint is on disk: the restart folds a chain.
    wait_until("an incremental checkpoint", || {
        std::fs::read_dir(&ckpt).is_ok_and(|d| d.flatten().any(|e| e.path().extension().is_some_and(|x| x == "delta")))
    });
    let running = child.0.as_mut().unwrap();
    assert!(running.try_wait().unwrap().is_none(), "{}: the paced run ended before it was killed", example.display());
    running.kill().unwrap(); // SIGKILL
    running.wait().unwrap();
    child.0 = None;
    let out = weir().arg("run").arg(&killable).env("RUST_LOG", "info").output().unwrap();
    assert_ok(&out);
    assert!(stderr(&out).contains("restoring checkpoint"), "the restart resumed from nothing:\n{}", stderr(&out));
    if shards == 1 {
        g.assert_outputs("killed and restarted", false);
    } else {
        g.assert_same_lines("killed and restarted on two shards");
    }
}

#[test]
fn drug_interactions() {
    straight_and_killed("examples/drug-interactions/pipeline.toml");
}

#[test]
fn fraud_detection() {
    straight_and_killed("examples/fraud-detection/pipeline.toml");
}

#[test]
fn patient_monitoring() {
    straight_and_killed("examples/patient-monitoring/pipeline.toml");
}

#[test]
fn patient_monitoring_with_risk() {
    // A plugin step after the windows, and no key_field for its keyed state.
    refused_on_two_shards("examples/patient-monitoring/with-risk.toml", "plugin step `risk`");
}

#[test]
fn nexmark_q0() {
    straight_and_killed("examples/nexmark/q0.toml");
}

#[test]
fn nexmark_q1() {
    straight_and_killed("examples/nexmark/q1.toml");
}

#[test]
fn nexmark_q2() {
    straight_and_killed("examples/nexmark/q2.toml");
}

#[test]
fn nexmark_q11() {
    straight_and_killed("examples/nexmark/q11.toml");
}

#[test]
fn patient_risk() {
    straight_and_killed("examples/patient-risk/pipeline.toml");
}

#[test]
fn every_example_pipeline_is_in_the_matrix() {
    let this = std::fs::read_to_string(repo().join("tests/e2e/golden.rs")).unwrap();
    for p in example_pipelines() {
        let quoted = format!("(\"{}\"", p.display());
        assert!(this.contains(&quoted), "{} has no golden test: add `straight_and_killed{quoted})`", p.display());
    }
}

#[test]
fn every_testing_plugin_is_used_by_a_test() {
    let mut sources = String::new();
    for dir in [repo().join("tests/e2e"), repo().join("tests/e2e/kafka"), repo().join("host/plugin-host/tests")] {
        for f in std::fs::read_dir(dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(f).unwrap());
            }
        }
    }
    for dir in std::fs::read_dir(repo().join("plugins/testing")).unwrap() {
        let name = dir.unwrap().file_name().to_str().unwrap().replace('-', "_");
        assert!(sources.contains(&format!("\"{name}\"")), "plugins/testing/{name} is used by no test");
    }
}
