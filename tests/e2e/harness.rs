//! Shared helpers: the binary, plugins built once, scratch folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

/// A `weir` command running in the repository root, with a shared compile cache.
pub fn weir() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.current_dir(repo());
    cmd.env("WEIR_CACHE_DIR", repo().join("target").join("weir-test-cache"));
    cmd.env_remove("RUST_LOG");
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        cmd.env("ORT_DYLIB_PATH", onnxruntime());
    }
    cmd
}

/// The ONNX Runtime library `scripts/setup.sh` installs (or `$ORT_DYLIB_PATH`).
pub fn onnxruntime() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(p);
    }
    let path = repo().join(".cache/onnxruntime/libonnxruntime.so.1.31.1");
    assert!(path.is_file(), "{} is missing: run scripts/setup.sh (it installs onnxruntime 1.31.1)", path.display());
    path
}

/// Runs `weir run <pipeline>` to completion.
pub fn run(pipeline: &Path) -> Output {
    weir().arg("run").arg(pipeline).output().expect("weir starts")
}

/// The Rust plugin `name` (crate name with `_`), built once per test binary.
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(repo().join("plugins").join("Cargo.toml"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the plugins failed (is the wasm32-wasip2 target installed?)");
    });
    let path = repo().join("plugins/target/wasm32-wasip2/release").join(format!("{name}.wasm"));
    assert!(path.is_file(), "no plugin at {}", path.display());
    path
}

/// The Python drug-interaction plugin, built by `scripts/build-plugins.sh`.
pub fn python_plugin() -> PathBuf {
    python_plugin_named("drug_interaction_py")
}

/// The Python plugin `plugins/<name>` (`-` as `_`), built by `scripts/build-plugins.sh`.
pub fn python_plugin_named(name: &str) -> PathBuf {
    let path = repo().join("plugins/target/python").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh (it installs componentize-py and builds the Python plugins)",
        path.display()
    );
    path
}

/// A scratch folder, removed at the end of the test.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a run succeeded, showing its stderr if not.
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "weir failed ({}):\n{}", out.status, stderr(out));
}

/// The lines of an NDJSON file, parsed; an absent file has none.
pub fn ndjson(path: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display())))
        .collect()
}

/// Writes `lines` as an NDJSON file.
pub fn write_lines(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut text = String::new();
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    std::fs::write(path, text).expect("write input");
}

/// TOML string literal for a path.
pub fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// A one-step pipeline: file → plugin → file, with dead letters, in `dir`.
pub fn one_step_pipeline(dir: &Path, input: &Path, plugin: &Path, extra_step: &str) -> PathBuf {
    let text = format!(
        r#"
[pipeline]
name = "test"
batch_size = 4

[[sources]]
name = "input"
kind = "file"
path = {input}

[[steps]]
name = "step"
plugin = {plugin}
{extra_step}

[[sinks]]
name = "out"
kind = "file"
path = {out}

[dead_letter]
path = {dead}
"#,
        input = toml_path(input),
        plugin = toml_path(plugin),
        out = toml_path(&dir.join("out.ndjson")),
        dead = toml_path(&dir.join("dead.ndjson")),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).expect("write pipeline");
    path
}

/// A CA and a certificate for localhost/127.0.0.1 signed by it, written to
/// `dir` as `ca.pem`, `cert.pem` and `key.pem` (PKCS#8); returns the CA's PEM.
pub fn make_certs(dir: &Path) -> String {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Names of their own: OpenSSL (librdkafka) takes a certificate whose
    // issuer is its own subject (rcgen's default name for both) for a
    // self-signed one.
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Weir test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "Weir test server");
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    ca_cert.pem()
}
