//! The bearer tokens a server accepts: those of the pipeline file
//! (`[[server.tokens]]`), fixed for the run, and those of `[server]
//! tokens_file`, read again on SIGHUP and whenever the file's contents
//! change (checked every [`POLL`]), so a token is added or revoked within a
//! second without a restart.
//!
//! A tokens file that cannot be read or used revokes every token it held
//! until it is fixed (fail closed): the error names the file and line, the
//! server reports not ready (`/readyz`: `tokens`), and the reload is
//! audited like every other (`tokens-reload`, `ok` or `failed`).

use super::auth::Audit;
use sha2::Digest;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use subtle::ConstantTimeEq;
use weir_config::{Scope, ServerSpec, TokenSpec};
use weir_core::metrics::Health;

/// How often the tokens file is checked for a change (and for SIGHUP).
pub const POLL: Duration = Duration::from_millis(250);

/// Every token the server accepts now.
pub struct Tokens {
    fixed: Vec<TokenSpec>,
    file: Option<TokensFile>,
}

struct TokensFile {
    path: PathBuf,
    tokens: RwLock<Vec<TokenSpec>>,
    /// SHA-256 of the contents last read; `None` when it could not be read.
    seen: Mutex<Option<[u8; 32]>>,
    /// `/readyz`'s `tokens` check: false while the file cannot be used.
    usable: Arc<AtomicBool>,
}

/// Why a reload happened, for the log and the audit line.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    Signal,
    Changed,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Signal => "sighup",
            Trigger::Changed => "file-changed",
        }
    }
}

impl Tokens {
    /// The pipeline file's tokens and, with `tokens_file`, that file's,
    /// read now: a file that cannot be used stops the start.
    pub fn new(spec: &ServerSpec, health: &Health) -> anyhow::Result<Tokens> {
        let file = match &spec.tokens_file {
            Some(path) => {
                // One read: the tokens used and the contents remembered are
                // the same bytes, so a change made meanwhile is seen.
                let bytes = weir_config::read_at_most(path, weir_config::MAX_TOKENS_FILE)
                    .map_err(|e| anyhow::anyhow!("tokens_file `{}`: {e}", path.display()))?;
                let tokens = weir_config::parse_tokens_file(path, &bytes, &spec.tokens)?;
                let usable = health.check("tokens");
                usable.store(true, Ordering::Relaxed);
                let seen = Some(sha2::Sha256::digest(&bytes).into());
                Some(TokensFile { path: path.clone(), tokens: RwLock::new(tokens), seen: Mutex::new(seen), usable })
            }
            None => None,
        };
        Ok(Tokens { fixed: spec.tokens.clone(), file })
    }

    /// Whether requests need a token: tokens are configured (a tokens file
    /// counts even while it holds none, so that emptying it never opens
    /// the server).
    pub fn required(&self) -> bool {
        !self.fixed.is_empty() || self.file.is_some()
    }

    /// The id and scopes of the token whose hash matches `presented`,
    /// comparing every known hash in constant time.
    pub fn find(&self, presented: &str) -> Option<(String, Vec<Scope>)> {
        let hash: [u8; 32] = sha2::Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        let mut look = |tokens: &[TokenSpec]| {
            for t in tokens {
                if bool::from(t.sha256.ct_eq(&hash)) {
                    found = Some((t.id.clone(), t.scopes.clone()));
                }
            }
        };
        look(&self.fixed);
        if let Some(f) = &self.file {
            look(&f.tokens.read().unwrap_or_else(|e| e.into_inner()));
        }
        found
    }

    /// Reads the tokens file again if its contents changed since the last
    /// read (or always, for SIGHUP), and swaps its tokens in; an unusable
    /// file revokes them. Logged and audited.
    pub fn reload(&self, trigger: Trigger, audit: Option<&Audit>) {
        let Some(f) = &self.file else { return };
        let read = weir_config::read_at_most(&f.path, weir_config::MAX_TOKENS_FILE);
        let now: Option<[u8; 32]> = read.as_ref().ok().map(|b| sha2::Sha256::digest(b).into());
        {
            let mut seen = f.seen.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(trigger, Trigger::Changed) && *seen == now {
                return;
            }
            *seen = now;
        }
        let digest = now.map(hex::encode);
        let outcome = match read {
            Ok(bytes) => weir_config::parse_tokens_file(&f.path, &bytes, &self.fixed),
            Err(e) => Err(weir_config::unreadable(&f.path, &e)),
        };
        let result = match outcome {
            Ok(tokens) => {
                let (added, removed) = {
                    let old = f.tokens.read().unwrap_or_else(|e| e.into_inner());
                    changes(&old, &tokens)
                };
                tracing::info!(
                    file = %f.path.display(),
                    trigger = trigger.name(),
                    tokens = tokens.len(),
                    added = %added.join(","),
                    removed_or_changed = %removed.join(","),
                    "tokens reloaded"
                );
                *f.tokens.write().unwrap_or_else(|e| e.into_inner()) = tokens;
                f.usable.store(true, Ordering::Relaxed);
                "ok"
            }
            Err(e) => {
                f.tokens.write().unwrap_or_else(|e| e.into_inner()).clear();
                f.usable.store(false, Ordering::Relaxed);
                tracing::error!(
                    trigger = trigger.name(),
                    "TOKENS FILE UNUSABLE, its tokens are refused until it is fixed: {e}"
                );
                "failed"
            }
        };
        if let Some(audit) = audit
            && let Err(e) = audit.reloaded(&f.path.display().to_string(), digest.as_deref(), result, trigger.name())
        {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }

    /// Whether there is a tokens file to watch.
    pub fn watched(&self) -> bool {
        self.file.is_some()
    }
}

/// Ids added, and ids removed or given another hash or scopes.
fn changes(old: &[TokenSpec], new: &[TokenSpec]) -> (Vec<String>, Vec<String>) {
    let same = |a: &TokenSpec, b: &TokenSpec| a.id == b.id && a.sha256 == b.sha256 && a.scopes == b.scopes;
    let added = new.iter().filter(|n| !old.iter().any(|o| o.id == n.id)).map(|t| t.id.clone()).collect();
    let removed = old.iter().filter(|o| !new.iter().any(|n| same(o, n))).map(|t| t.id.clone()).collect();
    (added, removed)
}

/// Watches the tokens file on the server's runtime: every [`POLL`] it
/// reloads if SIGHUP arrived or the contents changed.
pub async fn watch(tokens: Arc<Tokens>, audit: Option<Arc<Audit>>) {
    if !tokens.watched() {
        return;
    }
    let hangup = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone()) {
        tracing::warn!(error = %e, "SIGHUP cannot be watched; the tokens file is still checked for changes");
    }
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let trigger = if hangup.swap(false, Ordering::Relaxed) { Trigger::Signal } else { Trigger::Changed };
        let (tokens, audit) = (tokens.clone(), audit.clone());
        // The read and the audit line's fsync are blocking work.
        let _ = tokio::task::spawn_blocking(move || tokens.reload(trigger, audit.as_deref())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spec(path: &Path) -> ServerSpec {
        ServerSpec { tokens_file: Some(path.to_path_buf()), ..ServerSpec::default() }
    }

    fn file(tokens: &[(&str, &str, &str)]) -> String {
        tokens
            .iter()
            .map(|(id, scope, token)| {
                let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
                format!("[[tokens]]\nid = \"{id}\"\nscopes = [\"{scope}\"]\nsha256 = \"{hash}\"\n")
            })
            .collect()
    }

    #[test]
    fn tokens_are_found_by_hash() {
        let token = |id: &str, secret: &str| TokenSpec {
            id: id.into(),
            sha256: sha2::Sha256::digest(secret.as_bytes()).into(),
            scopes: vec![Scope::Read],
        };
        let spec = ServerSpec {
            tokens: vec![token("a", "alpha-secret-0001"), token("b", "bravo-secret-0002")],
            ..ServerSpec::default()
        };
        let tokens = Tokens::new(&spec, &Health::default()).unwrap();
        assert_eq!(tokens.find("bravo-secret-0002").map(|t| t.0), Some("b".to_string()));
        assert!(tokens.find("bravo-secret-0003").is_none());
        assert!(tokens.find("").is_none());
        assert!(Tokens::new(&ServerSpec::default(), &Health::default()).is_ok_and(|t| !t.required()));
    }

    #[test]
    fn a_changed_file_adds_and_revokes_and_an_unusable_one_revokes_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, file(&[("a", "read", "token-a-0123456789"), ("b", "admin", "token-b-0123456789")]))
            .unwrap();
        let health = Health::default();
        let tokens = Tokens::new(&spec(&path), &health).unwrap();
        assert!(tokens.required());
        assert_eq!(tokens.find("token-b-0123456789"), Some(("b".into(), vec![Scope::Admin])));
        assert_eq!(tokens.find("token-c-0123456789"), None);

        std::fs::write(&path, file(&[("a", "read", "token-a-0123456789"), ("c", "ingest", "token-c-0123456789")]))
            .unwrap();
        tokens.reload(Trigger::Changed, None);
        assert_eq!(tokens.find("token-b-0123456789"), None, "removed from the file: revoked");
        assert_eq!(tokens.find("token-c-0123456789"), Some(("c".into(), vec![Scope::Ingest])));
        assert!(health.failing().is_empty());

        std::fs::write(&path, "[[tokens]]\nid = \"a\"\nscopes = [\"read\"]\nsha256 = \"nope\"\n").unwrap();
        tokens.reload(Trigger::Changed, None);
        assert_eq!(tokens.find("token-a-0123456789"), None, "an unusable file revokes what it held");
        assert!(tokens.required(), "an empty set never opens the server");
        assert_eq!(health.failing(), vec!["tokens".to_string()]);

        std::fs::remove_file(&path).unwrap();
        tokens.reload(Trigger::Changed, None);
        assert_eq!(tokens.find("token-a-0123456789"), None);

        std::fs::write(&path, file(&[("a", "read", "token-a-0123456789")])).unwrap();
        tokens.reload(Trigger::Changed, None);
        assert_eq!(tokens.find("token-a-0123456789"), Some(("a".into(), vec![Scope::Read])));
        assert!(health.failing().is_empty(), "ready again once the file is fixed");
    }

    #[test]
    fn a_file_may_not_reuse_a_pipeline_token_id_or_name_an_environment_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let fixed = vec![TokenSpec { id: "a".into(), sha256: [0; 32], scopes: vec![Scope::Read] }];
        std::fs::write(&path, file(&[("a", "read", "token-a-0123456789")])).unwrap();
        let e = weir_config::read_tokens_file(&path, &fixed).unwrap_err().to_string();
        assert!(e.contains("tokens.toml:2: tokens[0].id: the id `a` is used twice"), "{e}");
        std::fs::write(&path, "\n[[tokens]]\nid = \"x\"\nscopes = []\nenv = \"HOME\"\n").unwrap();
        let e = weir_config::read_tokens_file(&path, &[]).unwrap_err().to_string();
        assert!(e.contains(":5: tokens[0].env"), "{e}");
        // A syntax error names the line, never repeats it (it may hold a token).
        std::fs::write(&path, "[[tokens]]\nid = \"x\"\ntoken = \"SECRET-pasted-by-mistake\n").unwrap();
        let e = weir_config::read_tokens_file(&path, &[]).unwrap_err().to_string();
        assert!(e.contains("tokens.toml:3: tokens:") && !e.contains("SECRET"), "{e}");
    }
}
