//! The pipeline: sources on their own threads feed batches through a bounded
//! channel to a worker, which runs the steps in order and hands each output
//! to the sinks that take it.

mod checkpointer;
mod circuit;
mod durable;
mod plugin_step;
mod restore;
mod run;
mod step;
mod worker;

pub use plugin_step::{PluginStep, PluginStepOptions};
pub use restore::StartFrom;
pub use run::{RunOptions, RunReport, Running, start, start_plugin};
pub use step::{Outputs, Step};
pub use worker::Worker;
