//! The Python plugin (componentize-py) against its Rust twin.

use crate::drug_interactions::example_pipeline;
use crate::harness::*;

#[test]
fn python_and_rust_plugins_give_the_same_output() {
    let (rust_dir, py_dir) = (scratch(), scratch());
    let rust = run(&example_pipeline(rust_dir.path(), &plugin("drug_interaction")));
    assert_ok(&rust);
    let py = run(&example_pipeline(py_dir.path(), &python_plugin()));
    assert_ok(&py);
    let read = |d: &tempfile::TempDir, f: &str| std::fs::read_to_string(d.path().join(f)).unwrap();
    let alerts = read(&py_dir, "alerts.ndjson");
    assert_eq!(alerts.lines().count(), 7);
    assert_eq!(alerts, read(&rust_dir, "alerts.ndjson"));
    assert_eq!(read(&py_dir, "dead-letter.ndjson"), read(&rust_dir, "dead-letter.ndjson"));
}
