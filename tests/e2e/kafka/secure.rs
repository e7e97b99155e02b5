//! Issue 20: Kafka over TLS and over SASL_SSL (SCRAM-SHA-512), against the
//! real broker's own listeners with a CA made at test time: the
//! exactly-once pipeline through a kill -9, and the password read from a
//! file, never written to the log.

use super::broker::{create_topic, produce, secure};
use super::*;

/// The exactly-once pipeline of [`pipeline_at`] over `brokers` with
/// `properties`, killed (SIGKILL) once while it runs, then run to the end:
/// the read_committed output is exactly once.
fn exactly_once_through_a_kill(base: &str, brokers: &str, properties: &str) -> String {
    let dir = scratch();
    let name = &unique(base);
    create_topic(&format!("{name}-in"), 2);
    let events = vitals(0, 20_000);
    produce(&format!("{name}-in"), &events);
    let p = pipeline_at(dir.path(), name, true, true, 1, brokers, properties);
    let log = dir.path().join("weir.log");
    let mut child = spawn(&p, &log, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("partitions assigned")
        && child.try_wait().unwrap().is_none()
    {
        assert!(std::time::Instant::now() < deadline, "{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL, running or not
    child.wait().unwrap();
    wait_ok(spawn(&p, &log, &[]), &log);
    assert_exact(name, &events);
    std::fs::read_to_string(&log).unwrap()
}

/// SASL_SSL with SCRAM-SHA-512 as the test broker's user, the password
/// read from `password` (a file).
fn sasl_properties(password: &Path) -> String {
    let s = secure();
    format!(
        r#"{{ "security.protocol" = "sasl_ssl", "ssl.ca.location" = {}, "sasl.mechanism" = "SCRAM-SHA-512", "sasl.username" = "{}", "sasl.password" = {{ file = {} }} }}"#,
        toml_path(&s.ca),
        s.user,
        toml_path(password)
    )
}

#[test]
fn exactly_once_over_tls() {
    let s = secure();
    let props = format!(r#"{{ "security.protocol" = "ssl", "ssl.ca.location" = {} }}"#, toml_path(&s.ca));
    exactly_once_through_a_kill("tls", &s.ssl, &props);
}

#[test]
fn exactly_once_over_sasl_scram_with_the_password_from_a_file() {
    let s = secure();
    let dir = scratch();
    let password = dir.path().join("kafka-password");
    std::fs::write(&password, format!("{}\n", s.password)).unwrap();
    let props = sasl_properties(&password);
    let log = exactly_once_through_a_kill("sasl", &s.sasl, &props);
    assert!(!log.contains(s.password), "the password reached the log");
}

/// The SASL listener refuses a wrong password, and the pipeline says so
/// instead of reading anything.
#[test]
fn a_wrong_sasl_password_is_refused() {
    let s = secure();
    let dir = scratch();
    let password = dir.path().join("kafka-password");
    std::fs::write(&password, "not-the-password").unwrap();
    let props = sasl_properties(&password);
    let name = &unique("sasl-wrong");
    create_topic(&format!("{name}-in"), 1);
    let p = pipeline_at(dir.path(), name, true, true, 1, &s.sasl, &props);
    let log = dir.path().join("weir.log");
    let mut child = spawn(&p, &log, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("Authentication failed") {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(std::time::Instant::now() < deadline, "no authentication failure logged:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("not-the-password"), "the password reached the log");
}
