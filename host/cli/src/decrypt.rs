//! `weir decrypt`: the plaintext of a file Weir encrypted at rest (a file
//! sink's output, the dead-letter output, a checkpoint), for a person
//! reading it or a tool that cannot.

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use weir_config::{KeysFrom, read_keyring};
use weir_core::at_rest;

#[derive(Debug, clap::Args)]
pub struct DecryptArgs {
    /// The encrypted file.
    pub file: PathBuf,
    /// The keys file (as `[encryption] keys_file`).
    #[arg(long, conflicts_with = "keys_env", required_unless_present = "keys_env")]
    pub keys_file: Option<PathBuf>,
    /// The environment variable holding the keys (as `[encryption] keys_env`).
    #[arg(long)]
    pub keys_env: Option<String>,
    /// A new file the plaintext goes to, made readable by its owner only
    /// (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub fn decrypt(args: DecryptArgs) -> anyhow::Result<ExitCode> {
    let from = match (&args.keys_file, &args.keys_env) {
        (Some(path), _) => KeysFrom::File(path),
        (None, Some(var)) => KeysFrom::Env(var),
        (None, None) => unreachable!("clap requires one"),
    };
    let keys = read_keyring(from).map_err(|e| anyhow::anyhow!("the keys: {e}"))?;
    let shown = args.file.display();
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read `{shown}`"))?;
    let (plaintext, frames) = if at_rest::is_sealed_checkpoint(&bytes) {
        let plain = at_rest::open_checkpoint(Some(&keys), &bytes).with_context(|| format!("`{shown}`"))?;
        (plain, "one checkpoint".to_string())
    } else {
        let opened = at_rest::open_file(Some(&keys), &bytes).with_context(|| format!("`{shown}`"))?;
        let by_key: Vec<String> = opened.frames_by_key.iter().map(|(k, n)| format!("{n} with key `{k}`")).collect();
        let by_key = if by_key.is_empty() { "none".to_string() } else { by_key.join(", ") };
        (opened.plaintext, format!("frames: {by_key}"))
    };
    match &args.output {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            // Plaintext: readable by its owner only, like the keys.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create `{}`", path.display()))?;
            f.write_all(&plaintext)?;
        }
        None => std::io::stdout().lock().write_all(&plaintext)?,
    }
    eprintln!("{shown}: {} bytes of plaintext; {frames}", plaintext.len());
    Ok(ExitCode::SUCCESS)
}
