//! `weir plugin build`: each language's toolchain, then (C and Go) the
//! component wrapping of `componentize`. A missing tool is named, with how
//! to install it.

use super::{Lang, Manifest, componentize};
use anyhow::{Context, bail, ensure};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The plugin folder (the one with weir-plugin.toml).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

pub fn build_command(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let component = build(&args.dir)?;
    let size = std::fs::metadata(&component)?.len();
    eprintln!("built {} ({})", component.display(), bytesize::ByteSize::b(size).display().si());
    Ok(ExitCode::SUCCESS)
}

/// Builds the plugin in `dir`; returns the component's path.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = Manifest::read(dir)?;
    let dir = &std::path::absolute(dir)?;
    let component = manifest.component(dir);
    let out = component.parent().expect("target/weir");
    std::fs::create_dir_all(out)?;
    match manifest.lang {
        Lang::Rust => rust(dir, &manifest, &component)?,
        Lang::Python => cached(dir, &component, &["py"], || python(dir, &component))?,
        Lang::Js => cached(dir, &component, &["js", "mjs"], || js(dir, &component))?,
        Lang::C => c(dir, &manifest, &component)?,
        Lang::Go => go(dir, &component)?,
    }
    Ok(component)
}

/// Where the setup scripts install the tools they add: `.cache/` in the
/// Weir checkout this binary was built from, or `$WEIR_HOME/.cache`.
fn setup_cache() -> PathBuf {
    let home = std::env::var_os("WEIR_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    home.join(".cache")
}

/// Finds `tool` on PATH, then in `extra` folders.
fn find(tool: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(extra.iter().cloned()).map(|d| d.join(tool)).find(|p| p.is_file())
}

fn require(tool: &str, extra: &[PathBuf], install: &str) -> anyhow::Result<PathBuf> {
    find(tool, extra).with_context(|| format!("`{tool}` not found: {install}"))
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command.status().with_context(|| format!("cannot start {what}"))?;
    ensure!(status.success(), "{what} failed ({status}); its messages are above");
    Ok(())
}

/// Rebuilds with a slow tool only when the sources changed: a digest of the
/// sources and the WIT sits beside the component.
fn cached(
    dir: &Path,
    component: &Path,
    exts: &[&str],
    build: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut files = Vec::new();
    collect(dir, exts, &mut files)?;
    files.sort();
    let mut hash = Sha256::new();
    for file in &files {
        hash.update(file.strip_prefix(dir).unwrap_or(file).to_string_lossy().as_bytes());
        hash.update(std::fs::read(file)?);
    }
    let digest = hex::encode(hash.finalize());
    let stamp = component.with_extension("wasm.sha256");
    if component.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return Ok(());
    }
    build()?;
    std::fs::write(stamp, digest)?;
    Ok(())
}

fn collect(dir: &Path, exts: &[&str], files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules" || name == "__pycache__") {
                collect(&path, exts, files)?;
            }
        } else if path.extension().is_some_and(|e| exts.iter().any(|x| e == *x) || e == "wit") {
            files.push(path);
        }
    }
    Ok(())
}

fn rust(dir: &Path, manifest: &Manifest, component: &Path) -> anyhow::Result<()> {
    let cargo = require("cargo", &[], "install Rust with rustup (https://rustup.rs)")?;
    if let Some(rustup) = find("rustup", &[]) {
        let installed = Command::new(rustup).args(["target", "list", "--installed"]).output()?;
        if !String::from_utf8_lossy(&installed.stdout).lines().any(|t| t == "wasm32-wasip2") {
            bail!("the Rust target wasm32-wasip2 is not installed: rustup target add wasm32-wasip2");
        }
    }
    run(
        Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(dir.join("Cargo.toml")),
        "cargo build",
    )?;
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => std::path::absolute(t)?,
        None => dir.join("target"),
    };
    let built = target.join("wasm32-wasip2/release").join(format!("{}.wasm", manifest.name.replace('-', "_")));
    std::fs::copy(&built, component).with_context(|| format!("cargo built no {}", built.display()))?;
    Ok(())
}

fn python(dir: &Path, component: &Path) -> anyhow::Result<()> {
    let venv = setup_cache().join("venv/bin");
    let tool = require(
        "componentize-py",
        &[venv],
        "pip install componentize-py==0.25.0 (scripts/setup.sh installs it into .cache/venv)",
    )?;
    run(
        Command::new(tool)
            .current_dir(dir)
            .args(["-d", "wit", "-w", componentize::WORLD, "componentize", "app", "-p", ".", "-o"])
            .arg(component),
        "componentize-py",
    )
}

fn js(dir: &Path, component: &Path) -> anyhow::Result<()> {
    require("node", &[], "install Node.js 18 or newer (Debian: apt-get install nodejs npm)")?;
    let bin = setup_cache().join("js/node_modules/.bin");
    let tool = require(
        "componentize-js",
        &[bin],
        "npm install @bytecodealliance/componentize-js@0.23.0 (scripts/setup-plugin-langs.sh installs it into .cache/js)",
    )?;
    // The host offers no wasi:http: leave out the features that import it.
    run(
        Command::new(tool)
            .current_dir(dir)
            .args(["--wit", "wit", "--world-name", componentize::WORLD, "-d", "http", "-d", "fetch-event", "-o"])
            .arg(component)
            .arg("app.js"),
        "componentize-js",
    )
}

const C_INSTALL: &str = "on Debian: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32 \
                         (the package is versioned on Debian 12: libclang-rt-14-dev-wasm32); scripts/setup-plugin-langs.sh installs them";

/// The WASI sysroot: `$WASI_SYSROOT`, Debian's wasi-libc (in /usr), or a wasi-sdk.
fn wasi_sysroot() -> anyhow::Result<PathBuf> {
    if let Some(root) = std::env::var_os("WASI_SYSROOT") {
        return Ok(root.into());
    }
    for root in ["/usr", "/opt/wasi-sdk/share/wasi-sysroot"] {
        if Path::new(root).join("include/wasm32-wasi/stdlib.h").is_file() {
            return Ok(root.into());
        }
    }
    bail!("no WASI C library found (set WASI_SYSROOT): {C_INSTALL}")
}

fn c(dir: &Path, manifest: &Manifest, component: &Path) -> anyhow::Result<()> {
    let clang = require("clang", &[], C_INSTALL)?;
    let sysroot = wasi_sysroot()?;
    let target = ["--target=wasm32-wasi", &format!("--sysroot={}", sysroot.display())];
    let builtins = Command::new(&clang).args(target).arg("-print-libgcc-file-name").output()?;
    let builtins = PathBuf::from(String::from_utf8_lossy(&builtins.stdout).trim());
    ensure!(builtins.is_file(), "clang's WebAssembly runtime library {} is missing: {C_INSTALL}", builtins.display());
    let out = component.parent().expect("target/weir");
    let bindings = out.join("bindings");
    componentize::c_bindings(&dir.join("wit"), &bindings)?;
    for header in &manifest.headers {
        let system = Path::new("/usr/include").join(header);
        let package = if header == "jsmn.h" { "libjsmn-dev" } else { "the package that provides it" };
        std::fs::copy(&system, bindings.join(header))
            .with_context(|| format!("`{header}` not found in /usr/include: install {package}"))?;
    }
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    sources.retain(|p| p.extension().is_some_and(|e| e == "c"));
    sources.sort();
    let core = out.join("core.wasm");
    run(
        Command::new(&clang)
            .args(target)
            .args(["-O2", "-mexec-model=reactor", "-Wall", "-Wl,--strip-debug", "-I"])
            .arg(&bindings)
            .arg("-I")
            .arg(dir)
            .args(&sources)
            .arg(bindings.join("processor.c"))
            .arg(bindings.join("processor_component_type.o"))
            .arg("-o")
            .arg(&core),
        "clang",
    )?;
    wrap(&core, dir, component, false, componentize::Adapter::Wasmtime)
}

fn go(dir: &Path, component: &Path) -> anyhow::Result<()> {
    let install = "install Go 1.24 or newer (https://go.dev/dl)";
    let go = require("go", &[], install)?;
    let version = Command::new(&go).args(["env", "GOVERSION"]).output()?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let minor = version.strip_prefix("go1.").and_then(|v| v.split(['.', 'r', 'b']).next()?.parse::<u32>().ok());
    ensure!(
        minor.is_some_and(|m| m >= 24),
        "{version} cannot export functions to WebAssembly (go:wasmexport): {install}"
    );
    let core = component.parent().expect("target/weir").join("core.wasm");
    run(
        Command::new(&go)
            .current_dir(dir)
            .env("GOOS", "wasip1")
            .env("GOARCH", "wasm")
            .args(["build", "-buildmode=c-shared", "-trimpath", "-o"])
            .arg(&core)
            .arg("."),
        "go build",
    )?;
    wrap(&core, dir, component, true, componentize::Adapter::Go)
}

fn wrap(
    core: &Path,
    dir: &Path,
    component: &Path,
    embed_world: bool,
    adapter: componentize::Adapter,
) -> anyhow::Result<()> {
    let module = std::fs::read(core)?;
    let bytes = componentize::component_from_module(&module, &dir.join("wit"), embed_world, adapter)?;
    std::fs::write(component, bytes)?;
    Ok(())
}
