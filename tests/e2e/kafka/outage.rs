//! Issue 19: the broker goes away for 20 s in the middle of an exactly-once
//! Kafka → Kafka run (stopped as an operator would, then started again on
//! the same data): the pipeline waits, says so (metric, readiness), goes on
//! by itself, and the read_committed output holds every event once.

use super::broker::{OwnBroker, create_topic_on, produce_on};
use super::*;
use crate::live::{free_port, get, wait_until};

#[test]
fn a_broker_outage_pauses_the_pipeline_and_loses_and_repeats_nothing() {
    let dir = scratch();
    let node = crate::harness::repo().join("target/kafka-outage");
    let _ = std::fs::remove_dir_all(&node);
    let mut broker = OwnBroker::start(&node);
    let name = &unique("outage");
    create_topic_on(&broker.brokers, &format!("{name}-in"), 2);
    let first = vitals(0, 4_000);
    produce_on(&broker.brokers, &format!("{name}-in"), &first);
    let p = pipeline_at(dir.path(), name, false, true, 1, &broker.brokers, "");
    let log = dir.path().join("weir.log");
    let port = free_port();
    let mut child = spawn(&p, &log, &["--listen", &format!("127.0.0.1:{port}")]);
    let (want_first, _) = expected(&first);
    wait_until("the first events are committed", || outputs_on(&broker.brokers, name).0.len() >= want_first.len());

    broker.stop();
    // Events that were read but not yet committed wait; the pipeline says why.
    let down = |m: &str| m.lines().any(|l| l.starts_with("weir_kafka_connected{") && l.ends_with(" 0"));
    let reported = std::time::Instant::now() + Duration::from_secs(60);
    while !get(port, "/metrics").is_some_and(|(_, m)| down(&m)) {
        assert!(
            std::time::Instant::now() < reported,
            "no client reported the outage:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_until("readiness is withdrawn", || get(port, "/readyz").is_some_and(|(s, _)| s == 503));
    std::thread::sleep(Duration::from_secs(20));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the pipeline exited during the outage:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(get(port, "/healthz").map(|(s, _)| s), Some(200), "alive, though not ready");

    broker.resume();
    let second = vitals(4_000, 8_000);
    produce_on(&broker.brokers, &format!("{name}-in"), &second);
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    let (want_all, _) = expected(&all);
    wait_until("every event is committed after the outage", || {
        outputs_on(&broker.brokers, name).0.len() >= want_all.len()
    });
    wait_until("readiness is back", || get(port, "/readyz").is_some_and(|(s, _)| s == 200));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "{}", std::fs::read_to_string(&log).unwrap());
    let (ids, _) = outputs_on(&broker.brokers, name);
    assert!(ids == want_all, "alerts: {} written, {} expected: some missing or twice", ids.len(), want_all.len());
}
