//! The process-wide wasmtime engine, its epoch ticker and linker.

use super::PluginError;
use super::bindings::ProcessorPre;
use super::cache::{ComponentCache, digest};
use super::instance::StoreData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

/// One epoch tick. Deadlines are counted in ticks, so they are exact to about
/// this much (plus scheduling).
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Compiles, caches and pre-links plugin components.
pub struct PluginEngine {
    engine: Engine,
    linker: Linker<StoreData>,
    cache: ComponentCache,
}

/// A compiled, pre-linked plugin component.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub(super) pre: ProcessorPre<StoreData>,
    /// sha256 of the component bytes, hex.
    pub digest: Arc<str>,
    pub path: PathBuf,
}

impl PluginEngine {
    /// An engine with epoch interruption, and a cache in `cache_dir` (none: compile every time).
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config)?;
        spawn_ticker(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        deny_sockets(&mut linker)?;
        // Each host interface is a small view of the store, linked on its own.
        super::host_api::add_to_linker(&mut linker)?;
        super::models_api::add_to_linker(&mut linker)?;
        super::state::add_to_linker(&mut linker)?;
        Ok(PluginEngine { engine, linker, cache: ComponentCache::new(cache_dir) })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads, compiles (or loads from the cache) and pre-links the component at `path`.
    pub fn load(&self, path: &Path) -> Result<LoadedPlugin, PluginError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read { path: shown.clone(), source })?;
        self.load_bytes(path, &bytes)
    }

    /// As [`load`](Self::load), for bytes already in memory.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<LoadedPlugin, PluginError> {
        let shown = path.display().to_string();
        let digest = digest(bytes);
        if !bytes.starts_with(b"\0asm") && std::str::from_utf8(bytes).is_err() {
            let message = "not WebAssembly: the file does not start with the `\\0asm` magic bytes".to_string();
            return Err(PluginError::Compile { path: shown, message });
        }
        let component = self
            .cache
            .compile(&self.engine, bytes, &digest)
            .map_err(|e| PluginError::Compile { path: shown.clone(), message: format!("{e:#}") })?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link { path: shown.clone(), message: format!("{e:#}") })?;
        let pre = ProcessorPre::new(instance_pre)
            .map_err(|e| PluginError::Link { path: shown.clone(), message: format!("{e:#}") })?;
        Ok(LoadedPlugin { pre, digest: digest.into(), path: path.to_path_buf() })
    }
}

/// Replaces WASI's socket constructors with ones that refuse and count the
/// attempt: a plugin never gets a host socket (not even an unconnected
/// one), and `weir_plugin_denied_total{capability="network"}` shows who tried.
fn deny_sockets(linker: &mut Linker<StoreData>) -> anyhow::Result<()> {
    use wasmtime::StoreContextMut;
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily};
    use wasmtime_wasi::p2::{TcpSocket, UdpSocket};
    linker.allow_shadowing(true);
    linker.instance("wasi:sockets/tcp-create-socket@0.2.12")?.func_wrap(
        "create-tcp-socket",
        |mut store: StoreContextMut<'_, StoreData>, (_family,): (IpAddressFamily,)| {
            store.data_mut().api.denied_network("tcp");
            Ok((Err::<Resource<TcpSocket>, _>(ErrorCode::AccessDenied),))
        },
    )?;
    linker.instance("wasi:sockets/udp-create-socket@0.2.12")?.func_wrap(
        "create-udp-socket",
        |mut store: StoreContextMut<'_, StoreData>, (_family,): (IpAddressFamily,)| {
            store.data_mut().api.denied_network("udp");
            Ok((Err::<Resource<UdpSocket>, _>(ErrorCode::AccessDenied),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Advances the engine's epoch every tick for as long as the engine lives;
/// the thread holds only a weak reference, so it never keeps the engine alive.
fn spawn_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("weir-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}
