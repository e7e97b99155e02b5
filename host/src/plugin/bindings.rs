//! Host bindings generated from `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "processor",
});

pub use weir::plugin::types::Emitted;
