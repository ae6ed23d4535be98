//! A Kafka-protocol broker of one test's own (tansu, installed by
//! `scripts/services.sh`), so stopping it disturbs no other test.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;

/// A broker of this test's own (tansu on a free port), so stopping it disturbs no
/// other test. tansu keeps everything in memory: a stopped broker forgets its topics,
/// messages and groups. To take Kafka away without that, put it behind a
/// [`super::CuttableProxy`] it advertises ([`PrivateKafka::start_advertising_on`]).
pub struct PrivateKafka {
    pub port: u16,
    /// The port clients are told to use (the broker's own unless a proxy fronts it).
    advertised_port: u16,
    child: Option<Child>,
}

impl PrivateKafka {
    pub fn start() -> Self {
        let port = free_port();
        Self::start_advertising_on(port, port)
    }

    /// A broker listening on `port` that tells clients to reach it at
    /// `advertised_port` (a proxy in front of it).
    pub fn start_advertising_on(port: u16, advertised_port: u16) -> Self {
        let mut kafka = Self {
            port,
            advertised_port,
            child: None,
        };
        kafka.restart();
        kafka
    }

    pub fn restart(&mut self) {
        let tools =
            std::env::var("CINEMA_TOOLS_DIR").unwrap_or_else(|_| "/var/tmp/cinema-tools".into());
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised_port);
        let child = Command::new(format!("{tools}/bin/tansu"))
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu (run `scripts/services.sh up` to install it)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tansu did not listen on {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The bootstrap address clients use (the advertised one).
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.advertised_port)
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A consumer of `topic` in a group of its own (named after `purpose`), reading from the
/// topic's start and polling the broker every 20 ms; `extra` sets more of its config
/// (such as `enable.partition.eof`).
pub fn reader(
    brokers: &str,
    purpose: &str,
    topic: &str,
    extra: &[(&str, &str)],
) -> rdkafka::consumer::StreamConsumer {
    use rdkafka::consumer::Consumer;

    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", super::unique(purpose))
        .set("auto.offset.reset", "earliest")
        .set("fetch.queue.backoff.ms", "20");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    let consumer: rdkafka::consumer::StreamConsumer = config.create().expect("a Kafka consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}
