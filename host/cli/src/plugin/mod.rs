//! `weir plugin new|build|test|bench`: plugins in Rust, Python, JavaScript,
//! C and Go, from a template to a tested component.
//!
//! A plugin folder holds `weir-plugin.toml` (its name and language), its
//! sources, the language's SDK, a copy of the WIT contract (`wit/`) and a
//! sample input with its expected output. `build` writes the component to
//! `target/weir/<name>.wasm`.

mod bench;
mod build;
pub mod componentize;
mod templates;
mod test;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Lays out a ready-to-build plugin (the vital-signs early-warning rule)
    /// with a sample input and its expected output.
    New(templates::NewArgs),
    /// Builds a plugin folder into a component (target/weir/<name>.wasm).
    Build(build::BuildArgs),
    /// Runs a plugin on events and compares its outputs and dead-letter
    /// reasons with the expected ones; exits 1 on a difference.
    Test(test::TestArgs),
    /// Measures a plugin: size, compile time (cold and from the cache),
    /// instantiate time and ns/event on the vital-signs events.
    Bench(bench::BenchArgs),
}

pub fn plugin(args: PluginArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PluginCommand::New(args) => templates::new(args),
        PluginCommand::Build(args) => build::build_command(args),
        PluginCommand::Test(args) => test::test(args),
        PluginCommand::Bench(args) => bench::bench(args),
    }
}

/// The languages Weir has a template, an SDK and a build for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
    Go,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
            Lang::Go => "go",
        }
    }
}

/// `weir-plugin.toml`: what `build` needs to know about a plugin folder.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name; the component is `target/weir/<name>.wasm`.
    pub name: String,
    pub lang: Lang,
    /// C only: header-only libraries taken from the system's /usr/include
    /// (they hold no machine code, so the host's copy serves WebAssembly).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
}

pub const MANIFEST: &str = "weir-plugin.toml";

impl Manifest {
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is not a plugin folder: cannot read {} (make one with `weir plugin new`)",
                dir.display(),
                path.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    /// Where `build` writes the component.
    pub fn component(&self, dir: &Path) -> PathBuf {
        dir.join("target").join("weir").join(format!("{}.wasm", self.name))
    }
}
