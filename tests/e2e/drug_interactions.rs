//! The drug-interaction example, end to end, exact output.

use crate::harness::*;

/// The example's pipeline file with its outputs moved into `dir`.
pub fn example_pipeline(dir: &std::path::Path, plugin: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("examples/drug-interactions/pipeline.toml")).unwrap();
    assert!(text.contains("out/drug-interactions/"), "the example writes under out/drug-interactions/");
    let text = text
        .replace("out/drug-interactions/", &format!("{}/", dir.display()))
        .replace("\"plugins/target/wasm32-wasip2/release/drug_interaction.wasm\"", &toml_path(plugin));
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn example_gives_exactly_the_expected_alerts_and_dead_letters() {
    let dir = scratch();
    let pipeline = example_pipeline(dir.path(), &plugin("drug_interaction"));
    let out = run(&pipeline);
    assert_ok(&out);
    let expected = std::fs::read_to_string(repo().join("examples/drug-interactions/expected-alerts.ndjson")).unwrap();
    let got = std::fs::read_to_string(dir.path().join("alerts.ndjson")).unwrap();
    assert_eq!(got, expected);
    let expected =
        std::fs::read_to_string(repo().join("examples/drug-interactions/expected-dead-letter.ndjson")).unwrap();
    let got = std::fs::read_to_string(dir.path().join("dead-letter.ndjson")).unwrap();
    assert_eq!(got, expected);
    let summary = stderr(&out);
    assert!(summary.contains("alerts: 7 events"), "{summary}");
}

#[test]
fn a_config_the_plugin_refuses_stops_the_start_with_its_reason() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(&input, [r#"{"drug":"aspirin"}"#.to_string()]);
    let pipeline =
        one_step_pipeline(dir.path(), &input, &plugin("drug_interaction"), r#"config = '{"interactions": []}'"#);
    let out = run(&pipeline);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("step `step`"), "{err}");
    assert!(err.contains("plugin init refused its config: invalid config: `interactions` is empty"), "{err}");
}
