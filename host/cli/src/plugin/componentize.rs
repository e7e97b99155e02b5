//! Turns a core WebAssembly module (C through clang, Go through `go build`)
//! into a component of the `processor` world, and writes the C bindings.
//!
//! Both use the Bytecode Alliance's libraries rather than their command-line
//! tools (`wit-bindgen c`, `wasm-tools component new`), so `weir plugin build`
//! needs nothing installed for this step: `wit-bindgen-c` generates the C
//! bindings, `wit-component` embeds the world and wraps the module, and the
//! WASI preview1 reactor adapter (the one that matches the host's wasmtime)
//! turns the module's `wasi_snapshot_preview1` imports into WASI 0.2 ones.

use anyhow::{Context, Result};
use std::path::Path;
use wit_parser::{Resolve, WorldId};

/// The world every Weir plugin implements.
pub const WORLD: &str = "processor";

/// Reads the WIT package in `wit_dir` and finds the `processor` world.
pub fn load_world(wit_dir: &Path) -> Result<(Resolve, WorldId)> {
    let mut resolve = Resolve::default();
    let (package, _) =
        resolve.push_path(wit_dir).with_context(|| format!("cannot read the WIT contract in {}", wit_dir.display()))?;
    let world = resolve
        .select_world(&[package], Some(WORLD))
        .with_context(|| format!("{} has no `{WORLD}` world", wit_dir.display()))?;
    Ok((resolve, world))
}

/// Writes the C bindings of the world into `out_dir`: `processor.h`,
/// `processor.c`, and `processor_component_type.o`, an object file that
/// carries the world's types into the linked module.
pub fn c_bindings(wit_dir: &Path, out_dir: &Path) -> Result<()> {
    let (mut resolve, world) = load_world(wit_dir)?;
    let opts = wit_bindgen_c::Opts::default();
    let mut files = wit_bindgen_core::Files::default();
    opts.build().generate(&mut resolve, world, &mut files).context("cannot generate the C bindings")?;
    std::fs::create_dir_all(out_dir)?;
    for (name, bytes) in files.iter() {
        std::fs::write(out_dir.join(name), bytes).with_context(|| format!("cannot write {}", out_dir.display()))?;
    }
    Ok(())
}

/// Which WASI preview1 adapter a module gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// wasmtime's reactor adapter (C: wasi-libc).
    Wasmtime,
    /// Weir's stateless adapter for the Go runtime (`plugins/sdk/go/adapter`).
    Go,
}

const GO_ADAPTER_WAT: &str = include_str!("../../../../plugins/sdk/go/adapter/adapter.wat");
const GO_ADAPTER_WIT: &str = include_str!("../../../../plugins/sdk/go/adapter/adapter.wit");

/// The Go adapter module, with its imports' types embedded; `resolve` holds
/// the plugin's contract, whose `host` interface the adapter imports.
fn go_adapter(resolve: &mut Resolve) -> Result<Vec<u8>> {
    let mut module = wat::parse_str(GO_ADAPTER_WAT).context("the Go adapter does not assemble")?;
    let package = resolve.push_str("adapter.wit", GO_ADAPTER_WIT).context("the Go adapter's WIT")?;
    let world = resolve.select_world(&[package], Some("adapter"))?;
    wit_component::embed_component_metadata(&mut module, resolve, world, wit_component::StringEncoding::UTF8, false)?;
    Ok(module)
}

/// Wraps a preview1 core module into a component: embeds the world's types
/// (unless the module carries them already, as C modules linked with the
/// bindings' object file do), checks the module's imports and exports
/// against the world, and adapts WASI.
pub fn component_from_module(core: &[u8], wit_dir: &Path, embed_world: bool, adapter: Adapter) -> Result<Vec<u8>> {
    let mut module = core.to_vec();
    let (mut resolve, world) = load_world(wit_dir)?;
    if embed_world {
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
            false,
        )
        .context("cannot embed the WIT world in the module")?;
    }
    let name = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME;
    let adapter = match adapter {
        Adapter::Wasmtime => wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER.to_vec(),
        Adapter::Go => go_adapter(&mut resolve)?,
    };
    wit_component::ComponentEncoder::default()
        .module(&module)
        .context("the module does not fit the `processor` world")?
        .validate(true)
        .adapter(name, &adapter)?
        .encode()
        .context("the module does not fit the `processor` world")
}
