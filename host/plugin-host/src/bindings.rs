//! Host bindings generated from `wit/weir-plugin@0.1.2/`.

wasmtime::component::bindgen!({
    path: "../../wit/weir-plugin@0.1.2",
    world: "processor",
    // A put over the state quota traps the call (see `state`).
    imports: { "weir:plugin/state.put": trappable },
});

pub use weir::plugin::types::Emitted;
