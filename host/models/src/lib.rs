//! weir-models: ONNX models run by the host; it may depend on `weir-core`
//! and `weir-config`, and ort stays out of every other crate but the benchmarks.
//!
//! ONNX models run by the host and offered to plugins as `infer`
//! (ONNX Runtime cannot run inside the WebAssembly sandbox).
//!
//! - [`ModelRegistry`]: the models named in the pipeline file, loaded and
//!   checked at start; a thread polls each file and swaps in a changed one
//!   that loads and keeps its inputs and outputs (the old version serves
//!   on otherwise, and the failure is logged and counted).
//! - [`ModelSessions`]: the models one plugin instance may call, one ONNX
//!   Runtime session per model per instance; the version is pinned for a
//!   whole batch, so outputs switch version at a batch boundary.
//! - The ONNX Runtime library is loaded at run time (`runtime`), once per
//!   process, from `[onnx] library` or `ORT_DYLIB_PATH`.

mod registry;
mod runtime;
mod session;
mod signature;

pub use registry::{Model, ModelRegistry, ModelSpec, ModelVersion};
pub use runtime::{LIBRARY_NAME, environment, library_path};
pub use session::{Inference, ModelSessions, Tensor, TensorData};
pub use signature::{Elem, Signature, TensorSpec};
