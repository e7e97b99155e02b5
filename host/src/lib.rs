//! Weir: a real-time stream processing runtime whose analytics are
//! WebAssembly components.
//!
//! Where things live:
//! - [`config`]: the pipeline file (TOML), parsed and validated.
//! - [`event`]: batches in the flat layout, and decoding at ingestion.
//! - [`sources`]: file replay and the generator.
//! - [`plugin`]: the component host (all of wasmtime).
//! - [`pipeline`]: steps, the worker, and running a pipeline.
//! - [`sinks`]: file, stdout, discard.
//! - [`dead_letter`]: refused events with their reasons.
//! - [`deploy`]: hot-loading new plugin versions (admin API, watched folder).
//! - [`metrics`]: every Prometheus metric.
//! - [`server`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`cli`]: the `weir` command's subcommands.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod deploy;
pub mod event;
pub mod kafka;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod plugin;
pub mod query;
pub mod server;
pub mod sinks;
pub mod sources;
pub mod window;
