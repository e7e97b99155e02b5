//! weir (the `weir` command): the top of the house. It may depend on
//! every other Weir crate except `weir-bench`, which ships nothing.
//!
//! - `run`, `validate`: a pipeline file through `weir-runtime`, with the
//!   server of `weir-server` between preparing and starting it.
//! - `deploy`: a new plugin version through a running pipeline's admin API.
//! - `plugin`: `weir plugin new|build|test|bench` for plugin authors.
//! - `decrypt`: the plaintext of a file encrypted at rest.

mod decrypt;
mod deploy;
pub mod plugin;
pub mod progress;
mod run;

#[cfg(test)]
mod reference;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "weir", version, about = "Real-time stream processing with WebAssembly analytics")]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No progress line and no summary; errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a pipeline: to the end of finite input, or until SIGINT/SIGTERM.
    Run(run::RunArgs),
    /// Checks a pipeline file, and that its plugins load and accept their config, without running it.
    Validate {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Deploys a new plugin version to a step of a running pipeline (or
    /// rolls back, or lists versions) through its admin API.
    Deploy(deploy::DeployArgs),
    /// Plugins in Rust, Python, JavaScript, C and Go: lay one out from a
    /// template, build it into a component, test it on events, measure it.
    Plugin(plugin::PluginArgs),
    /// Prints the plaintext of a file encrypted at rest (a file sink's
    /// output, the dead-letter output, a checkpoint) with the given keys.
    Decrypt(decrypt::DecryptArgs),
}

pub fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: logs redirected to a file stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args, cli.quiet),
        Command::Validate { pipeline } => {
            let spec = weir_config::load(&pipeline)?;
            let checked = weir_runtime::pipeline::check(&spec)?;
            let mut engine = None;
            let metrics = weir_core::metrics::Metrics::new(&spec.name);
            let models =
                weir_models::ModelRegistry::load(&spec.models, spec.onnx_library.as_deref(), metrics.models())?;
            for m in &spec.models {
                let v = models.get(&m.name).expect("loaded above").current();
                eprintln!("model `{}`: {} loads: {} (sha256 {})", m.name, m.path.display(), v.signature, v.digest);
            }
            for (step, plan) in spec.steps.iter().zip(&checked.plans) {
                match (&step.kind, plan) {
                    (weir_config::StepSpecKind::Plugin(p), _) => {
                        let engine = match &mut engine {
                            Some(e) => e,
                            None => engine
                                .insert(weir_plugin_host::PluginEngine::new(weir_plugin_host::default_cache_dir())?),
                        };
                        let (instance, _) =
                            weir_runtime::pipeline::start_plugin(engine, &step.name, p, &metrics, &models, None)?;
                        eprintln!("step `{}`: {} starts (sha256 {})", step.name, p.plugin.display(), instance.digest());
                    }
                    (weir_config::StepSpecKind::Query(_), Some(plan)) => {
                        eprintln!("step `{}`: query plan\n{}", step.name, indent(&plan.to_string()));
                    }
                    (weir_config::StepSpecKind::Query(_), None) => unreachable!("a checked query has a plan"),
                }
            }
            eprintln!("{}: ok", pipeline.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy(args) => deploy::deploy(args),
        Command::Plugin(args) => plugin::plugin(args),
        Command::Decrypt(args) => decrypt::decrypt(args),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// The exit status of a failed command, by whose fault it was: 2 when the
/// pipeline file, a plugin or the input must change (trying again fails the
/// same way), 3 when something outside Weir failed (a broker, a disk; trying
/// again later may work), 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    use weir_core::error::{Domain, Error};
    let domain = if e.downcast_ref::<weir_config::ConfigError>().is_some()
        || e.downcast_ref::<weir_plugin_host::PluginError>().is_some()
    {
        Some(Domain::User)
    } else {
        e.downcast_ref::<Error>().map(|e| e.domain)
    };
    match domain {
        Some(Domain::User) => ExitCode::from(2),
        Some(Domain::External) => ExitCode::from(3),
        Some(Domain::Internal) | None => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::error::Error;

    #[test]
    fn the_exit_status_says_whether_to_fix_or_to_retry() {
        let user = anyhow::Error::new(Error::user("bad query")).context("step `q`");
        let external = anyhow::Error::new(Error::external("broker down").at("sink `out`")).context("cannot open");
        let other = anyhow::anyhow!("the worker thread panicked");
        assert_eq!(exit_code(&user), ExitCode::from(2));
        assert_eq!(exit_code(&external), ExitCode::from(3));
        assert_eq!(exit_code(&other), ExitCode::FAILURE);
    }
}
