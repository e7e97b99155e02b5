//! ONNX models in the host: Weir scores exactly as Python's onnxruntime,
//! NEWS2 follows the published table, a replaced model switches between
//! batches with nothing lost, and a broken one is refused or kept out.

use crate::harness::*;
use crate::live::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn example(path: &str) -> PathBuf {
    repo().join("examples").join(path)
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The fraud scorer's config from the example, with every transaction scored.
fn fraud_config_all() -> String {
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("fraud-detection/features.json")).unwrap()).unwrap();
    config["emit"] = "all".into();
    config.to_string()
}

/// A file source of card transactions (the test set's shape).
fn file_source(input: &Path) -> String {
    format!("kind = \"file\"\npath = {}\ntimestamp_field = \"EventTime\"\nkey_field = \"card_id\"", toml_path(input))
}

/// source → fraud scorer (every transaction, `model` as `[models.fraud]`) → file.
fn fraud_pipeline(dir: &Path, source: &str, model: &Path, model_keys: &str, step_keys: &str) -> PathBuf {
    let text = format!(
        r#"
[pipeline]
name = "fraud"
batch_size = 64

[models.fraud]
path = {model}
{model_keys}

[[sources]]
name = "tx"
{source}

[[steps]]
name = "score"
plugin = {plugin}
config = {config}
{step_keys}

[[sinks]]
name = "out"
kind = "file"
path = {out}

[dead_letter]
path = {dead}
"#,
        model = toml_path(model),
        plugin = toml_path(&plugin("fraud_scorer")),
        config = toml::Value::String(fraud_config_all()),
        out = toml_path(&dir.join("out.ndjson")),
        dead = toml_path(&dir.join("dead.ndjson")),
    );
    let path = dir.join("fraud.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const GRANT: &str = r#"models = ["fraud"]"#;

fn scores_equal_python(model: &str) {
    let dir = scratch();
    let model_path = example(&format!("fraud-detection/fraud-{model}.onnx"));
    let source = file_source(&example("fraud-detection/testset.ndjson"));
    let pipeline = fraud_pipeline(dir.path(), &source, &model_path, "", GRANT);
    assert_ok(&run(&pipeline));
    let got = ndjson(&dir.path().join("out.ndjson"));
    let want = ndjson(&example(&format!("fraud-detection/expected-{model}.ndjson")));
    assert_eq!(got.len(), 400, "every test transaction is scored");
    assert_eq!(got.len(), want.len());
    let version = sha256(&model_path);
    for (g, w) in got.iter().zip(&want) {
        let id = &w["transaction_id"];
        assert_eq!(&g["transaction_id"], id);
        let as_f32 = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
        };
        assert_eq!(as_f32(&g["features"]), as_f32(&w["features"]), "{id}: features differ from train.py's");
        assert_eq!(g["label"], w["label"], "{id}: label");
        let (p, q) = (g["score"].as_f64().unwrap(), w["probability"].as_f64().unwrap());
        assert!((p - q).abs() <= 1e-5, "{id}: probability {p} against Python's {q}");
        assert_eq!(g["model_version"], version.as_str());
    }
    assert!(got.iter().any(|g| g["label"] == 1), "the test set holds transactions the model flags");
}

#[test]
fn gbdt_scores_equal_python_onnxruntime() {
    scores_equal_python("gbdt");
}

#[test]
fn logistic_scores_equal_python_onnxruntime() {
    scores_equal_python("logistic");
}

#[test]
fn news2_follows_the_published_scoring_table() {
    let dir = scratch();
    let extra = "config = '{\"model\": \"deterioration\", \"threshold\": 0.5, \"emit\": \"all\"}'\nmodels = [\"deterioration\"]\n";
    let pipeline =
        one_step_pipeline(dir.path(), &example("patient-risk/news2-cases.ndjson"), &plugin("patient_risk"), extra);
    let model = toml_path(&example("patient-risk/deterioration.onnx"));
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&pipeline, format!("{text}\n[models.deterioration]\npath = {model}\n")).unwrap();
    assert_ok(&run(&pipeline));

    let got = ndjson(&dir.path().join("out.ndjson"));
    let want = ndjson(&example("patient-risk/news2-expected.ndjson"));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        let id = &w["PatientId"];
        assert_eq!(&g["PatientId"], id);
        assert_eq!(g["news2"], w["news2"], "{id}: NEWS2 total");
        assert_eq!(g["risk"], w["risk"], "{id}: risk band");
        let parts: BTreeMap<String, u64> = g["contributing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["parameter"].as_str().unwrap().to_string(), p["score"].as_u64().unwrap()))
            .collect();
        let want_parts: BTreeMap<String, u64> =
            w["contributing"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
        assert_eq!(parts, want_parts, "{id}: contributing parameters");
        let p = g["deterioration_probability"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{id}: probability {p}");
    }
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    let reasons: Vec<&str> = dead.iter().map(|d| d["detail"].as_str().unwrap()).collect();
    assert_eq!(dead.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("missing field `SpO2`"), "{}", reasons[0]);
    assert!(reasons[1].contains("Consciousness `X` is not one of A, C, V, P, U"), "{}", reasons[1]);
}

#[test]
fn infer_errors_reach_the_plugin_as_text() {
    let dir = scratch();
    let source = file_source(&example("fraud-detection/testset.ndjson"));
    let model = example("fraud-detection/fraud-logistic.onnx");
    // The step calls `fraud`, but its `models` key does not grant it.
    assert_ok(&run(&fraud_pipeline(dir.path(), &source, &model, "", "")));
    assert!(ndjson(&dir.path().join("out.ndjson")).is_empty());
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 400, "every event is dead-lettered, none lost");
    assert_eq!(dead[0]["reason"], "rejected");
    assert_eq!(
        dead[0]["detail"],
        "model `fraud`: model `fraud` is not granted to step `score` (its `models` key lists: none)"
    );
}

#[test]
fn a_wrongly_shaped_call_names_the_model_inputs() {
    let dir = scratch();
    // The NEWS2 plugin sends `vitals: float32[n,5]` to the fraud model.
    let extra = "config = '{\"model\": \"fraud\", \"threshold\": 0.5}'\nmodels = [\"fraud\"]\n";
    let p = one_step_pipeline(dir.path(), &example("patient-risk/news2-cases.ndjson"), &plugin("patient_risk"), extra);
    let text = std::fs::read_to_string(&p).unwrap();
    let model = toml_path(&example("fraud-detection/fraud-logistic.onnx"));
    std::fs::write(&p, format!("{text}\n[models.fraud]\npath = {model}\n")).unwrap();
    assert_ok(&run(&p));
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    let detail = dead[0]["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        "model `fraud`: input `features` is missing; the model takes (features: float32[?,6]) -> (label: int64[?], probabilities: float32[?,2])"
    );
}

#[test]
fn a_missing_or_corrupt_model_or_library_stops_the_start_with_a_clear_error() {
    let dir = scratch();
    let input = file_source(&example("fraud-detection/testset.ndjson"));
    let grant = GRANT;

    let missing = fraud_pipeline(dir.path(), &input, &dir.path().join("nope.onnx"), "", grant);
    let out = run(&missing);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("fraud.toml:7: models.fraud.path: model file `") && err.contains("nope.onnx` not found"),
        "{err}"
    );

    let corrupt = dir.path().join("corrupt.onnx");
    std::fs::write(&corrupt, b"this is not a protobuf model").unwrap();
    let out = run(&fraud_pipeline(dir.path(), &input, &corrupt, "", grant));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("model `fraud`: `") && err.contains("is not a model ONNX Runtime can load"), "{err}");

    let unknown =
        fraud_pipeline(dir.path(), &input, &example("fraud-detection/fraud-gbdt.onnx"), "", r#"models = ["frud"]"#);
    let err = stderr(&run(&unknown));
    assert!(err.contains("steps[0].models: no model named `frud` (models: fraud)"), "{err}");

    let pipeline = fraud_pipeline(dir.path(), &input, &example("fraud-detection/fraud-gbdt.onnx"), "", grant);
    let out =
        weir().env("ORT_DYLIB_PATH", "/nowhere/libonnxruntime.so.1.31.1").arg("run").arg(&pipeline).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ONNX Runtime library `/nowhere/libonnxruntime.so.1.31.1` (from ORT_DYLIB_PATH) not found"),
        "{err}"
    );
}

#[test]
fn plugins_built_for_wit_0_1_0_still_load() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(&input, (0..10).map(|i| format!(r#"{{"n":{i}}}"#)));
    let fixture = repo().join("tests/fixtures/identity-wit-0.1.0.wasm");
    assert_ok(&run(&one_step_pipeline(dir.path(), &input, &fixture, "")));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap(),
        std::fs::read_to_string(&input).unwrap()
    );
}

/// An endless generator → fraud scorer (every transaction) → file, serving metrics.
fn live_fraud(dir: &Path, model: &Path, port: u16) -> Reaper {
    let source =
        "kind = \"generator\"\ngenerate = \"transactions\"\nrate = 20000\nkeys = 500\ntimestamp_field = \"EventTime\"";
    let pipeline = fraud_pipeline(dir, source, model, "reload_check = \"50ms\"", GRANT);
    let text = std::fs::read_to_string(&pipeline).unwrap().replace("batch_size = 64", "batch_size = 256");
    spawn_listening(&pipeline, &text, port)
}

/// Replaces `path` the way a deployment should: write aside, then rename.
fn replace(path: &Path, bytes: &[u8]) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, bytes).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

fn rows_scored(body: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with("weir_model_rows_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_model_replaced_while_events_flow_switches_between_batches_losing_nothing() {
    let dir = scratch();
    let (old, new) = (example("fraud-detection/fraud-logistic.onnx"), example("fraud-detection/fraud-gbdt.onnx"));
    let model = dir.path().join("model.onnx");
    std::fs::copy(&old, &model).unwrap();
    let port = free_port();
    let mut child = live_fraud(dir.path(), &model, port);
    wait_for_metrics(port, |b| rows_scored(b) >= 5_000.0);
    replace(&model, &std::fs::read(&new).unwrap());
    let (old_v, new_v) = (sha256(&old), sha256(&new));
    let body = wait_for_metrics(port, |b| metric(b, "weir_model_rows_total", &[&new_v]).is_some_and(|n| n >= 5_000.0));
    assert_eq!(metric(&body, "weir_model_reloads_total", &["result=\"ok\""]), Some(1.0));
    assert_eq!(metric(&body, "weir_model_version_info", &[&new_v]), Some(1.0));
    assert_eq!(metric(&body, "weir_model_version_info", &[&old_v]), None, "only the serving version is shown");
    let out = sigterm(&mut child);
    assert!(out.status.success(), "{}", stderr(&out));

    // Every generated transaction is scored exactly once, in order, and the
    // version changes once, from old to new.
    let rows = ndjson(&dir.path().join("out.ndjson"));
    assert!(ndjson(&dir.path().join("dead.ndjson")).is_empty());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["transaction_id"], format!("TX-{i:010}"), "row {i}: lost, repeated or reordered");
    }
    let versions: Vec<&str> = rows.iter().map(|r| r["model_version"].as_str().unwrap()).collect();
    let switch = versions.iter().position(|v| *v == new_v).expect("the new version scored events");
    assert!(switch > 0 && versions[..switch].iter().all(|v| *v == old_v), "before the switch: the old version only");
    assert!(versions[switch..].iter().all(|v| *v == new_v), "after the switch: the new version only");
}

#[test]
fn a_corrupt_replacement_is_refused_and_the_old_model_keeps_serving() {
    let dir = scratch();
    let good = example("fraud-detection/fraud-logistic.onnx");
    let model = dir.path().join("model.onnx");
    std::fs::copy(&good, &model).unwrap();
    let port = free_port();
    let mut child = live_fraud(dir.path(), &model, port);
    wait_for_metrics(port, |b| rows_scored(b) >= 2_000.0);
    replace(&model, b"truncated upload");
    let body = wait_for_metrics(port, |b| metric(b, "weir_model_reloads_total", &["result=\"failed\""]) == Some(1.0));
    let scored = rows_scored(&body);
    let started = Instant::now();
    wait_for_metrics(port, |b| rows_scored(b) >= scored + 2_000.0);
    assert!(started.elapsed() < Duration::from_secs(60));
    let out = sigterm(&mut child);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("MODEL RELOAD FAILED"), "the failure is logged loudly:\n{err}");
    assert!(err.contains("is not a model ONNX Runtime can load"), "{err}");
    let rows = ndjson(&dir.path().join("out.ndjson"));
    let version = sha256(&good);
    assert!(rows.iter().all(|r| r["model_version"] == version.as_str()));
    assert!(ndjson(&dir.path().join("dead.ndjson")).is_empty(), "nothing failed while the bad file sat there");
}

/// The card-velocity features straight from their definition: over the
/// card's earlier transactions (arrival order) with time in (t − 1 h, t],
/// their count and whole-cent sum, and seconds since the latest at or before t.
fn velocity_by_definition(events: &[serde_json::Value]) -> Vec<[f32; 3]> {
    let millis = |e: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(e["EventTime"].as_str().unwrap()).unwrap().timestamp_millis()
    };
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let t = millis(e);
        let earlier: Vec<(i64, i64)> = events[..i]
            .iter()
            .filter(|p| p["card_id"] == e["card_id"])
            .map(|p| (millis(p), (p["amount"].as_f64().unwrap() * 100.0).round() as i64))
            .collect();
        let recent: Vec<i64> = earlier.iter().filter(|(ts, _)| t - 3_600_000 < *ts && *ts <= t).map(|p| p.1).collect();
        let latest = earlier.iter().map(|p| p.0).filter(|ts| *ts <= t).max();
        let since = latest.map_or(86_400.0, |l| ((t - l) as f64 / 1000.0).min(86_400.0));
        out.push([recent.len() as f32, (recent.iter().sum::<i64>() as f64 / 100.0) as f32, since as f32]);
    }
    out
}

#[test]
fn card_velocity_is_exact_when_transactions_arrive_out_of_order() {
    let dir = scratch();
    // The test set with every third transaction arriving up to 65 minutes late,
    // so that windows start between entries and late entries fall out of them.
    let mut events = ndjson(&example("fraud-detection/testset.ndjson"));
    for (i, e) in events.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
        let t = chrono::DateTime::parse_from_rfc3339(e["EventTime"].as_str().unwrap()).unwrap();
        let late = t - chrono::Duration::milliseconds((i as i64 * 79_193) % 3_900_000);
        e["EventTime"] = late.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into();
    }
    let input = dir.path().join("late.ndjson");
    write_lines(&input, events.iter().map(|e| e.to_string()));
    let model = example("fraud-detection/fraud-logistic.onnx");
    assert_ok(&run(&fraud_pipeline(dir.path(), &file_source(&input), &model, "", GRANT)));
    let got = ndjson(&dir.path().join("out.ndjson"));
    let want = velocity_by_definition(&events);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        let f: Vec<f32> = g["features"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        assert_eq!(&f[3..], w, "{}: count, amount and seconds since the last, over the past hour", g["transaction_id"]);
    }
    assert!(want.iter().any(|w| w[0] >= 2.0), "the test exercises cards with history");
}

#[test]
fn a_python_plugin_scores_through_infer_as_python_onnxruntime_does() {
    let dir = scratch();
    // Each line of the expected file carries its `features` row.
    let rows = example("fraud-detection/expected-gbdt.ndjson");
    let extra = "config = '{\"model\": \"fraud\"}'\nmodels = [\"fraud\"]\n";
    let pipeline = one_step_pipeline(dir.path(), &rows, &python_plugin_named("score_py"), extra);
    let model = example("fraud-detection/fraud-gbdt.onnx");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&pipeline, format!("{text}\n[models.fraud]\npath = {}\n", toml_path(&model))).unwrap();
    assert_ok(&run(&pipeline));
    let got = ndjson(&dir.path().join("out.ndjson"));
    let want = ndjson(&rows);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["transaction_id"], w["transaction_id"]);
        assert_eq!(g["label"], w["label"]);
        let (p, q) = (g["probability"].as_f64().unwrap(), w["probability"].as_f64().unwrap());
        assert!((p - q).abs() <= 1e-5, "{}: {p} against {q}", w["transaction_id"]);
        assert_eq!(g["model_version"], sha256(&model).as_str());
    }
}
