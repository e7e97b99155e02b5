//! The one ONNX Runtime environment of the process, loaded from a shared
//! library at run time (`ort`'s `load-dynamic`): nothing is downloaded.

use ort::environment::Environment;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The library Weir is built and tested against (the PyPI wheel
/// `onnxruntime==1.31.1` ships it in `onnxruntime/capi/`).
pub const LIBRARY_NAME: &str = "libonnxruntime.so.1.31.1";

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Where the library comes from: the pipeline's `[onnx] library`, else
/// `ORT_DYLIB_PATH`.
pub fn library_path(configured: Option<&Path>) -> Result<PathBuf, String> {
    let (path, from) = match configured {
        Some(p) => (p.to_path_buf(), "[onnx] library"),
        None => match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => (PathBuf::from(p), "ORT_DYLIB_PATH"),
            _ => {
                return Err(format!(
                    "the pipeline uses ONNX models, but no ONNX Runtime library is configured: set ORT_DYLIB_PATH \
                     or [onnx] library to {LIBRARY_NAME} (scripts/setup.sh installs it under .cache/onnxruntime/)"
                ));
            }
        },
    };
    if !path.is_file() {
        return Err(format!("ONNX Runtime library `{}` (from {from}) not found", path.display()));
    }
    Ok(path)
}

/// The process's environment, created on first use from `library`; later
/// calls return the same one whatever they pass.
pub fn environment(library: &Path) -> Result<Environment, String> {
    ENVIRONMENT
        .get_or_init(|| {
            let builder = ort::init_from(library)
                .map_err(|e| format!("cannot load ONNX Runtime from `{}`: {e}", library.display()))?;
            builder
                .with_name("weir")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime from `{}`: {e}", library.display()))
        })
        .clone()
}
