//! One error type for the boundaries between Weir's parts, as Arroyo does
//! it: a message for the user, the domain at fault, and whether trying
//! again can help.

use std::fmt;

/// Whose fault an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// The pipeline file, a plugin, a model or the input: the user fixes it.
    User,
    /// A service or the machine (a broker, a disk, a port).
    External,
    /// Weir itself.
    Internal,
}

/// Whether the same operation may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Trying again without a change fails the same way.
    Never,
    /// It may succeed later (the broker is back, the disk has room).
    Later,
}

/// An error with its domain and retry hint, and where it happened.
#[derive(Debug)]
pub struct Error {
    pub domain: Domain,
    pub retry: Retry,
    /// The part that failed, e.g. "source `orders`" or "step `score`".
    pub component: Option<String>,
    pub message: String,
}

impl Error {
    pub fn user(message: impl Into<String>) -> Self {
        Error { domain: Domain::User, retry: Retry::Never, component: None, message: message.into() }
    }

    pub fn external(message: impl Into<String>) -> Self {
        Error { domain: Domain::External, retry: Retry::Later, component: None, message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error { domain: Domain::Internal, retry: Retry::Never, component: None, message: message.into() }
    }

    /// Names the part that failed.
    pub fn at(mut self, component: impl Into<String>) -> Self {
        self.component = Some(component.into());
        self
    }

    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.component {
            Some(c) => write!(f, "{c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    /// I/O fails outside Weir (a disk, a socket): external, worth retrying.
    fn from(e: std::io::Error) -> Self {
        Error::external(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_its_component_and_keeps_its_domain() {
        let e = Error::external("broker 127.0.0.1:9092 is down").at("sink `alerts`");
        assert_eq!(e.to_string(), "sink `alerts`: broker 127.0.0.1:9092 is down");
        assert_eq!((e.domain, e.retry), (Domain::External, Retry::Later));
        let e: Error = std::io::Error::other("disk full").into();
        assert_eq!(e.domain, Domain::External);
        assert_eq!(Error::user("bad").retry, Retry::Never);
    }
}
