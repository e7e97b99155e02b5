//! The keys of a `[[sources]]` or `[[sinks]]` table that belong to its kind.
//!
//! The pipeline file knows only the keys every source (or sink) has; the
//! rest belong to the connector of that kind, which reads them into its
//! own `deny_unknown_fields` type with [`Options::deserialize`]. So adding
//! a connector touches its own folder and the registry of kinds, never
//! this crate, and its errors still name the file, the line and the key.

use super::load::{ConfigError, SourceText};
use serde::de::DeserializeOwned;
use std::ops::Range;
use std::sync::Arc;

/// One table's kind-specific keys.
#[derive(Debug, Clone)]
pub struct Options {
    at: Arc<SourceText>,
    /// The array of tables ("sources" or "sinks") and the table's place in it.
    array: &'static str,
    index: usize,
    /// The keys every table of that array has, which are not options.
    common: &'static [&'static str],
    /// The kind, as written.
    pub kind: String,
    /// The span of `kind = ...`: errors about the table as a whole point there.
    kind_span: Option<Range<usize>>,
    /// The option keys present, in file order.
    pub keys: Vec<String>,
}

impl Options {
    pub(super) fn new(
        at: &Arc<SourceText>,
        array: &'static str,
        index: usize,
        common: &'static [&'static str],
        kind: &toml::Spanned<String>,
        keys: Vec<String>,
    ) -> Self {
        Options {
            at: at.clone(),
            array,
            index,
            common,
            kind: kind.get_ref().clone(),
            kind_span: Some(kind.span()),
            keys,
        }
    }

    /// "sources[2].field": how errors name a key of this table.
    pub fn key(&self, field: &str) -> String {
        format!("{}[{}].{field}", self.array, self.index)
    }

    /// Reads the options into the connector's type `T`. Unknown keys, wrong
    /// types and missing keys are refused with the line and column.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let text = self.at.text.clone();
        let mut root = toml::de::DeTable::parse(&text).map_err(|e| self.at.parse_error(e))?;
        let table = root
            .get_mut()
            .remove(self.array)
            .and_then(|array| match array.into_inner() {
                toml::de::DeValue::Array(items) => items.into_iter().nth(self.index),
                _ => None,
            })
            .expect("the table was read from this text");
        let span = table.span();
        let mut table = match table.into_inner() {
            toml::de::DeValue::Table(t) => t,
            _ => unreachable!("an array of tables holds tables"),
        };
        for key in self.common {
            table.remove(*key);
        }
        let value = toml::Spanned::new(span, toml::de::DeValue::Table(table));
        T::deserialize(toml::de::ValueDeserializer::from(value)).map_err(|e| self.at.parse_error(e))
    }

    /// An error about `field` of this table, at its `kind` line.
    pub fn error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        self.at.error(self.kind_span.clone(), self.key(field), message)
    }

    /// An error about `field` at `span` (a `Spanned` option's).
    pub fn error_at(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> ConfigError {
        self.at.error(Some(span), self.key(field), message)
    }

    /// Whether the table sets `field`.
    pub fn has(&self, field: &str) -> bool {
        self.keys.iter().any(|k| k == field)
    }
}
