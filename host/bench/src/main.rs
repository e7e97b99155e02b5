//! weir-bench: measurements of Weir that do not belong in the shipped
//! binary. It may depend on every Weir crate; nothing depends on it.
//!
//!   cargo run --release -p weir-bench -- plugin|models|http|swap|seed-loop [options]
//!
//! `weir plugin bench` (for plugin authors) stays in the `weir` command.
#![allow(clippy::print_stdout, reason = "the reports are the commands' output")]

mod http;
mod models;
mod plugin;
mod seed_loop;
mod swap;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "weir-bench", about = "Weir's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measures throughput: file → plugin → discard at several batch sizes.
    Plugin(plugin::BenchArgs),
    /// Measures host models: ort alone, through a plugin's `infer`, and the
    /// fraud pipeline end to end.
    Models(models::BenchModelsArgs),
    /// Measures HTTP ingestion: events/s at 1 and 100 events per request,
    /// and latency HTTP → plugin → sink at a set rate.
    Http(http::BenchHttpArgs),
    /// Measures hot-loading: the stall of the event flow per swap under
    /// load, upload to first batch, and compile times with and without the cache.
    Swap(swap::BenchSwapArgs),
    /// The hand-written two-thread loop the patient-monitoring query is
    /// compared with (scripts/bench-patient-monitoring.sh).
    SeedLoop(seed_loop::SeedLoopArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    weir::init_logging(0, false);
    let result = match cli.command {
        Command::Plugin(args) => plugin::bench(args),
        Command::Models(args) => models::bench_models(args),
        Command::Http(args) => http::bench_http(args),
        Command::Swap(args) => swap::bench_swap(args),
        Command::SeedLoop(args) => seed_loop::bench(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The `weir` binary beside this one (same target folder).
fn weir_binary() -> anyhow::Result<std::path::PathBuf> {
    let me = std::env::current_exe()?;
    let weir = me.with_file_name("weir");
    anyhow::ensure!(weir.is_file(), "{} not found: build it first (cargo build --release -p weir)", weir.display());
    Ok(weir)
}
