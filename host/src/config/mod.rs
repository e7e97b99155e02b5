//! The pipeline file: TOML, every table `deny_unknown_fields`.
//!
//! Loading is two stages, as in Vector: [`load`] parses the file alone (syntax,
//! unknown keys, types), then [`validate`](validate::validate) checks it in
//! context (files exist, names are unique, sinks name real outputs). Every error
//! names the file, and the line and key where it can.

mod load;
mod types;
mod validate;

pub use load::{ConfigError, load, load_str};
pub use types::*;
pub use validate::*;
