//! Host bindings generated from `wit/weir-plugin@0.1.2/`.

wasmtime::component::bindgen!({
    path: "../../wit/weir-plugin@0.1.2",
    world: "processor",
});

pub use weir::plugin::types::Emitted;
