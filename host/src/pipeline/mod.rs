//! The pipeline: sources on their own threads feed batches through a bounded
//! channel to a worker, which runs the steps in order and hands each output
//! to the sinks that take it.

mod circuit;
mod plugin_step;
mod run;
mod step;
mod worker;

pub use plugin_step::{PluginStep, PluginStepOptions};
pub use run::{RunOptions, RunReport, Running, start, start_plugin};
pub use step::{Outputs, Step};
pub use worker::Worker;
