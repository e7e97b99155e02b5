//! `[server]` checked in context: TLS files, tokens (hashed here; the file
//! never holds one) and their scopes, and the tokens file read again while
//! the server runs ([`read_tokens_file`]).

use super::load::{ConfigError, Locator, SourceText, read_at_most};
use super::types::{ServerSection, TokenConfig, TokensFile};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The server's security settings.
#[derive(Debug, Clone, Default)]
pub struct ServerSpec {
    /// (certificate, key) PEM files: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub allow_plaintext: bool,
    pub metrics_public: bool,
    pub audit_log: Option<PathBuf>,
    /// `[[server.tokens]]`: fixed for the run.
    pub tokens: Vec<TokenSpec>,
    /// `tokens_file`: read again on SIGHUP and when it changes.
    pub tokens_file: Option<PathBuf>,
    /// `max_connections`, `header_timeout`, `body_timeout`.
    pub limits: HttpLimits,
}

/// What one HTTP client can hold: see docs/limits.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// Denied admin requests the audit log writes: per second, at once.
    pub audit_denials: (u32, u32),
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            audit_denials: (1, 20),
        }
    }
}

/// A bearer token: its id, the SHA-256 of its value, and its scopes.
#[derive(Clone)]
pub struct TokenSpec {
    pub id: String,
    pub sha256: [u8; 32],
    pub scopes: Vec<Scope>,
}

impl std::fmt::Debug for TokenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSpec").field("id", &self.id).field("scopes", &self.scopes).finish_non_exhaustive()
    }
}

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `POST /api/v1/ingest/<source>`.
    Ingest,
    /// `/metrics`, `/readyz`, `GET /api/v1/...`.
    Read,
    /// Uploads and rollbacks.
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

pub(super) fn server(s: &ServerSection, at: &Locator) -> Result<ServerSpec, ConfigError> {
    let tls = match &s.tls {
        Some(t) => {
            for (field, path) in [("cert", &t.cert), ("key", &t.key)] {
                if !path.get_ref().is_file() {
                    return Err(at.error(
                        Some(path.span()),
                        format!("server.tls.{field}"),
                        format!("file `{}` not found", path.get_ref().display()),
                    ));
                }
            }
            Some((t.cert.get_ref().clone(), t.key.get_ref().clone()))
        }
        None => None,
    };
    let tokens = token_list(&s.tokens, "server.tokens", &[], true, at)?;
    let tokens_file = match &s.tokens_file {
        Some(path) => {
            // Read now so that a bad file stops the start, naming its line;
            // the server reads it again when it starts serving.
            let bytes = read_at_most(path.get_ref(), MAX_TOKENS_FILE).map_err(|e| {
                at.error(
                    Some(path.span()),
                    "server.tokens_file",
                    format!("cannot read `{}`: {e}", path.get_ref().display()),
                )
            })?;
            parse_tokens_file(path.get_ref(), &bytes, &tokens)?;
            Some(path.get_ref().clone())
        }
        None => None,
    };
    Ok(ServerSpec {
        tls,
        allow_plaintext: s.allow_plaintext,
        metrics_public: s.metrics_public,
        audit_log: s.audit_log.clone(),
        tokens,
        tokens_file,
        limits: http_limits(s, at)?,
    })
}

/// Largest tokens file read.
pub const MAX_TOKENS_FILE: u64 = 1 << 20;

/// Reads and checks a tokens file (`[server] tokens_file`): its tokens, or
/// an error naming the file and line. `fixed` are the pipeline file's
/// tokens, whose ids the file may not reuse.
pub fn read_tokens_file(path: &Path, fixed: &[TokenSpec]) -> Result<Vec<TokenSpec>, ConfigError> {
    let bytes = read_at_most(path, MAX_TOKENS_FILE).map_err(|e| unreadable(path, &e))?;
    parse_tokens_file(path, &bytes, fixed)
}

/// A tokens file that cannot be read.
pub fn unreadable(path: &Path, e: &std::io::Error) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line: None,
        key: "tokens".into(),
        message: format!("cannot read the file: {e}"),
    }
}

/// Checks a tokens file's contents, as [`read_tokens_file`]. A syntax error
/// names the line and column but never repeats the line (it may hold a
/// token pasted by mistake).
pub fn parse_tokens_file(path: &Path, bytes: &[u8], fixed: &[TokenSpec]) -> Result<Vec<TokenSpec>, ConfigError> {
    let invalid = |line: Option<usize>, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        key: "tokens".into(),
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid(None, "the file is not UTF-8".into()))?;
    let at = SourceText { path: path.to_path_buf(), text: text.into() };
    let file: TokensFile = toml::from_str(text)
        .map_err(|e| invalid(e.span().map(|s| at.line_of(s)), e.message().trim_end().to_string()))?;
    token_list(&file.tokens, "tokens", fixed, false, &at)
}

/// Hashes and checks `[[<prefix>]]` token tables; ids must differ from
/// each other and from `taken`'s.
fn token_list(
    list: &[TokenConfig],
    prefix: &str,
    taken: &[TokenSpec],
    allow_env: bool,
    at: &Locator,
) -> Result<Vec<TokenSpec>, ConfigError> {
    let mut tokens: Vec<TokenSpec> = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let key = |field: &str| format!("{prefix}[{i}].{field}");
        if tokens.iter().chain(taken).any(|o| o.id == *t.id.get_ref()) {
            return Err(at.error(Some(t.id.span()), key("id"), format!("the id `{}` is used twice", t.id.get_ref())));
        }
        let sha256 = match (&t.sha256, &t.env) {
            (Some(h), None) => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(h.get_ref().trim(), &mut out).map_err(|_| {
                    at.error(Some(h.span()), key("sha256"), "must be 64 hex digits (the token's SHA-256)")
                })?;
                out
            }
            (None, Some(var)) if !allow_env => {
                return Err(at.error(
                    Some(var.span()),
                    key("env"),
                    "a tokens file gives `sha256`: an environment variable is read once, at start",
                ));
            }
            (None, Some(var)) => {
                let token = std::env::var(var.get_ref()).map_err(|_| {
                    at.error(
                        Some(var.span()),
                        key("env"),
                        format!("environment variable `{}` is not set", var.get_ref()),
                    )
                })?;
                if token.len() < 16 {
                    return Err(at.error(
                        Some(var.span()),
                        key("env"),
                        format!("the token in `{}` is shorter than 16 characters", var.get_ref()),
                    ));
                }
                use sha2::Digest;
                sha2::Sha256::digest(token.as_bytes()).into()
            }
            _ => return Err(at.error(Some(t.id.span()), key("sha256"), "give exactly one of `sha256` and `env`")),
        };
        let mut scopes = Vec::new();
        for scope in &t.scopes {
            scopes.push(match scope.get_ref().as_str() {
                "ingest" => Scope::Ingest,
                "read" => Scope::Read,
                "admin" => Scope::Admin,
                other => {
                    return Err(at.error(
                        Some(scope.span()),
                        key("scopes"),
                        format!("unknown scope `{other}` (scopes: ingest, read, admin)"),
                    ));
                }
            });
        }
        tokens.push(TokenSpec { id: t.id.get_ref().clone(), sha256, scopes });
    }
    Ok(tokens)
}

fn http_limits(s: &ServerSection, at: &Locator) -> Result<HttpLimits, ConfigError> {
    let d = HttpLimits::default();
    let limits = HttpLimits {
        max_connections: s.max_connections.unwrap_or(d.max_connections),
        header_timeout: s.header_timeout.unwrap_or(d.header_timeout),
        body_timeout: s.body_timeout.unwrap_or(d.body_timeout),
        audit_denials: (
            s.audit_denials_per_second.unwrap_or(d.audit_denials.0),
            s.audit_denials_burst.unwrap_or(d.audit_denials.1),
        ),
    };
    if !(1..=1_000_000).contains(&limits.max_connections) {
        return Err(at.error(None, "server.max_connections", "must be between 1 and 1000000"));
    }
    for (key, d) in [("server.header_timeout", limits.header_timeout), ("server.body_timeout", limits.body_timeout)] {
        if d.is_zero() || d > Duration::from_secs(3600) {
            return Err(at.error(None, key, "must be more than zero and at most 1h"));
        }
    }
    Ok(limits)
}
