//! `cinema-kafka`: what the host's Kafka clients (the UGC intake, ugc-loader, UGC read
//! models, notify) share.
//!
//! - [`consumer_config`]: one configuration for every consumer group.
//! - [`producer_config`]: one configuration for every producer (idempotent, `acks=all`).
//! - [`create_topics`]: topics made at start when missing (brokers need not auto-create
//!   them).
//! - [`collect_batch`]: the one way a consumer gathers messages into a batch (closed on
//!   time after its first message, or when the caller says it is full).
//! - Membership made visible: which partitions this process holds. With several hosts
//!   in one group (README, "More than one host") the partitions are split between
//!   them and move when a host joins or dies; each rebalance is logged and reported to
//!   an [`AssignmentObserver`] (the host turns it into the
//!   `cinema_kafka_assigned_partitions{group}` gauge).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};

/// The settings every consumer group shares: manual commits after the write, from the
/// earliest offset for a new group, and the fetch tuning of FACTS.md (without
/// `fetch.queue.backoff.ms` librdkafka stalls periodically).
pub fn consumer_config(brokers: &str, group_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("fetch.queue.backoff.ms", "20")
        .set("topic.metadata.refresh.interval.ms", "2000");
    config
}

/// The settings every producer shares: idempotent (no duplicates or reordering when
/// librdkafka retries) and acknowledged by every in-sync replica, so a record once
/// acknowledged is not lost with one broker. A producer that hit a fatal error (fenced
/// after the broker forgot its producer id) never works again: callers make a new one.
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all");
    config
}

/// Why [`create_topics`] did not make every topic.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error("kafka admin client: {0}")]
    Client(KafkaError),
    #[error("kafka did not answer the topic creation: {0}")]
    Unreachable(KafkaError),
    #[error("topic {topic} not created: {code:?}")]
    NotCreated {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Creates each `(name, partitions)` topic that does not exist yet (replication 1, the
/// brokers' default for the rest); one that exists already is fine. Bounded: a broker
/// that vanishes mid-request fails the call within about five seconds.
pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) -> Result<(), TopicsError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(TopicsError::Client)?;
    let topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(5)))
        .request_timeout(Some(Duration::from_secs(5)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(TopicsError::Unreachable)?;
    for result in results {
        if let Err((topic, code)) = result
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(TopicsError::NotCreated { topic, code });
        }
    }
    Ok(())
}

/// Whether a batch takes more messages, as the caller of [`collect_batch`] judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Open,
    Full,
}

/// Waits for a first message as long as it takes, then gathers more into `batch` until
/// `max_wait` after that first one, or until `take` answers [`Fill::Full`]. A failed
/// receive is logged under the consumer's [`GroupContext::who`] and, after a pause,
/// retried while the batch is empty; otherwise it closes the batch, which is then
/// handled before anything else.
pub async fn collect_batch<B: Default>(
    consumer: &GroupConsumer,
    max_wait: Duration,
    mut take: impl FnMut(&mut B, &BorrowedMessage<'_>) -> Fill,
) -> B {
    let mut batch = B::default();
    let mut deadline = None;
    loop {
        let received = match deadline {
            None => consumer.recv().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(received) => received,
                Err(_) => return batch,
            },
        };
        let message = match received {
            Ok(message) => message,
            Err(error) => {
                let who = consumer.context().who;
                tracing::warn!(%error, "{who}: kafka receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                if deadline.is_none() {
                    continue;
                }
                return batch;
            }
        };
        if deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + max_wait);
        }
        if take(&mut batch, &message) == Fill::Full {
            return batch;
        }
    }
}

/// Told the partitions a consumer holds after each rebalance (sorted; empty when they
/// were revoked). A no-op by default.
pub type AssignmentObserver = cinema_worker::Observer<[i32]>;

/// The consumers' context: reports their assignment on every rebalance.
pub struct GroupContext {
    /// Who consumes, for the log (`ugc-loader`, `ugc read models`, `notify`).
    pub who: &'static str,
    pub group: String,
    pub observer: AssignmentObserver,
}

/// A consumer of one of the host's groups.
pub type GroupConsumer = StreamConsumer<GroupContext>;

/// A consumer of `group_id` on `brokers` with [`consumer_config`] plus `extra`
/// settings, reporting its assignment to `observer`; `who` names it in the log.
pub fn group_consumer(
    brokers: &str,
    group_id: &str,
    extra: &[(&str, &str)],
    who: &'static str,
    observer: AssignmentObserver,
) -> Result<GroupConsumer, rdkafka::error::KafkaError> {
    let mut config = consumer_config(brokers, group_id);
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create_with_context(GroupContext {
        who,
        group: group_id.to_owned(),
        observer,
    })
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // The consumers use the eager protocol: an assignment replaces the previous
        // one whole, and a revocation takes everything.
        let mut partitions: Vec<i32> = match rebalance {
            Rebalance::Assign(list) => list.elements().iter().map(|e| e.partition()).collect(),
            Rebalance::Revoke(_) => Vec::new(),
            Rebalance::Error(error) => {
                tracing::warn!(%error, group = %self.group, "{}: rebalance failed", self.who);
                return;
            }
        };
        partitions.sort_unstable();
        tracing::info!(group = %self.group, ?partitions, "{}: partitions assigned", self.who);
        self.observer.tell(&partitions);
    }
}
