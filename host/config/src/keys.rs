//! The keyring that encrypts data at rest: read from the file or the
//! environment variable `[encryption]` names (never from the pipeline file)
//! and checked, for `weir run` and `weir decrypt`. Errors never show a key.

use super::load::{ConfigError, Locator};
use super::types::EncryptionSection;
use weir_core::at_rest::Keyring;

/// Largest keys file read.
pub const MAX_KEYS_FILE: u64 = 64 << 10;

/// Reads `[encryption]`'s keyring from its file or environment variable.
pub(crate) fn encryption(e: &EncryptionSection, at: &Locator) -> Result<Keyring, ConfigError> {
    if let Some(key) = &e.key {
        return Err(at.error(
            Some(key.span()),
            "encryption.key",
            "keys are never written in the pipeline file: give `keys_file` or `keys_env`",
        ));
    }
    let (from, key, span) = match (&e.keys_file, &e.keys_env) {
        (Some(path), None) => (KeysFrom::File(path.get_ref()), "encryption.keys_file", path.span()),
        (None, Some(var)) => (KeysFrom::Env(var.get_ref()), "encryption.keys_env", var.span()),
        _ => return Err(at.error(None, "encryption", "give exactly one of `keys_file` and `keys_env`")),
    };
    read_keyring(from).map_err(|message| at.error(Some(span), key, message))
}

/// Where a keyring is read from.
#[derive(Debug, Clone, Copy)]
pub enum KeysFrom<'a> {
    File(&'a std::path::Path),
    Env(&'a str),
}

/// Reads and checks a keyring. A file must be readable by its owner only.
/// Errors name the entry, never its text, and do not repeat a file name or
/// variable name that looks like a key pasted in the wrong place.
pub fn read_keyring(from: KeysFrom<'_>) -> Result<Keyring, String> {
    let text = zeroize::Zeroizing::new(match from {
        KeysFrom::File(path) => {
            use std::os::unix::fs::PermissionsExt;
            let shown = shown(&path.display().to_string());
            let mode = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{shown} can be read or written by others than its owner (mode {:o}): `chmod 600` it",
                    mode & 0o777
                ));
            }
            let bytes =
                super::load::read_at_most(path, MAX_KEYS_FILE).map_err(|e| format!("cannot read {shown}: {e}"))?;
            String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8"))?
        }
        KeysFrom::Env(var) => {
            let name_ok = !var.is_empty()
                && !var.starts_with(|c: char| c.is_ascii_digit())
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !name_ok {
                return Err("must name an environment variable (letters, digits and `_`; the value given is not \
                            shown: it may be a key)"
                    .into());
            }
            std::env::var(var).map_err(|_| format!("environment variable `{var}` is not set (or not UTF-8)"))?
        }
    });
    Keyring::parse(&text).map_err(|e| e.to_string())
}

/// A file name for an error, unless it looks like a key (a long run of
/// hex digits).
fn shown(name: &str) -> String {
    let longest_hex = name.split(|c: char| !c.is_ascii_hexdigit()).map(str::len).max().unwrap_or(0);
    if longest_hex >= 32 {
        "the keys file (its name is not shown: it may be a key)".into()
    } else {
        format!("`{name}`")
    }
}
