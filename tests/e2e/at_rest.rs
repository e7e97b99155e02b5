//! Encryption at rest: with `[encryption]`, nothing Weir writes to disk
//! holds an event field in plaintext (checkpoints, window state, the
//! dead-letter output, file sinks); a run killed with SIGKILL resumes from
//! its encrypted checkpoint and writes each result once; a rotated key
//! seals new writes while files sealed with the old one stay readable; and
//! a checkpoint whose key is missing stops the start instead of being
//! skipped.

use crate::harness::{assert_ok, scratch, stderr, toml_path, weir, write_lines};
use crate::live::{Reaper, wait_until};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const K1: &str = "k1 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const K2: &str = "k2 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
const K9: &str = "k9 fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13";
/// `k2` with other key material: a mistyped or regenerated key.
const K2_WRONG: &str = "k2 fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13";

fn hex_of(key: &str) -> &str {
    key.split(' ').nth(1).unwrap()
}

/// Words that appear in the input and must never appear on disk in clear.
const SECRETS: &[&str] = &["PatientName", "Lovelace", "P-0042", "PatientId"];

fn input(dir: &Path) -> PathBuf {
    let path = dir.join("in.ndjson");
    let mut lines = Vec::new();
    for i in 0..600u64 {
        let (id, name) = if i % 2 == 0 { ("P-0042", "Ada Lovelace") } else { ("P-0043", "Grace Hopper") };
        lines.push(format!(
            r#"{{"PatientId":"{id}","PatientName":"{name}","hr":{},"t":{}}}"#,
            60 + i % 50,
            1_000 * i + 1
        ));
        if i % 100 == 50 {
            // Not JSON: dead-lettered with its bytes.
            lines.push(format!(r#"{{"PatientId":"{id}","PatientName":"{name}", broken"#));
        }
    }
    write_lines(&path, lines);
    path
}

/// The pipeline file; `encryption` is its `[encryption]` table (or none),
/// `rate` paces the source.
fn pipeline(dir: &Path, input: &Path, encryption: &str, rate: u64) -> PathBuf {
    let text = format!(
        r#"
[pipeline]
name = "at-rest"
batch_size = 10

[[sources]]
name = "vitals"
kind = "file"
path = {input}
timestamp_field = "t"
rate = {rate}

[[steps]]
name = "per_patient"
query = "SELECT PatientId, PatientName, COUNT(*) AS n, AVG(hr) AS hr FROM vitals GROUP BY PatientId, PatientName, TumblingWindow(second, 20)"

[[sinks]]
name = "out"
kind = "file"
path = {out}

[checkpoint]
dir = {ckpt}
interval = "100ms"

[dead_letter]
path = {dead}

{encryption}
"#,
        input = toml_path(input),
        out = toml_path(&dir.join("out.bin")),
        ckpt = toml_path(&dir.join("ckpt")),
        dead = toml_path(&dir.join("dead.bin")),
    );
    let path = dir.join("p.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn keys_file(dir: &Path, keys: &[&str]) -> String {
    let path = dir.join("weir.keys");
    std::fs::write(&path, keys.join("\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!("[encryption]\nkeys_file = {}\n", toml_path(&path))
}

/// `weir decrypt` of `file` with `keys`: (plaintext, its summary line).
fn decrypt(file: &Path, keys: &[&str]) -> Result<(String, String), String> {
    let out =
        weir().arg("decrypt").arg(file).arg("--keys-env").arg("KEYS").env("KEYS", keys.join(",")).output().unwrap();
    if !out.status.success() {
        return Err(stderr(&out));
    }
    let summary = stderr(&out);
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), summary))
}

/// Every file under `dir` but the input and the keys, read raw.
fn files_at_rest(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                todo.push(path);
            } else if !["in.ndjson", "weir.keys", "p.toml"].contains(&name.as_str()) {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn assert_no_plaintext(dir: &Path) {
    let files = files_at_rest(dir);
    assert!(files.iter().any(|(p, _)| p.extension().is_some_and(|e| e == "ckpt")), "no checkpoint written");
    for (path, bytes) in &files {
        for word in SECRETS {
            let found = bytes.windows(word.len()).any(|w| w == word.as_bytes());
            assert!(!found, "`{word}` in clear in {}", path.display());
        }
    }
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn nothing_on_disk_is_plaintext_and_a_killed_run_with_a_rotated_key_writes_each_result_once() {
    let dir = scratch();
    let input = input(dir.path());

    // A straight run: what the output and the dead letters must hold.
    let p = pipeline(dir.path(), &input, &keys_file(dir.path(), &[K1]), 0);
    let out = weir().arg("run").arg(&p).output().unwrap();
    assert_ok(&out);
    assert_no_plaintext(dir.path());
    let (expected, summary) = decrypt(&dir.path().join("out.bin"), &[K1]).unwrap();
    assert_eq!(expected.lines().count(), 2 * 30, "two patients × 30 windows of 20 s:\n{expected}");
    assert!(expected.contains(r#""PatientName":"Ada Lovelace""#), "{expected}");
    assert!(summary.contains("with key `k1`"), "{summary}");
    let (dead, _) = decrypt(&dir.path().join("dead.bin"), &[K1]).unwrap();
    assert_eq!(dead.lines().count(), 6, "{dead}");
    assert!(
        dead.lines().all(|l| l.contains("invalid-json") && (l.contains("Ada Lovelace") || l.contains("Grace Hopper")))
    );
    let newest = std::fs::read_dir(dir.path().join("ckpt")).unwrap().map(|e| e.unwrap().path()).max().unwrap();
    assert!(std::fs::read(&newest).unwrap().starts_with(b"WEIRCKE1"), "{}", newest.display());
    let (_, summary) = decrypt(&newest, &[K1]).unwrap();
    assert!(summary.contains("one checkpoint"), "{summary}");

    // Again from nothing, paced, killed once the output holds frames and a
    // checkpoint after them was taken.
    for f in ["out.bin", "dead.bin"] {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("ckpt")).unwrap();
    let p = pipeline(dir.path(), &input, &keys_file(dir.path(), &[K1]), 200);
    let mut child = Reaper(Some(weir().arg("run").arg(&p).arg("-q").spawn().unwrap()));
    let epochs = || {
        std::fs::read_dir(dir.path().join("ckpt")).map_or(0, |d| {
            d.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let number = name.strip_prefix("epoch-")?;
                number.strip_suffix(".ckpt").or(number.strip_suffix(".delta"))?.parse().ok()
            })
            .max()
            .unwrap_or(0u64)
        })
    };
    wait_until("output frames", || std::fs::metadata(dir.path().join("out.bin")).is_ok_and(|m| m.len() > 8));
    let seen = epochs();
    wait_until("a checkpoint after them", || epochs() > seen + 1);
    let running = child.0.as_mut().unwrap();
    assert!(running.try_wait().unwrap().is_none(), "the paced run ended before it was killed");
    running.kill().unwrap(); // SIGKILL
    running.wait().unwrap();
    child.0 = None;
    assert_no_plaintext(dir.path());

    // Rotated: k2 seals from now on, k1 still opens what it sealed.
    let p = pipeline(dir.path(), &input, &keys_file(dir.path(), &[K2, K1]), 0);
    let out = weir().arg("run").arg(&p).env("RUST_LOG", "info").output().unwrap();
    assert_ok(&out);
    assert!(stderr(&out).contains("restoring checkpoint"), "{}", stderr(&out));
    assert_no_plaintext(dir.path());
    let (after, summary) = decrypt(&dir.path().join("out.bin"), &[K2, K1]).unwrap();
    assert_eq!(sorted_lines(&after), sorted_lines(&expected), "each result once, none lost");
    assert!(summary.contains("with key `k1`") && summary.contains("with key `k2`"), "{summary}");
    let (dead_after, _) = decrypt(&dir.path().join("dead.bin"), &[K2, K1]).unwrap();
    assert_eq!(dead_after.lines().count(), 6, "{dead_after}");
    let e = decrypt(&dir.path().join("out.bin"), &[K2]).unwrap_err();
    assert!(e.contains("encrypted with key `k1`, which the keyring does not hold"), "{e}");

    // Without the keys, with others, or with another key under the same
    // id, the start stops and names why; it never starts over as if there
    // were no checkpoint, and no key reaches the log.
    let cases: [(&[&str], &str); 3] = [
        (&[], "it is encrypted, and no keys are configured"),
        (&[K9], "encrypted with key `k2`, which the keyring does not hold"),
        (&[K2_WRONG, K1], "encrypted with another key than the keyring's `k2`"),
    ];
    for (keys, why) in cases {
        let encryption = if keys.is_empty() { String::new() } else { keys_file(dir.path(), keys) };
        let p = pipeline(dir.path(), &input, &encryption, 0);
        let out = weir().arg("run").arg(&p).output().unwrap();
        assert!(!out.status.success(), "ran without its key");
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
        for key in [K1, K2, K9] {
            assert!(!stderr(&out).contains(&hex_of(key)[..16]), "a key in the log:\n{}", stderr(&out));
        }
    }
    let (unchanged, _) = decrypt(&dir.path().join("out.bin"), &[K2, K1]).unwrap();
    assert_eq!(unchanged, after, "a refused start leaves the output alone");
}

#[test]
fn keys_are_refused_from_the_pipeline_file_and_from_a_file_others_can_read() {
    let dir = scratch();
    let input = input(dir.path());
    let p = pipeline(dir.path(), &input, &format!("[encryption]\nkey = \"{}\"\n", K1), 0);
    let out = weir().arg("run").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("p.toml:30: encryption.key: keys are never written in the pipeline file"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(&hex_of(K1)[..16]), "the key is repeated in the error");

    let encryption = keys_file(dir.path(), &[K1]);
    std::fs::set_permissions(dir.path().join("weir.keys"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = pipeline(dir.path(), &input, &encryption, 0);
    let out = weir().arg("run").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("by others than its owner (mode 644): `chmod 600` it"), "{}", stderr(&out));

    // A broken entry is named by its number, never shown.
    std::fs::write(dir.path().join("weir.keys"), format!("{K1}\nk2 {}", &K2[3..60])).unwrap();
    std::fs::set_permissions(dir.path().join("weir.keys"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = weir().arg("run").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("entry 2: key `k2` must be 64 hex digits"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&K2[3..30]), "the key is repeated in the error");

    // A key pasted where the variable's name goes is not repeated.
    let pasted = format!("[encryption]\nkeys_env = \"{K1}\"\n");
    let out = weir().arg("run").arg(pipeline(dir.path(), &input, &pasted, 0)).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("must name an environment variable"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&hex_of(K1)[..16]), "the key is repeated in the error");

    // Plaintext from an earlier run is never mixed with encrypted output.
    let p = pipeline(dir.path(), &input, &encryption, 0);
    std::fs::write(dir.path().join("weir.keys"), K1).unwrap();
    std::fs::write(dir.path().join("dead.bin"), "{\"reason\":\"old\"}\n").unwrap();
    let out = weir().arg("run").arg(&p).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds plaintext from an earlier run but is to be encrypted now"),
        "{}",
        stderr(&out)
    );
}

/// Turning encryption on for a pipeline with plaintext checkpoints: they
/// are refused (anyone who can write the folder could have put one there)
/// unless `accept_plaintext_checkpoints` is set for that restart; the run
/// then resumes from them and seals every new checkpoint.
#[test]
fn plaintext_checkpoints_are_restored_only_when_accepted_once() {
    let dir = scratch();
    let input = input(dir.path());
    let plain = weir().arg("run").arg(pipeline(dir.path(), &input, "", 0)).output().unwrap();
    assert_ok(&plain);
    let expected = std::fs::read_to_string(dir.path().join("out.bin")).unwrap();
    for f in ["out.bin", "dead.bin"] {
        std::fs::rename(dir.path().join(f), dir.path().join(format!("{f}.plaintext"))).unwrap();
    }
    let on = keys_file(dir.path(), &[K1]);
    let out = weir().arg("run").arg(pipeline(dir.path(), &input, &on, 0)).output().unwrap();
    assert!(!out.status.success(), "a plaintext checkpoint was restored");
    assert!(stderr(&out).contains("it is not encrypted, and [encryption] is on"), "{}", stderr(&out));

    let once = format!("{on}accept_plaintext_checkpoints = true\n");
    let out = weir().arg("run").arg(pipeline(dir.path(), &input, &once, 0)).env("RUST_LOG", "info").output().unwrap();
    assert_ok(&out);
    assert!(stderr(&out).contains("restoring checkpoint"), "{}", stderr(&out));
    let newest = std::fs::read_dir(dir.path().join("ckpt")).unwrap().map(|e| e.unwrap().path()).max().unwrap();
    assert!(std::fs::read(&newest).unwrap().starts_with(b"WEIRCKE1"), "the new checkpoint is sealed");
    // Resumed at the end of the input: nothing new, nothing repeated.
    let (after, _) = decrypt(&dir.path().join("out.bin"), &[K1]).unwrap_or_default();
    assert_eq!(after, "", "the resumed run wrote results again");
    assert_eq!(expected.lines().count(), 60);
}
