//! `cinema-ugc-loader`: Kafka `ugc.events` → ClickHouse `ugc_events` (this module),
//! and → Postgres read models ([`read_model`], its own consumer group).
//!
//! One consumer in a group; batches close on count, bytes or time; a batch is inserted
//! into ClickHouse and only then are its offsets committed. So a crash or a ClickHouse
//! outage never loses an event: uncommitted ones are consumed again, and the table's
//! ReplacingMergeTree folds the repeats by event id. While ClickHouse refuses a batch
//! the loader retries it with backoff and commits nothing. A record holds one request's
//! events ([`cinema_domain::ugc::record`]); what does not decode (a whole record, or
//! one event of it) goes to `ugc.events.dlq` with headers saying why and where it came
//! from (`x-error`, `x-source-topic`, `x-source-partition`, `x-source-offset`, and
//! `x-source-index` for one event of several); dead letters are retried until Kafka
//! acknowledges them, and only then are their offsets committed.
//! On shutdown the batch in hand is finished and committed, then the loader exits.

pub mod read_model;
mod row;

use std::time::Duration;

use cinema_domain::ugc::record;
use cinema_worker::{Backoff, CancellationToken};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

pub use cinema_kafka::AssignmentObserver;
use cinema_kafka::{Fill, GroupConsumer};
pub use row::EventRow;

/// How the loader runs.
#[derive(Debug, Clone)]
pub struct LoaderSettings {
    pub brokers: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub group_id: String,
    pub clickhouse_url: String,
    pub clickhouse_database: String,
    /// A batch closes at this many events ...
    pub max_batch_events: usize,
    /// ... or this many payload bytes ...
    pub max_batch_bytes: usize,
    /// ... or this long after its first event.
    pub max_batch_wait: Duration,
    /// Longest wait between ClickHouse retries.
    pub max_backoff: Duration,
    /// Told the partitions this loader holds after each rebalance.
    pub on_assignment: AssignmentObserver,
}

impl LoaderSettings {
    pub fn new(brokers: impl Into<String>, clickhouse_url: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: cinema_domain::ugc::UGC_EVENTS_TOPIC.into(),
            dead_letter_topic: cinema_domain::ugc::UGC_DEAD_LETTER_TOPIC.into(),
            group_id: "ugc-loader".into(),
            clickhouse_url: clickhouse_url.into(),
            clickhouse_database: "cinema".into(),
            // Large enough that at tens of thousands of events a second batches close
            // on time, not count: ClickHouse wants few, big inserts (each one is a
            // part to merge), and the lag stays under the batch window.
            max_batch_events: 50_000,
            max_batch_bytes: 16 << 20,
            max_batch_wait: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            on_assignment: AssignmentObserver::default(),
        }
    }
}

/// The first wait after a sink (ClickHouse, Postgres, Kafka) refused; it doubles up to
/// the settings' `max_backoff`.
pub(crate) const RETRY_FIRST: Duration = Duration::from_millis(200);

/// Commits offsets after the sink acknowledged. A commit in the normal flow is
/// asynchronous: a synchronous one blocks a runtime worker, and with Kafka down two
/// such commits would stall every task of the host. On shutdown the last commit is
/// synchronous (off the async workers). A lost commit only means redelivery, which
/// the sinks absorb.
pub(crate) fn commit(
    consumer: &GroupConsumer,
    offsets: &TopicPartitionList,
    shutting_down: bool,
    who: &str,
) {
    if offsets.count() == 0 {
        return;
    }
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let result = if shutting_down && multi_thread {
        tokio::task::block_in_place(|| consumer.commit(offsets, CommitMode::Sync))
    } else {
        consumer.commit(offsets, CommitMode::Async)
    };
    if let Err(error) = result {
        tracing::warn!(%error, who, "offset commit failed; the batch will be redelivered");
    }
}

/// What a batch covers: the offset after the last message taken from each partition,
/// the offsets to commit once the batch is stored.
#[derive(Debug, Default)]
pub(crate) struct NextOffsets(Vec<(String, i32, i64)>);

impl NextOffsets {
    /// Notes that everything up to `message` on its partition is in the batch.
    pub(crate) fn note(&mut self, message: &BorrowedMessage<'_>) {
        let (topic, partition, next) = (message.topic(), message.partition(), message.offset() + 1);
        match self
            .0
            .iter_mut()
            .find(|(t, p, _)| *p == partition && t == topic)
        {
            Some((_, _, offset)) => *offset = next,
            None => self.0.push((topic.to_owned(), partition, next)),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The offsets as Kafka takes them for a commit.
    pub(crate) fn to_list(&self) -> Result<TopicPartitionList, rdkafka::error::KafkaError> {
        let mut list = TopicPartitionList::new();
        for (topic, partition, next) in &self.0 {
            list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        Ok(list)
    }
}

/// What stops the loader for good (everything else is retried).
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("kafka consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// One consumed batch: rows to insert, undecodable payloads, and the next offset of
/// every partition it covers.
#[derive(Default)]
struct Batch {
    /// Rows with their events' acceptance time (ms).
    rows: Vec<(EventRow, i64)>,
    dead_letters: Vec<DeadLetter>,
    next_offsets: NextOffsets,
    bytes: usize,
    events: usize,
}

/// A message that did not decode, on its way to the dead-letter topic.
struct DeadLetter {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    error: String,
    topic: String,
    partition: i32,
    offset: i64,
    /// The event's position in the record, when the record held several.
    index: Option<usize>,
}

impl DeadLetter {
    fn headers(&self) -> OwnedHeaders {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "x-error",
                value: Some(self.error.as_str()),
            })
            .insert(Header {
                key: "x-source-topic",
                value: Some(self.topic.as_str()),
            })
            .insert(Header {
                key: "x-source-partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "x-source-offset",
                value: Some(offset.as_str()),
            });
        match self.index {
            Some(index) => headers.insert(Header {
                key: "x-source-index",
                value: Some(index.to_string().as_str()),
            }),
            None => headers,
        }
    }
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.events == 0 && self.next_offsets.is_empty()
    }

    /// Decodes one record into rows; what does not decode becomes a dead letter.
    fn take(&mut self, message: &BorrowedMessage<'_>) {
        let payload = message.payload().unwrap_or_default();
        self.bytes += payload.len();
        self.next_offsets.note(message);
        let decoded = record::decode(payload);
        self.events += decoded.events.len() + decoded.undecodable.len();
        for event in decoded.events {
            match EventRow::try_from(&event) {
                Ok(row) => self.rows.push((row, event.occurred_at_ms)),
                Err(error) => self.dead_letter(
                    message,
                    record::Undecodable {
                        index: None,
                        payload: serde_json::to_vec(&event).unwrap_or_default(),
                        error,
                    },
                ),
            }
        }
        for undecodable in decoded.undecodable {
            self.dead_letter(message, undecodable);
        }
    }

    /// Queues what `message` held but could not be read for the dead-letter topic.
    fn dead_letter(&mut self, message: &BorrowedMessage<'_>, undecodable: record::Undecodable) {
        tracing::warn!(error = %undecodable.error, partition = message.partition(), offset = message.offset(), index = ?undecodable.index, "ugc-loader: undecodable event goes to the dead-letter topic");
        self.dead_letters.push(DeadLetter {
            key: message.key().map(<[u8]>::to_vec),
            payload: undecodable.payload,
            error: undecodable.error,
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            index: undecodable.index,
        });
    }
}

/// Runs until `stop` is cancelled; the batch in hand is loaded and committed first.
pub async fn run(settings: LoaderSettings, stop: CancellationToken) -> Result<(), LoaderError> {
    let consumer = cinema_kafka::group_consumer(
        &settings.brokers,
        &settings.group_id,
        &[],
        "ugc-loader",
        settings.on_assignment.clone(),
    )?;
    consumer.subscribe(&[settings.topic.as_str()])?;
    let mut dead_letters = dead_letter_producer(&settings.brokers)?;
    let clickhouse = clickhouse::Client::default()
        .with_url(&settings.clickhouse_url)
        .with_database(&settings.clickhouse_database)
        .with_validation(false);
    tracing::info!(topic = %settings.topic, group = %settings.group_id, "ugc-loader: consuming");
    loop {
        let batch = tokio::select! {
            batch = collect(&consumer, &settings) => batch,
            () = stop.cancelled() => return Ok(()),
        };
        if batch.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        if !load(&clickhouse, &batch.rows, &settings, &stop).await {
            // Shutdown while ClickHouse refused: nothing committed, redelivered later.
            return Ok(());
        }
        for letter in &batch.dead_letters {
            if !send_dead_letter(&mut dead_letters, letter, &settings, &stop).await {
                // Shutdown before Kafka took it: nothing committed, redelivered later.
                return Ok(());
            }
        }
        commit(
            &consumer,
            &batch.next_offsets.to_list()?,
            stop.is_cancelled(),
            "ugc-loader",
        );
        tracing::debug!(
            events = batch.events,
            rows = batch.rows.len(),
            dead_letters = batch.dead_letters.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "ugc-loader: batch loaded and committed"
        );
        if stop.is_cancelled() {
            return Ok(());
        }
    }
}

/// Gathers a batch of records (see [`cinema_kafka::collect_batch`]) until one of the
/// settings' limits closes it.
async fn collect(consumer: &GroupConsumer, settings: &LoaderSettings) -> Batch {
    cinema_kafka::collect_batch(
        consumer,
        settings.max_batch_wait,
        |batch: &mut Batch, message| {
            batch.take(message);
            if batch.events >= settings.max_batch_events || batch.bytes >= settings.max_batch_bytes
            {
                Fill::Full
            } else {
                Fill::Open
            }
        },
    )
    .await
}

/// Inserts the rows, retrying with backoff until ClickHouse acknowledges; `false` when
/// stopped first.
async fn load(
    clickhouse: &clickhouse::Client,
    rows: &[(EventRow, i64)],
    settings: &LoaderSettings,
    stop: &CancellationToken,
) -> bool {
    let mut backoff = Backoff::new(RETRY_FIRST, settings.max_backoff);
    loop {
        match insert(clickhouse, rows).await {
            Ok(()) => return true,
            Err(error) => {
                tracing::warn!(%error, rows = rows.len(), retry_in_ms = backoff.delay_ms(), "ugc-loader: clickhouse refused the batch; nothing committed");
            }
        }
        if !backoff.wait(stop).await {
            return false;
        }
    }
}

async fn insert(
    clickhouse: &clickhouse::Client,
    rows: &[(EventRow, i64)],
) -> clickhouse::error::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut insert = clickhouse.insert::<EventRow>(row::TABLE).await?;
    for (row, occurred_at_ms) in rows {
        insert
            .write(&row.clone().loaded(*occurred_at_ms, now_ms))
            .await?;
    }
    insert.end().await
}

/// The idempotent producer of dead letters.
fn dead_letter_producer(brokers: &str) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    cinema_kafka::producer_config(brokers).create()
}

/// Produces one dead letter, retrying with backoff until Kafka acknowledges it;
/// `false` when stopped first. A producer that hit a fatal error (an idempotent
/// producer fenced after the broker forgot its id) never works again, so it is
/// replaced before the next attempt.
async fn send_dead_letter(
    producer: &mut FutureProducer,
    letter: &DeadLetter,
    settings: &LoaderSettings,
    stop: &CancellationToken,
) -> bool {
    let mut backoff = Backoff::new(RETRY_FIRST, settings.max_backoff);
    loop {
        let mut record = FutureRecord::<[u8], [u8]>::to(&settings.dead_letter_topic)
            .payload(&letter.payload)
            .headers(letter.headers());
        if let Some(key) = &letter.key {
            record = record.key(key);
        }
        match producer.send(record, Duration::from_secs(10)).await {
            Ok(_) => return true,
            Err((error, _)) => {
                tracing::warn!(%error, topic = %settings.dead_letter_topic, retry_in_ms = backoff.delay_ms(), "ugc-loader: dead letter not acknowledged; nothing committed");
                if let Some((code, reason)) = producer.client().fatal_error() {
                    tracing::warn!(?code, %reason, "ugc-loader: dead-letter producer failed for good; making a new one");
                    match dead_letter_producer(&settings.brokers) {
                        Ok(fresh) => *producer = fresh,
                        Err(error) => {
                            tracing::warn!(%error, "ugc-loader: no new dead-letter producer yet")
                        }
                    }
                }
            }
        }
        if !backoff.wait(stop).await {
            return false;
        }
    }
}
