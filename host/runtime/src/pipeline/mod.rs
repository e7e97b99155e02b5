//! The pipeline: sources on their own threads feed batches through a bounded
//! channel to a worker, which runs the steps in order and hands each output
//! to the sinks that take it.

mod build;
mod checkpointer;
mod circuit;
mod durable;
mod plugin_step;
mod restore;
mod run;
mod worker;

pub use build::{Checked, check};
pub use plugin_step::{PluginStep, PluginStepOptions};
pub use run::{Prepared, RunOptions, RunReport, Running, ServerParts, prepare, start, start_plugin};
pub use weir_core::step::{Outputs, Step};
pub use worker::Worker;
