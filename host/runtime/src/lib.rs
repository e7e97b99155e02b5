//! weir-runtime: a pipeline built from its spec and run — sources on their
//! own threads feeding a router that splits the events by key group among
//! shards, each running its own copy of the steps, and a sink stage that
//! writes the outputs and takes checkpoints; hot-loading of plugin versions. It may depend
//! on every crate below it (core, config, models, plugin-host, query,
//! connectors) and knows connectors only through their registry.
//!
//! - [`pipeline`]: building (the second stage of checking a pipeline file:
//!   queries and connector options, and how it splits among shards),
//!   starting and running it; the router, shards and sink stage; the plugin
//!   step with its circuit breaker.
//! - [`checkpoint`]: the checkpoint file format and folder.
//! - [`deploy`]: new plugin versions for running steps (admin API, watched folder).

pub mod checkpoint;
pub mod deploy;
pub mod pipeline;

pub use weir_core::position::{StartAt, StartFrom};
