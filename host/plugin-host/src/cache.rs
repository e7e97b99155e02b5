//! Precompiled components on disk, keyed by the component's sha256 and the
//! engine's compatibility hash, so a Python component (seconds to compile)
//! is compiled once per machine and engine configuration.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ComponentCache {
    dir: Option<PathBuf>,
}

/// sha256 of a component's bytes, hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ComponentCache {
    /// A cache in `dir`; `None` compiles every time.
    pub fn new(dir: Option<PathBuf>) -> Self {
        ComponentCache { dir }
    }

    /// The default folder: `$WEIR_CACHE_DIR`, else `$XDG_CACHE_HOME/weir`, else `~/.cache/weir`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("WEIR_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("weir"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("weir"))
    }

    /// Compiles `bytes`, or loads the precompiled artifact from the cache.
    pub fn compile(&self, engine: &Engine, bytes: &[u8], digest: &str) -> wasmtime::Result<Component> {
        let Some(path) = self.path_for(engine, digest) else {
            return Component::new(engine, bytes);
        };
        if path.is_file() {
            // SAFETY: files in the cache folder are written only by `store`
            // below from `Component::serialize` of this same engine
            // configuration (the file name carries its compatibility hash);
            // wasmtime still checks the header and refuses a mismatch.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable precompiled component")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write precompiled component to the cache");
        }
        Ok(component)
    }

    fn path_for(&self, engine: &Engine, digest: &str) -> Option<PathBuf> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let dir = self.dir.as_ref()?.join("components");
        Some(dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish())))
    }
}

/// Writes atomically: a reader never sees a half-written artifact.
fn store(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().expect("cache paths have a folder");
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    let tmp = tempfile_in(dir, &bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn tempfile_in(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = dir.join(format!(".tmp-{}-{:016x}", std::process::id(), rand::random::<u64>()));
    std::fs::write(&tmp, bytes)?;
    Ok(tmp)
}
