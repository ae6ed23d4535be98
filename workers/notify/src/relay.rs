//! The outbox relay: events auth and the content database wrote into `platform.outbox`
//! (in the same statement or transaction as the change), and the sender's dead letters,
//! go to their Kafka topic, keyed as written; each row is deleted only
//! after Kafka acknowledged it, so an event is never lost (and, at worst after a crash
//! between the ack and the delete, produced twice: consumers dedup by `event_id`).
//!
//! Wakes on `LISTEN outbox_events` and polls every second besides; Postgres or Kafka
//! away: retries with backoff.

use std::time::Duration;

use cinema_worker::{Backoff, CancellationToken};
use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use crate::NotifySettings;

/// Rows relayed per round.
const BATCH: i64 = 500;
/// Channel the outbox trigger notifies.
const CHANNEL: &str = "outbox_events";

/// A fresh idempotent producer. Each relay session makes its own: an idempotent
/// producer that hit a fatal error (say, fenced after the broker forgot its producer
/// id) never works again, so a failed session must not hand it to the next.
fn new_producer(settings: &NotifySettings) -> Result<FutureProducer, String> {
    cinema_kafka::producer_config(&settings.brokers)
        .set("message.timeout.ms", "10000")
        .create()
        .map_err(|e| format!("kafka producer: {e}"))
}

/// Runs until `stop` is cancelled.
pub async fn run(settings: NotifySettings, stop: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let session = match new_producer(&settings) {
            Ok(producer) => relay_session(&settings, &producer, &stop).await,
            Err(error) => Err(error),
        };
        match session {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.delay_ms(), "notify relay: retrying; outbox events wait in postgres");
            }
        }
        if !backoff.wait(&stop).await {
            return;
        }
    }
}

/// Creates the events topic if it is missing (brokers need not auto-create topics).
async fn ensure_topic(settings: &NotifySettings) -> Result<(), String> {
    let topics = [
        (settings.auth_events_topic.as_str(), 3),
        (settings.catalog_events_topic.as_str(), 3),
        (settings.dead_letter_topic.as_str(), 1),
    ];
    cinema_kafka::create_topics(&settings.brokers, &topics)
        .await
        .map_err(|e| e.to_string())
}

/// One connection's life: relay until stopped (`Ok`) or an error.
async fn relay_session(
    settings: &NotifySettings,
    producer: &FutureProducer,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (client, mut connection) = cinema_postgres::connect(&settings.postgres_url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let wake = std::sync::Arc::new(Notify::new());
    let woken = wake.clone();
    let connection_task = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => woken.notify_one(),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "notify relay: postgres connection ended");
                    return;
                }
            }
        }
    });
    let result = async {
        ensure_topic(settings).await?;
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| format!("listen: {e}"))?;
        loop {
            let relayed = relay_batch(&client, producer, settings).await?;
            if relayed as i64 == BATCH {
                continue;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = stop.cancelled() => return Ok(()),
            }
            if connection_task.is_finished() {
                return Err("postgres connection lost".to_owned());
            }
        }
    }
    .await;
    connection_task.abort();
    result
}

/// Produces the oldest outbox rows and deletes those Kafka acknowledged.
async fn relay_batch(
    client: &tokio_postgres::Client,
    producer: &FutureProducer,
    settings: &NotifySettings,
) -> Result<usize, String> {
    let rows = client
        .query(
            "SELECT id, topic, key, payload::text AS payload FROM platform.outbox \
             ORDER BY created, id LIMIT $1",
            &[&BATCH],
        )
        .await
        .map_err(|e| format!("read the outbox: {e}"))?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut sent = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: uuid::Uuid = row.get("id");
        let topic: String = row.get("topic");
        // Rows carry the default topic names; a deployment may rename them.
        let topic = if topic == cinema_domain::platform::AUTH_EVENTS_TOPIC {
            settings.auth_events_topic.clone()
        } else if topic == cinema_domain::platform::CATALOG_EVENTS_TOPIC {
            settings.catalog_events_topic.clone()
        } else if topic == crate::sender::DEAD_LETTER_OUTBOX_TOPIC {
            settings.dead_letter_topic.clone()
        } else {
            topic
        };
        let key: String = row.get("key");
        let payload: String = row.get("payload");
        let record = FutureRecord::to(&topic).key(&key).payload(&payload);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| format!("produce to {topic}: {e}"))?;
        sent.push(id);
    }
    client
        .execute("DELETE FROM platform.outbox WHERE id = ANY($1)", &[&sent])
        .await
        .map_err(|e| format!("delete relayed outbox rows: {e}"))?;
    tracing::debug!(events = sent.len(), "notify relay: outbox events produced");
    Ok(sent.len())
}
