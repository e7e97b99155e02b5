//! The Python plugin (componentize-py) against its Rust twin.

use crate::drug_interactions::example_pipeline;
use crate::harness::*;

#[test]
fn python_and_rust_plugins_give_the_same_output() {
    let (rust_dir, py_dir) = (scratch(), scratch());
    let rust = run(&example_pipeline(rust_dir.path(), &plugin("drug_interaction")));
    assert_ok(&rust);
    // The example's 50 ms deadline is tuned for the Rust plugin; a Python
    // instance's start can pass it on a loaded machine (the Kafka tests run
    // a broker beside this one). The test compares outputs, not speed.
    let py_pipeline = example_pipeline(py_dir.path(), &python_plugin());
    let text = std::fs::read_to_string(&py_pipeline).unwrap();
    assert!(text.contains(r#"deadline = "50ms""#));
    std::fs::write(&py_pipeline, text.replace(r#"deadline = "50ms""#, r#"deadline = "10s""#)).unwrap();
    let py = run(&py_pipeline);
    assert_ok(&py);
    let read = |d: &tempfile::TempDir, f: &str| std::fs::read_to_string(d.path().join(f)).unwrap();
    let alerts = read(&py_dir, "alerts.ndjson");
    assert_eq!(alerts.lines().count(), 7);
    assert_eq!(alerts, read(&rust_dir, "alerts.ndjson"));
    assert_eq!(read(&py_dir, "dead-letter.ndjson"), read(&rust_dir, "dead-letter.ndjson"));
}
