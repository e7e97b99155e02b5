//! `weir run`.

use super::progress::{Progress, print_summary};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use weir_runtime::StartFrom;
use weir_runtime::pipeline::{RunOptions, prepare};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// Address for /healthz, /readyz and /metrics; overrides `[server] listen`.
    #[arg(long)]
    pub listen: Option<String>,
    /// Folder for precompiled plugins [default: $WEIR_CACHE_DIR, $XDG_CACHE_HOME/weir or ~/.cache/weir].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Compile plugins every time instead of using the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Where to start: "checkpoint" (the last one; the default), or a replay
    /// from "earliest", "latest" or an RFC 3339 time: checkpoints are set
    /// aside, state starts empty and Kafka sources start there.
    #[arg(long, default_value = "checkpoint")]
    pub from: String,
    /// This process's name among the processes running the pipeline (its
    /// Kafka transactional id and group instance id); keep it across restarts.
    #[arg(long, env = "WEIR_INSTANCE", default_value = "0")]
    pub instance: String,
    /// At the end of the run, write every metric (Prometheus text format)
    /// to this file, e.g. for node_exporter's textfile collector after a
    /// batch replay. Written whole (renamed into place), also after a failure.
    #[arg(long)]
    pub metrics_file: Option<PathBuf>,
}

pub fn run(args: RunArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let spec = weir_config::load(&args.pipeline)?;
    let cache_dir = if args.no_cache { None } else { args.cache_dir.or_else(weir_plugin_host::default_cache_dir) };
    let name = spec.name.clone();
    let from = match args.from.as_str() {
        "checkpoint" => StartFrom::Checkpoint,
        other => StartFrom::Replay(other.parse().map_err(|e: String| anyhow::anyhow!("--from: {e}"))?),
    };
    let prepared = prepare(spec, RunOptions { listen: args.listen, cache_dir, from, instance: args.instance })?;
    let parts = prepared.server_parts();
    // SIGHUP reloads what can be reloaded (the server's tokens_file) and
    // never stops the process, as its default action would.
    signal_hook::flag::register(
        signal_hook::consts::SIGHUP,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )?;
    let server = match &parts.listen {
        Some(addr) => Some(weir_server::Server::start(addr, parts.clone())?),
        None => None,
    };
    if let Some(s) = &server {
        tracing::info!("metrics on http://{}/metrics", s.addr);
    }
    let running = prepared.start()?;
    let stop = running.stop_flag();
    // A first SIGINT/SIGTERM stops the sources and lets in-flight batches
    // finish; a second one exits at once.
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let progress = (!quiet).then(|| Progress::spawn(running.metrics.clone()));
    let metrics = running.metrics.clone();
    let report = running.wait();
    if let Some(path) = &args.metrics_file {
        match write_metrics(path, &metrics.render()) {
            Err(e) if report.is_ok() => return Err(e),
            // The run's own error matters more: report that one.
            Err(e) => tracing::error!("{e:#}"),
            Ok(()) => {}
        }
    }
    if let Some(p) = progress {
        p.finish();
    }
    let report = report?;
    if !quiet {
        print_summary(&name, &report);
    }
    if stop.load(Ordering::Relaxed) {
        tracing::info!("stopped by signal after draining in-flight batches");
    }
    drop(server);
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `path` under a temporary name, then renames it into place.
fn write_metrics(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("--metrics-file: cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("--metrics-file: cannot write `{}`", path.display()))
}
