//! Reading and parsing a pipeline file, with errors that name the file,
//! the line and the key.

use super::types::PipelineFile;
use super::validate::{PipelineSpec, validate};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A pipeline file that cannot be used. Displays as `file:line: key: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the pipeline file: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// Syntax, unknown keys or wrong types; the message carries line and column.
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// A well-formed file that does not make a pipeline.
    #[error("{}{}: {key}: {message}", path.display(), LineSuffix(*line))]
    Invalid { path: PathBuf, line: Option<usize>, key: String, message: String },
}

struct LineSuffix(Option<usize>);

impl fmt::Display for LineSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

/// Reads, parses and validates the pipeline file at `path`.
pub fn load(path: &Path) -> Result<PipelineSpec, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    load_str(path, &text)
}

/// Parses and validates pipeline-file text; `path` is used in errors and
/// to resolve nothing else (relative paths are relative to the working directory).
pub fn load_str(path: &Path, text: &str) -> Result<PipelineSpec, ConfigError> {
    let file: PipelineFile = toml::from_str(text)
        .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string().trim_end().to_string() })?;
    let at = Arc::new(SourceText { path: path.to_path_buf(), text: text.into() });
    validate(file, &at)
}

/// The contents of `path` if it holds at most `limit` bytes; a larger file
/// is an error (only `limit` + 1 bytes of it are read). For files a user
/// names whose size nothing else bounds: secrets, token lists.
pub fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

/// The pipeline file's text, kept so that every later stage (connectors,
/// queries) can turn a span into a line number in its errors.
#[derive(Debug)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl SourceText {
    pub fn line_of(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// An error at `span` (its line), about `key`.
    pub fn error(&self, span: Option<Range<usize>>, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: span.map(|s| self.line_of(s)),
            key: key.into(),
            message: message.into(),
        }
    }

    /// A TOML error (it carries its own line and column).
    pub fn parse_error(&self, mut e: toml::de::Error) -> ConfigError {
        e.set_input(Some(&self.text));
        ConfigError::Parse { path: self.path.clone(), message: e.to_string().trim_end().to_string() }
    }
}

/// Errors of the first stage name lines through this.
pub(super) type Locator = SourceText;
