//! The Rust SDK for Weir plugins.
//!
//! A plugin implements [`Processor`] and names its type with [`export_processor!`]:
//!
//! ```ignore
//! use weir_plugin_sdk::{export_processor, Batch, Outcomes, Processor};
//!
//! struct Identity;
//!
//! impl Processor for Identity {
//!     fn init(_config: &str) -> Result<Self, String> {
//!         Ok(Identity)
//!     }
//!     fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
//!         for event in batch {
//!             out.emit(&event, event.payload());
//!         }
//!     }
//! }
//!
//! export_processor!(Identity);
//! ```
//!
//! The batch arrives in the flat layout of `wit/weir-plugin.wit` (one buffer
//! for all payloads); this crate hands it out as [`Event`]s that borrow from
//! that buffer, and collects outcomes into the same flat layout, so a batch
//! costs a few copies whatever its size.
//!
//! [`models::infer`] runs an ONNX model in the host on a whole batch.

mod batch;
pub mod models;
mod outcomes;
pub mod state;

pub use batch::{Batch, Event, Events};
pub use outcomes::Outcomes;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/weir-plugin@0.1.2",
        world: "processor",
        pub_export_macro: true,
        export_macro_name: "__export_processor_world",
        default_bindings_module: "weir_plugin_sdk::bindings",
    });
}

pub use bindings::weir::plugin::host::Level;

/// A plugin: built once per instance by [`Processor::init`], then handed
/// every batch in order.
pub trait Processor: Sized + 'static {
    /// Builds the plugin from the step's `config` string. An error refuses
    /// the plugin: the host reports it and does not start the pipeline (or
    /// keeps the previous version when hot-loading).
    fn init(config: &str) -> Result<Self, String>;

    /// Processes one batch: for each event, emit zero or more events with
    /// [`Outcomes::emit`] / [`Outcomes::emit_to`], or refuse it with
    /// [`Outcomes::reject`].
    fn process(&mut self, batch: &Batch, out: &mut Outcomes);
}

/// Writes a line to the host's log, under this plugin's step name.
pub fn log(level: Level, message: &str) {
    bindings::weir::plugin::host::log(level, message);
}

/// Adds `value` to this plugin's counter `name`.
pub fn counter_add(name: &str, value: u64) {
    bindings::weir::plugin::host::counter_add(name, value);
}

/// Sets this plugin's gauge `name`.
pub fn gauge_set(name: &str, value: f64) {
    bindings::weir::plugin::host::gauge_set(name, value);
}

#[doc(hidden)]
pub mod __private {
    use super::bindings::weir::plugin::types;
    use super::{Batch, Outcomes, Processor};
    use std::cell::RefCell;

    pub use super::bindings::Guest;

    thread_local! {
        static INSTANCE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
    }

    pub fn init<P: Processor>(config: String) -> Result<(), String> {
        let plugin = P::init(&config)?;
        INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
        Ok(())
    }

    pub fn process<P: Processor>(batch: types::Batch) -> types::Outcomes {
        let batch = Batch::from_wit(batch);
        let mut out = Outcomes::with_capacity(batch.len(), batch.payload_bytes());
        INSTANCE.with(|slot| {
            let mut slot = slot.borrow_mut();
            let plugin = slot
                .as_mut()
                .and_then(|p| p.downcast_mut::<P>())
                .expect("weir: process called before a successful init");
            plugin.process(&batch, &mut out);
        });
        out.into_wit()
    }
}

/// Exports a [`Processor`] type as this component's `processor` world.
#[macro_export]
macro_rules! export_processor {
    ($plugin:ty) => {
        struct __WeirExport;

        impl $crate::__private::Guest for __WeirExport {
            fn init(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__private::init::<$plugin>(config)
            }
            fn process(
                batch: $crate::bindings::weir::plugin::types::Batch,
            ) -> $crate::bindings::weir::plugin::types::Outcomes {
                $crate::__private::process::<$plugin>(batch)
            }
        }

        $crate::bindings::__export_processor_world!(__WeirExport with_types_in $crate::bindings);
    };
}
