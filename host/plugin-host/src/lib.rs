//! weir-plugin-host: the component host. All wasmtime code in Weir lives in
//! this crate; it may depend on `weir-core`, `weir-config` and `weir-models`.
//!
//! - [`PluginEngine`]: one wasmtime engine per process, with an epoch ticker
//!   for per-call deadlines, a linker with WASI (no files, network or env) and
//!   the host API, and a cache of precompiled components on disk.
//! - [`LoadedPlugin`]: a compiled, pre-linked component (`InstancePre`), cheap
//!   to instantiate; known by the sha256 of its bytes.
//! - [`PluginInstance`]: one Store and instance per step per worker, with a
//!   deadline and a memory cap on every call; after a failed call it starts a
//!   fresh instance.
//! - The host interfaces a plugin imports, each a small view of the store
//!   with its own `add_to_linker` (as wasmtime's `wasi-config` does):
//!   `host_api` (`weir:plugin/host`: logs, metrics), `models_api`
//!   (`weir:plugin/models`: `infer`), `state` (`weir:plugin/state`: keyed
//!   state), and `stdio` (a plugin's stdout and stderr, rate-limited).

mod bindings;
mod cache;
mod engine;
mod host_api;
mod instance;
mod models_api;
mod state;
mod stdio;

pub use bindings::{Emitted, Outcomes};
pub use cache::digest;
pub use engine::{LoadedPlugin, PluginEngine};
pub use instance::{CallFailure, FailureKind, InstanceSettings, PluginInstance};
pub use state::{KeyedState, Quota};
pub use stdio::{StdioMetrics, clean as clean_line};

/// A plugin that cannot be loaded or started.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin `{path}`: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("`{path}` is not a WebAssembly component Weir can run: {message}")]
    Compile { path: String, message: String },
    #[error("`{path}` does not fit the weir:plugin/processor@0.1 world: {message}")]
    Link { path: String, message: String },
    #[error("plugin init refused its config: {0}")]
    Init(String),
    #[error("plugin failed while starting: {0}")]
    Start(String),
}

/// The default folder for precompiled components.
pub fn default_cache_dir() -> Option<std::path::PathBuf> {
    cache::ComponentCache::default_dir()
}
