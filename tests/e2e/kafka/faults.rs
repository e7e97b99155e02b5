//! Faults injected with librdkafka's mock cluster: the pipeline rides
//! them out and loses nothing (at-least-once: the mock cannot prove more).

use crate::harness::{assert_ok, ndjson, scratch, toml_path, weir};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::Duration;

#[test]
fn a_broker_down_and_failing_requests_lose_nothing() {
    let mock = MockCluster::new(3).expect("mock cluster");
    mock.create_topic("faults-in", 4, 3).expect("topic");
    mock.coordinator(rdkafka::mocking::MockCoordinator::Group("weir-faults".into()), 1).expect("coordinator");
    for broker in 1..=3 {
        mock.broker_round_trip_time(broker, Duration::from_millis(100)).expect("latency");
    }
    // Small record batches over every partition: a fetch returns a whole
    // record batch, so with big ones the pipeline read everything in a
    // second, before the faults below were injected.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("batch.num.messages", "50")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let n = 20_000;
    for i in 0..n {
        let key = format!("k{}", i % 7);
        let payload = format!(r#"{{"id":{i},"k":"{key}"}}"#);
        producer.send(BaseRecord::to("faults-in").key(&key).payload(&payload)).expect("queued");
        if i % 500 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(30)).expect("produced");

    let dir = scratch();
    let out = dir.path().join("out.ndjson");
    let text = format!(
        r#"
[pipeline]
name = "faults"
batch_size = 50

[[sources]]
name = "in"
kind = "kafka"
brokers = "{brokers}"
topic = "faults-in"
stop_at_end = true
properties = {{ "max.partition.fetch.bytes" = "2000" }}

[[sinks]]
name = "out"
kind = "file"
path = {out}

[checkpoint]
dir = {ckpt}
interval = "100ms"
exactly_once = false
"#,
        brokers = mock.bootstrap_servers(),
        out = toml_path(&out),
        ckpt = toml_path(&dir.path().join("ckpt")),
    );
    let pipeline = dir.path().join("faults.toml");
    std::fs::write(&pipeline, text).unwrap();

    let mut child = weir()
        .arg("run")
        .arg(&pipeline)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once events flow: fail some fetches, and take away a broker that
    // leads some of the partitions (not the group's coordinator).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ndjson(&out).is_empty() {
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            child.kill().unwrap();
            panic!("no event came through:\n{}", crate::harness::stderr(&child.wait_with_output().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    mock.request_errors(
        rdkafka::types::RDKafkaApiKey::Fetch,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 5],
    );
    mock.broker_down(2).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    mock.broker_up(2).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_ok(&output);
    // librdkafka usually logs the outage ("Disconnected", "Broker transport
    // failure"), but not always when other tests load the machine (a
    // clean-clone CI run read every event with no such line): shown, not
    // asserted. What must hold is below: every event arrives.
    let log = crate::harness::stderr(&output);
    if !(log.contains("Disconnected") || log.contains("Broker transport failure")) {
        eprintln!("note: the broker's outage was not logged this time");
    }
    let mut ids: Vec<u64> = ndjson(&out).iter().map(|v| v["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, (0..n).collect::<Vec<_>>(), "events were lost");
}
