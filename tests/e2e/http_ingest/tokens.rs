//! Token rotation without a restart (issue 20): `[server] tokens_file` is
//! read again when it changes and on SIGHUP; an unusable file revokes its
//! tokens (fail closed) and every reload is audited.

use super::*;
use sha2::Digest;

const MONITOR_TOKEN: &str = "monitor-token-0123456789";
const OLD_TOKEN: &str = "old-read-token-0123456789";
const NEW_TOKEN: &str = "new-read-token-0123456789";

/// A tokens file's text: `(id, scope, token)`.
fn tokens_file(tokens: &[(&str, &str, &str)]) -> String {
    tokens
        .iter()
        .map(|(id, scope, token)| {
            let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
            format!("[[tokens]]\nid = \"{id}\"\nscopes = [\"{scope}\"]\nsha256 = \"{hash}\"\n\n")
        })
        .collect()
}

/// Replaces `path` as an operator should: a new file renamed over the old.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn tokens_are_added_and_revoked_from_a_file_without_a_restart() {
    let files = scratch();
    let (file, audit) = (files.path().join("tokens.toml"), files.path().join("audit.ndjson"));
    std::fs::write(&file, tokens_file(&[("old-dashboard", "read", OLD_TOKEN)])).unwrap();
    // One token in the pipeline file, fixed for the run, beside the file's.
    let server = format!(
        "audit_log = {}\ntokens_file = {}\n\n[[server.tokens]]\nid = \"monitor\"\nscopes = [\"read\"]\nsha256 = \"{}\"\n",
        toml_path(&audit),
        toml_path(&file),
        hex::encode(sha2::Sha256::digest(MONITOR_TOKEN.as_bytes()))
    );
    let mut h = start(&server, "", &[]);
    let base = format!("http://127.0.0.1:{}", h.port);
    let client = agent(None);
    wait_up(&client, &base);
    let status = |token: &str| send(&client, "GET", &format!("{base}/api/v1/pipelines"), Some(token), b"").0;
    let ready = || send(&client, "GET", &format!("{base}/readyz"), Some(MONITOR_TOKEN), b"");
    assert_eq!(status(OLD_TOKEN), 200);
    assert_eq!(status(NEW_TOKEN), 401);

    // Rotation: the new token in, the old one out.
    let rotated = std::time::Instant::now();
    replace(&file, &tokens_file(&[("dashboard", "read", NEW_TOKEN)]));
    wait_until("the old token is refused", || status(OLD_TOKEN) == 401);
    eprintln!("revoked {:?} after the file was replaced", rotated.elapsed());
    assert_eq!(status(NEW_TOKEN), 200, "the new token is accepted");

    // SIGHUP reads the file again even when it did not change.
    let pid = h.child.0.as_ref().unwrap().id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let reloads = || -> Vec<Value> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["action"] == "tokens-reload")
            .collect()
    };
    wait_until("the SIGHUP reload is audited", || reloads().iter().any(|l| l["trigger"] == "sighup"));
    assert_eq!(status(NEW_TOKEN), 200, "the process lives on after SIGHUP");

    // A broken file revokes what it held and makes the server not ready;
    // the pipeline file's token keeps working.
    replace(&file, "[[tokens]]\nid = \"dashboard\"\nscopes = [\"read\"]\nsha256 = \"not-hex\"\n");
    wait_until("a broken file revokes its tokens", || status(NEW_TOKEN) == 401);
    let (code, _, _, text) = ready();
    assert_eq!((code, text.trim()), (503, "not ready: tokens"));
    assert_eq!(status(MONITOR_TOKEN), 200);

    replace(&file, &tokens_file(&[("dashboard", "read", NEW_TOKEN)]));
    wait_until("the fixed file is used again", || status(NEW_TOKEN) == 200);
    assert_eq!(ready().0, 200);

    let out = sigterm(&mut h.child);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("TOKENS FILE UNUSABLE") && err.contains("tokens.toml:4: tokens[0].sha256: must be 64 hex digits"),
        "the error names the file, line and key:\n{err}"
    );
    for secret in [OLD_TOKEN, NEW_TOKEN, MONITOR_TOKEN] {
        assert!(!err.contains(secret) && !std::fs::read_to_string(&audit).unwrap().contains(secret));
    }
    let summary: Vec<(String, String)> = reloads()
        .iter()
        .map(|l| (l["trigger"].as_str().unwrap().to_string(), l["result"].as_str().unwrap().to_string()))
        .collect();
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(
        summary,
        pairs(&[("file-changed", "ok"), ("sighup", "ok"), ("file-changed", "failed"), ("file-changed", "ok")])
    );
    for l in reloads() {
        assert_eq!(l["token"], "-");
        assert!(l["target"].as_str().unwrap().ends_with("tokens.toml"));
        assert_eq!(l["digest"].as_str().unwrap().len(), 64, "the digest says which contents were read");
    }
}
