//! End-to-end tests: each starts the real `weir` binary on a pipeline file.

mod harness;
mod live;
mod metrics;

mod at_rest;
mod checkpoints;
mod config_errors;
mod dead_letters;
mod drug_interactions;
mod golden;
mod hardening;
mod hot_swap;
mod http_ingest;
mod kafka;
mod models;
mod plugin_langs;
mod python_plugin;
mod sandbox;
mod sandbox_limits;
mod server;
mod shards;
mod windows;
