//! `weir plugin new|build|test` in every language: each template builds
//! with its real toolchain and passes its sample, and the five give the same
//! results on the shared input and on 2,000 generated events.

use crate::harness::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, OnceLock};

const LANGS: [&str; 5] = ["rust", "python", "js", "c", "go"];

/// Where the templates are laid out and built, once per test binary.
fn workspace() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(scratch).path()
}

/// `weir plugin ...`, with Rust plugins compiled into a target folder that
/// outlives the test run (a fresh one costs a minute of compiling).
fn weir_plugin(args: &[&str]) -> Output {
    weir()
        .arg("plugin")
        .args(args)
        .env("CARGO_TARGET_DIR", repo().join("target/plugin-templates"))
        .output()
        .expect("weir starts")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The template of `lang`, laid out and built (once); its folder.
fn built(lang: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    static BUILDING: OnceLock<Mutex<()>> = OnceLock::new();
    let cache = BUILT.get_or_init(Default::default);
    if let Some(dir) = cache.lock().unwrap().get(lang) {
        return dir.clone();
    }
    // One build at a time: toolchains are heavy on a small machine.
    let _one = BUILDING.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = cache.lock().unwrap().get(lang) {
        return dir.clone();
    }
    let name = format!("vitals-{lang}");
    let dir = workspace().join(&name);
    let made = weir_plugin(&["new", "--lang", lang, "--dir", dir.to_str().unwrap(), &name]);
    assert_ok(&made);
    let out = weir_plugin(&["build", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{lang} build failed:\n{}{}", stdout(&out), stderr(&out));
    assert!(dir.join(format!("target/weir/{name}.wasm")).is_file());
    cache.lock().unwrap().insert(lang.to_string(), dir.clone());
    dir
}

fn template_passes_its_sample(lang: &str) {
    let dir = built(lang);
    let out = weir_plugin(&["test", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{lang}:\n{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("ok: ") && stdout(&out).contains("25 events: 11 emitted, 6 rejected"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn rust_template_builds_and_passes_its_sample() {
    template_passes_its_sample("rust");
}

#[test]
fn python_template_builds_and_passes_its_sample() {
    template_passes_its_sample("python");
}

#[test]
fn js_template_builds_and_passes_its_sample() {
    template_passes_its_sample("js");
}

#[test]
fn c_template_builds_and_passes_its_sample() {
    template_passes_its_sample("c");
}

#[test]
fn go_template_builds_and_passes_its_sample() {
    template_passes_its_sample("go");
}

/// Vital signs across every band and edge, with missing and mistyped fields,
/// escaped names and number forms (a fixed-seed generator: reproducible).
fn generated_events(n: usize) -> Vec<String> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |m: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % m
    };
    (0..n)
        .map(|i| {
            let mut fields = vec![
                format!(r#""patient":"P{:03}{}""#, i % 500, ["", "\\u00e9", "\\\"q\\\"", "\\\\"][next(4) as usize]),
                format!(r#""hr":{}"#, 30 + next(140)),
                format!(r#""rr":{}.{}"#, 4 + next(30), next(10)),
                format!(r#""spo2":{}"#, 80 + next(21)),
                format!(r#""temp":{}e-1"#, 330 + next(90)),
            ];
            match next(40) {
                0 => drop(fields.remove(1 + next(4) as usize)),
                1 => {
                    let k = 1 + next(4) as usize;
                    fields[k] = format!(r#""{}":"high""#, ["", "hr", "rr", "spo2", "temp"][k]);
                }
                2 => fields[0] = r#""patient":7"#.to_string(),
                3 => fields.push(r#""extra":{"hr":1,"list":[1,{"temp":2}]}"#.to_string()),
                _ => {}
            }
            // Field order must not matter.
            let k = next(fields.len() as u64) as usize;
            fields.rotate_left(k);
            format!("{{{}}}", fields.join(","))
        })
        .collect()
}

#[test]
fn every_language_gives_the_same_results_on_the_shared_input_and_on_generated_events() {
    let dir = scratch();
    let sample = built("rust").join("sample");
    let input = dir.path().join("generated.ndjson");
    write_lines(&input, generated_events(2000));
    let expected = dir.path().join("generated-expected.ndjson");
    // Rust writes the expected results; every language must then match them.
    let blessed = weir_plugin(&[
        "test",
        built("rust").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--expect",
        expected.to_str().unwrap(),
        "--bless",
    ]);
    assert_ok(&blessed);
    let results = ndjson(&expected);
    let rejected = results.iter().filter(|r| r.get("rejected").is_some()).count();
    let emitted = results.len() - rejected;
    assert!(
        rejected > 50 && emitted > 300,
        "the generated events exercise both paths: {emitted} emitted, {rejected} rejected"
    );
    let mut actual = Vec::new();
    for lang in LANGS {
        let plugin = built(lang);
        let shared = dir.path().join(format!("{lang}-sample.ndjson"));
        let out = weir_plugin(&[
            "test",
            plugin.to_str().unwrap(),
            "--input",
            sample.join("input.ndjson").to_str().unwrap(),
            "--expect",
            sample.join("expected.ndjson").to_str().unwrap(),
            "--actual",
            shared.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{lang} on the shared input:\n{}{}", stdout(&out), stderr(&out));
        let out = weir_plugin(&[
            "test",
            plugin.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--expect",
            expected.to_str().unwrap(),
            "--batch-size",
            "1000",
        ]);
        assert!(out.status.success(), "{lang} on the generated events:\n{}{}", stdout(&out), stderr(&out));
        actual.push(std::fs::read_to_string(shared).unwrap());
    }
    assert!(actual.windows(2).all(|w| w[0] == w[1]), "the five languages differ on the shared input");
}

#[test]
fn a_difference_is_shown_as_a_diff_and_fails() {
    let dir = scratch();
    let plugin = built("c");
    let expected = std::fs::read_to_string(plugin.join("sample/expected.ndjson")).unwrap();
    let wrong = dir.path().join("wrong.ndjson");
    let edited = expected
        .replace(r#""patient":"P002","score":7"#, r#""patient":"P002","score":8"#)
        .replace("missing field `hr`", "no heart rate");
    assert_ne!(edited, expected);
    std::fs::write(&wrong, edited).unwrap();
    let out = weir_plugin(&["test", plugin.to_str().unwrap(), "--expect", wrong.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = stdout(&out);
    assert!(
        report.contains(r#"-{"event":{"level":"high","patient":"P002","score":8},"input":2,"output":"alerts"}"#),
        "{report}"
    );
    assert!(
        report.contains(r#"+{"event":{"level":"high","patient":"P002","score":7},"input":2,"output":"alerts"}"#),
        "{report}"
    );
    assert!(report.contains(r#"+{"input":14,"rejected":"missing field `hr`"}"#), "{report}");
    assert!(report.contains("FAILED"), "{report}");
}

fn new_plugin(dir: &Path, lang: &str) -> PathBuf {
    let path = dir.join(format!("broken-{lang}"));
    assert_ok(&weir_plugin(&["new", "--lang", lang, "--dir", path.to_str().unwrap(), &format!("broken-{lang}")]));
    path
}

#[test]
fn a_plugin_that_does_not_compile_names_the_file_and_the_tool() {
    let dir = scratch();
    let plugin = new_plugin(dir.path(), "c");
    let source = plugin.join("app.c");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("static int threshold = 5;", "static int threshold = five;")).unwrap();
    let out = weir_plugin(&["build", plugin.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("app.c") && err.contains("five"), "{err}");
    assert!(err.contains("error: clang failed"), "{err}");
}

#[test]
fn a_plugin_that_exports_the_wrong_world_is_refused_with_the_reason() {
    let dir = scratch();
    // A Go module whose `process` export has another name: wit-component refuses it.
    let plugin = new_plugin(dir.path(), "go");
    let sdk = plugin.join("weir/weir.go");
    let text = std::fs::read_to_string(&sdk).unwrap();
    std::fs::write(&sdk, text.replace("//go:wasmexport process\n", "//go:wasmexport process_batch\n")).unwrap();
    let out = weir_plugin(&["build", plugin.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("does not fit the `processor` world") && err.contains("process"), "{err}");
    // A C plugin built against an edited contract: it builds, and the host refuses it.
    let plugin = new_plugin(dir.path(), "c");
    let wit = plugin.join("wit/weir-plugin.wit");
    let text = std::fs::read_to_string(&wit).unwrap();
    let edited = text.replace(
        "export process: func(batch: batch) -> outcomes;",
        "export process: func(batch: batch, extra: u32) -> outcomes;",
    );
    assert_ne!(edited, text);
    std::fs::write(&wit, edited).unwrap();
    let sdk = plugin.join("weir_plugin.c");
    let text = std::fs::read_to_string(&sdk).unwrap();
    std::fs::write(
        &sdk,
        text.replace("processor_outcomes_t *ret) {", "uint32_t extra, processor_outcomes_t *ret) {\n    (void)extra;"),
    )
    .unwrap();
    assert_ok(&weir_plugin(&["build", plugin.to_str().unwrap()]));
    let out = weir_plugin(&["test", plugin.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not fit the weir:plugin/processor"), "{}", stderr(&out));
}

#[test]
fn a_missing_toolchain_is_named_with_how_to_install_it() {
    let dir = scratch();
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    for (lang, tool, install) in [
        ("c", "`clang` not found", "apt-get install clang lld wasi-libc"),
        ("python", "`componentize-py` not found", "pip install componentize-py==0.25.0"),
        ("js", "`node` not found", "nodejs"),
        ("go", "`go` not found", "go.dev/dl"),
    ] {
        let plugin = new_plugin(dir.path(), lang);
        let out = weir()
            .args(["plugin", "build"])
            .arg(&plugin)
            .env("PATH", &empty)
            .env("WEIR_HOME", dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(tool) && err.contains(install), "{lang}: {err}");
    }
}
