//! The pipeline: sources on their own threads feed batches through a bounded
//! channel to the router, which decodes them and splits them by key group
//! among the shards; each shard runs its own copy of the steps in order and
//! hands each output to the sink stage, which writes the sinks and takes
//! the checkpoints (see `router`, `worker`, `checkpointer`).

mod build;
mod checkpointer;
mod circuit;
mod durable;
mod plugin_step;
pub(crate) mod restore;
mod router;
mod run;
mod steps;
mod worker;

pub use build::{Checked, Sharding, check, sharding};
pub use plugin_step::{PluginStep, PluginStepOptions};
pub use run::{Prepared, RunOptions, RunReport, Running, ServerParts, prepare, start};
pub use steps::start_plugin;
pub use weir_core::step::{Outputs, Step};
pub use worker::ShardMetrics;
