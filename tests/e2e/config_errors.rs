//! A broken pipeline file stops `weir run` with an error naming the file,
//! the line and the key.

use crate::harness::*;

fn run_text(text: &str) -> (bool, String, std::path::PathBuf, tempfile::TempDir) {
    let dir = scratch();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, text).unwrap();
    let out = run(&path);
    // A file to fix, not a run to retry: exit status 2.
    assert!(out.status.success() || out.status.code() == Some(2), "{:?}: {}", out.status, stderr(&out));
    (out.status.success(), stderr(&out), path, dir)
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let (ok, err, path, _dir) = run_text("[pipeline]\nname = \"p\"\nbatch_sise = 10\n");
    assert!(!ok);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("unknown field `batch_sise`"), "{err}");
}

#[test]
fn an_unknown_key_in_a_source_is_named() {
    let (ok, err, _, _dir) =
        run_text("[pipeline]\nname = \"p\"\n\n[[sources]]\nname = \"s\"\nkind = \"file\"\npaht = \"x.ndjson\"\n");
    assert!(!ok);
    assert!(err.contains("line 7"), "{err}");
    assert!(err.contains("unknown field `paht`"), "{err}");
}

#[test]
fn a_missing_plugin_file_is_named_with_its_line_and_key() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(&input, [r#"{"a":1}"#.to_string()]);
    let text = format!(
        "[pipeline]\nname = \"p\"\n\n[[sources]]\nname = \"s\"\nkind = \"file\"\npath = {}\n\n[[steps]]\nname = \"risk\"\nplugin = \"plugins/nope.wasm\"\n",
        toml_path(&input)
    );
    let (ok, err, path, _dir) = run_text(&text);
    assert!(!ok);
    let expected = format!("{}:11: steps[0].plugin: plugin file `plugins/nope.wasm` not found", path.display());
    assert!(err.contains(&expected), "wanted {expected:?} in:\n{err}");
}

#[test]
fn broken_toml_is_refused_with_its_position() {
    let (ok, err, path, _dir) = run_text("[pipeline\nname = \"p\"\n");
    assert!(!ok);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("TOML parse error at line 1"), "{err}");
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(&input, [r#"{"a":1}"#.to_string()]);
    let fake = dir.path().join("fake.wasm");
    std::fs::write(&fake, b"\0asm not really").unwrap();
    let pipeline = one_step_pipeline(dir.path(), &input, &fake, "");
    let out = run(&pipeline);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("step `step`"), "{err}");
    assert!(err.contains("is not a WebAssembly component Weir can run"), "{err}");
}

#[test]
fn validate_accepts_the_example_and_names_a_refused_config() {
    let dir = scratch();
    let pipeline = crate::drug_interactions::example_pipeline(dir.path(), &plugin("drug_interaction"));
    let out = weir().arg("validate").arg(&pipeline).output().unwrap();
    assert_ok(&out);
    assert!(stderr(&out).contains("step `interactions`"), "{}", stderr(&out));

    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("config_file = \"examples/drug-interactions/interactions.json\"", "config = \"{}\"");
    std::fs::write(&pipeline, text).unwrap();
    let out = weir().arg("validate").arg(&pipeline).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("step `interactions`: plugin init refused its config: invalid config"), "{err}");
    assert!(!dir.path().join("alerts.ndjson").exists(), "validate processes nothing");
}
