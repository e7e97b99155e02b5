//! A real Apache Kafka broker for the tests: `scripts/kafka.sh start`, once
//! per test binary, on a free port (or `$WEIR_TEST_KAFKA`, a broker
//! already running). It dies with the test binary.

use crate::harness::repo;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Bootstrap servers of the test broker, started on first use.
pub fn brokers() -> String {
    shared().0.clone()
}

/// The shared broker's TLS (`SSL`) and `SASL_SSL` (SCRAM-SHA-512) listeners.
pub struct Secure {
    pub ssl: String,
    pub sasl: String,
    /// The CA that signed the broker's certificate (PEM).
    pub ca: PathBuf,
    pub user: &'static str,
    pub password: &'static str,
}

/// The shared broker's secure listeners (not known for `$WEIR_TEST_KAFKA`).
pub fn secure() -> &'static Secure {
    shared().1.as_ref().expect("the TLS and SASL tests need the broker the tests start: unset WEIR_TEST_KAFKA")
}

fn shared() -> &'static (String, Option<Secure>) {
    static BROKER: OnceLock<(String, Option<Secure>)> = OnceLock::new();
    BROKER.get_or_init(start)
}

/// A broker of a test's own, which it may stop and start again (the
/// shared one serves every other test at the same time).
pub struct OwnBroker {
    pub brokers: String,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl OwnBroker {
    /// Formats `dir` and starts a broker there on a free port.
    pub fn start(dir: &std::path::Path) -> OwnBroker {
        let port = free_port();
        let mut b = OwnBroker { brokers: format!("127.0.0.1:{port}"), port, dir: dir.to_path_buf(), child: None };
        b.resume();
        b
    }

    /// Starts the broker again on its folder and port, and waits until it answers.
    pub fn resume(&mut self) {
        std::fs::create_dir_all(&self.dir).expect("broker folder");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("start.log")).expect("log");
        let mut cmd = broker_command(&self.dir, self.port, log);
        self.child = Some(cmd.spawn().expect("scripts/kafka.sh runs"));
        wait_for(&self.brokers, &self.dir);
    }

    /// Stops the broker (SIGTERM, as an operator would) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: a plain signal to our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(60);
            while c.try_wait().expect("wait").is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until the broker at `brokers` answers (two minutes at most).
fn wait_for(brokers: &str, dir: &std::path::Path) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().expect("client");
    let deadline = Instant::now() + Duration::from_secs(120);
    while producer.client().fetch_metadata(None, Duration::from_secs(2)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the Kafka broker did not start in 120 s (needs Java 17 and `scripts/kafka.sh fetch`); see {}/start.log",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn start() -> (String, Option<Secure>) {
    if let Ok(b) = std::env::var("WEIR_TEST_KAFKA") {
        return (b, None);
    }
    let port = free_port();
    let dir = repo().join("target/kafka-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("broker folder");
    let secure = Secure {
        ssl: format!("127.0.0.1:{}", other_port(&[port, port + 1])),
        sasl: String::new(),
        ca: dir.join("ca.pem"),
        user: "weir-test",
        password: "weir-test-scram-secret",
    };
    let secure =
        Secure { sasl: format!("127.0.0.1:{}", other_port(&[port, port + 1, port_of(&secure.ssl)])), ..secure };
    let pem = make_certs(&dir);
    let log = std::fs::File::create(dir.join("start.log")).expect("log file");
    let (tx, rx) = std::sync::mpsc::channel();
    let env = [
        ("KAFKA_SSL_PORT", port_of(&secure.ssl).to_string()),
        ("KAFKA_SASL_PORT", port_of(&secure.sasl).to_string()),
        ("KAFKA_TLS_PEM", pem.display().to_string()),
        ("KAFKA_SCRAM_USER", secure.user.to_string()),
        ("KAFKA_SCRAM_PASSWORD", secure.password.to_string()),
    ];
    // The broker is spawned from a thread that never ends: PR_SET_PDEATHSIG
    // fires when the spawning *thread* exits, and this one lives as long
    // as the test binary.
    std::thread::spawn(move || {
        let mut cmd = broker_command(&dir, port, log);
        cmd.envs(env);
        let child = cmd.spawn();
        let _ = tx.send(child.is_ok());
        if let Ok(mut c) = child {
            let _ = c.wait();
        }
        loop {
            std::thread::park();
        }
    });
    assert!(rx.recv().unwrap_or(false), "cannot run scripts/kafka.sh");
    let brokers = format!("127.0.0.1:{port}");
    wait_for(&brokers, &repo().join("target/kafka-test"));
    (brokers, Some(secure))
}

/// A CA (`ca.pem`) and the broker's key and certificate for 127.0.0.1 and
/// localhost signed by it, in one PEM file (Kafka's PEM keystore), in `dir`.
fn make_certs(dir: &std::path::Path) -> PathBuf {
    crate::harness::make_certs(dir);
    let pem = dir.join("broker.pem");
    let (key, cert) = (std::fs::read_to_string(dir.join("key.pem")), std::fs::read_to_string(dir.join("cert.pem")));
    std::fs::write(&pem, format!("{}{}", key.expect("key.pem"), cert.expect("cert.pem"))).expect("broker.pem");
    pem
}

fn port_of(address: &str) -> u16 {
    address.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("host:port")
}

/// A free port other than `taken`.
fn other_port(taken: &[u16]) -> u16 {
    loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        if !taken.contains(&p) {
            return p;
        }
    }
}

/// `scripts/kafka.sh start <dir>/node <port>`, logging to `log`, killed
/// when the thread that spawns it ends.
fn broker_command(dir: &std::path::Path, port: u16, log: std::fs::File) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/kafka.sh"))
        .args(["start", &dir.join("node").display().to_string(), &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

fn free_port() -> u16 {
    loop {
        let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        // kafka.sh puts the controller on the next port: it must be free too.
        if a < 65535 && std::net::TcpListener::bind(("127.0.0.1", a + 1)).is_ok() {
            return a;
        }
    }
}

/// Creates `topic` with `partitions` partitions.
pub fn create_topic(topic: &str, partitions: i32) {
    create_topic_on(&brokers(), topic, partitions);
}

/// [`create_topic`] on the broker at `brokers`.
pub fn create_topic_on(brokers: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let results = runtime.block_on(admin.create_topics(&[new], &AdminOptions::new())).expect("create topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// Writes `(key, payload)` messages to `topic` and waits for them.
pub fn produce(topic: &str, messages: &[(String, String)]) {
    produce_on(&brokers(), topic, messages);
}

/// [`produce`] to the broker at `brokers`.
pub fn produce_on(brokers: &str, topic: &str, messages: &[(String, String)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for (k, v) in messages {
        loop {
            match producer.send(BaseRecord::to(topic).key(k).payload(v)) {
                Ok(()) => break,
                Err((_, _)) => producer.poll(Duration::from_millis(50)),
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("messages delivered");
}

/// Every message of `topic` a `read_committed` reader sees, by partition in
/// offset order (payloads). Reads until the end of every partition.
pub fn read_committed(topic: &str) -> BTreeMap<i32, Vec<String>> {
    read_committed_on(&brokers(), topic)
}

/// [`read_committed`] from the broker at `brokers`.
pub fn read_committed_on(brokers: &str, topic: &str) -> BTreeMap<i32, Vec<String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("verify-{topic}-{}", std::process::id()))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, rdkafka::Offset::Beginning).expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out: BTreeMap<i32, Vec<String>> = partitions.iter().map(|p| (*p, Vec::new())).collect();
    let mut ended = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended.len() < partitions.len() {
        assert!(Instant::now() < deadline, "reading {topic} did not reach its end");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                ended.remove(&m.partition());
                out.get_mut(&m.partition())
                    .expect("known partition")
                    .push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            _ => {}
        }
    }
    out
}
