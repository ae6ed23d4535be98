//! Event intake on the internal port: `POST /intake/ugc` with a [`binary`] events record
//! (`Content-Type: application/vnd.cinema.ugc-events`, what the ugc component sends) or
//! `{"events": [...]}` (events already validated and stamped by the ugc component). A
//! binary record of one user that fits a Kafka record is produced as it came, not
//! encoded again.
//!
//! 202 means durable: every event was acknowledged by Kafka (idempotent producer,
//! `acks=all`, lz4) on topic `ugc.events` keyed by user id, one record per request
//! (see [`cinema_domain::ugc::record`]), or, while Kafka is
//! unreachable, written and fsynced to the local [`spool`]. While anything waits in
//! the spool, new events go to the spool too, so each user's events keep their order;
//! the replayer sends the spool oldest first as soon as Kafka answers again.
//! 503 `intake_unavailable` only when neither Kafka nor the spool took the events.

pub mod spool;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use cinema_domain::error::ErrorBody;
use cinema_domain::ugc::record::{self, binary};
use cinema_domain::ugc::{UgcEvent, dead_letter_topic};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};

use spool::Spool;

/// Partitions of the topics the intake creates.
const TOPIC_PARTITIONS: i32 = 3;

/// How the intake runs.
#[derive(Debug, Clone)]
pub struct IntakeSettings {
    pub brokers: String,
    pub topic: String,
    pub spool_dir: PathBuf,
    /// How long Kafka may take to acknowledge before events go to the spool.
    pub delivery_timeout: Duration,
}

/// The intake: a producer, the spool, and whether Kafka is believed reachable.
pub struct Intake {
    settings: IntakeSettings,
    /// Replaced after a failed replay: an idempotent producer whose broker came back
    /// empty keeps its old producer id and can stall forever.
    producer: std::sync::RwLock<Arc<FutureProducer>>,
    spool: Arc<std::sync::Mutex<Spool>>,
    /// Whether events may wait in the spool: set before every append, cleared by the
    /// replayer once the spool on disk is empty. Read on every request instead of
    /// listing the spool folder.
    spool_holds_events: Arc<AtomicBool>,
    kafka_up: AtomicBool,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("settings", &self.settings)
            .field("spool_holds_events", &self.spool_holds_events)
            .field("kafka_up", &self.kafka_up)
            .finish()
    }
}

/// Why events were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("kafka unreachable and the spool failed: {0}")]
    Spool(std::io::Error),
    #[error("spool task failed: {0}")]
    Task(String),
}

#[derive(Debug, Deserialize)]
struct IntakeRequest {
    events: Vec<UgcEvent>,
}

/// The answer to an accepted request.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub accepted: usize,
    /// True when the events wait in the spool for Kafka.
    pub spooled: bool,
}

impl Intake {
    pub fn new(settings: IntakeSettings) -> anyhow::Result<Arc<Self>> {
        let producer = new_producer(&settings)?;
        let spool = Spool::open(&settings.spool_dir)?;
        let spool_holds_events = Arc::new(AtomicBool::new(!spool.is_empty()?));
        Ok(Arc::new(Self {
            settings,
            producer: std::sync::RwLock::new(Arc::new(producer)),
            spool: Arc::new(std::sync::Mutex::new(spool)),
            spool_holds_events,
            kafka_up: AtomicBool::new(true),
        }))
    }

    async fn with_spool<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Spool) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, IntakeError> {
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || {
            let mut spool = spool.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut spool)
        })
        .await
        .map_err(|e| IntakeError::Task(e.to_string()))?
        .map_err(IntakeError::Spool)
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn renew_producer(&self) {
        match new_producer(&self.settings) {
            Ok(producer) => {
                let old = std::mem::replace(
                    &mut *self.producer.write().unwrap_or_else(|p| p.into_inner()),
                    Arc::new(producer),
                );
                // Dropping a producer flushes it, which blocks: not on an async worker.
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(error) => tracing::warn!(%error, "intake: could not renew the kafka producer"),
        }
    }

    /// Sends the events to Kafka as [`record`]s keyed by user, in order, and waits for
    /// every acknowledgement. A request's events are one user's and usually make one
    /// record; a spool segment's are many users' and make a few records per run of one
    /// user's events.
    async fn produce(&self, events: &[UgcEvent]) -> Result<(), String> {
        let mut records = Vec::new();
        for run in events.chunk_by(|a, b| a.user_id == b.user_id) {
            for payload in
                record::encode(run, record::MAX_RECORD_BYTES).map_err(|e| e.to_string())?
            {
                records.push((run[0].user_id.as_bytes(), payload));
            }
        }
        self.send_records(&records).await
    }

    /// Sends `(key, payload)` records in order and waits for every acknowledgement.
    async fn send_records(&self, records: &[(&[u8], impl AsRef<[u8]>)]) -> Result<(), String> {
        let producer = self.producer();
        let topic = self.settings.topic.as_str();
        let deliveries = records.iter().map(|(key, payload)| {
            let record = FutureRecord::to(topic).key(*key).payload(payload.as_ref());
            producer.send(record, self.settings.delivery_timeout)
        });
        // librdkafka's own message timeout does not always fire (an idempotent producer
        // can wait forever for a producer id from a broker that restarted empty), so
        // the wait is bounded here too.
        let bound = self.settings.delivery_timeout + Duration::from_secs(1);
        let results = tokio::time::timeout(bound, futures::future::join_all(deliveries))
            .await
            .map_err(|_| format!("kafka did not acknowledge within {bound:?}"))?;
        for result in results {
            result.map_err(|(error, _)| error.to_string())?;
        }
        Ok(())
    }

    /// Makes events durable: Kafka when it is up and the spool is empty, else the spool.
    /// `record`, when given, is the events' record already made: one [`record`] of at
    /// most [`record::MAX_RECORD_BYTES`] holding exactly `events`, all of one user. It
    /// is sent as it is, so the events are not encoded again.
    pub async fn accept(
        &self,
        events: Vec<UgcEvent>,
        record: Option<axum::body::Bytes>,
    ) -> Result<Accepted, IntakeError> {
        let accepted = events.len();
        let direct = self.kafka_up.load(Ordering::Relaxed)
            && !self.spool_holds_events.load(Ordering::Acquire);
        if direct {
            let produced = match (&record, events.first()) {
                (Some(record), Some(first)) => {
                    self.send_records(&[(first.user_id.as_bytes(), record)])
                        .await
                }
                _ => self.produce(&events).await,
            };
            match produced {
                Ok(()) => {
                    return Ok(Accepted {
                        accepted,
                        spooled: false,
                    });
                }
                Err(error) => {
                    if self.kafka_up.swap(false, Ordering::Relaxed) {
                        tracing::warn!(%error, "intake: kafka unreachable; spooling events until it answers");
                    }
                }
            }
        }
        // Set before and again under the lock: a replayer that found the spool empty
        // in between cannot leave it cleared while these events wait.
        self.spool_holds_events.store(true, Ordering::Release);
        let spool_holds_events = self.spool_holds_events.clone();
        self.with_spool(move |spool| {
            spool.append(&events)?;
            spool_holds_events.store(true, Ordering::Release);
            Ok(())
        })
        .await?;
        Ok(Accepted {
            accepted,
            spooled: true,
        })
    }

    /// Creates the topics (once Kafka answers) and replays the spool whenever it has
    /// events; runs until `stop` is cancelled.
    pub async fn run_replayer(self: Arc<Self>, stop: cinema_worker::CancellationToken) {
        let mut topics_ready = false;
        let mut last_error = String::new();
        loop {
            if !topics_ready {
                topics_ready = self.ensure_topics().await;
            }
            match self.replay_once().await {
                Ok(()) => last_error.clear(),
                Err(error) => {
                    // Logged when the reason changes, not every half second.
                    if error != last_error {
                        tracing::warn!(%error, "intake: spool replay deferred; retrying every 500 ms");
                        last_error = error;
                    }
                    // A broker that restarted empty has lost the topics and our
                    // producer id too.
                    topics_ready = false;
                    self.renew_producer();
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    async fn ensure_topics(&self) -> bool {
        let dead_letters = dead_letter_topic(&self.settings.topic);
        let topics = [
            (self.settings.topic.as_str(), TOPIC_PARTITIONS),
            (dead_letters.as_str(), 1),
        ];
        match cinema_kafka::create_topics(&self.settings.brokers, &topics).await {
            Ok(()) => true,
            Err(error @ cinema_kafka::TopicsError::NotCreated { .. }) => {
                // Kafka answered: the producer still works if the broker auto-creates.
                tracing::warn!(%error, "intake: topic not created");
                true
            }
            Err(error @ cinema_kafka::TopicsError::Unreachable(_)) => {
                tracing::debug!(%error, "intake: kafka not reachable for topic creation yet");
                false
            }
            Err(error) => {
                tracing::warn!(%error, "intake: topics not created");
                false
            }
        }
    }

    /// Sends sealed spool segments oldest first; stops at the first failure.
    async fn replay_once(&self) -> Result<(), String> {
        // Emptiness is decided under the spool's lock, so an append cannot slip between
        // the check and the flag being cleared.
        let empty = self
            .with_spool({
                let spool_holds_events = self.spool_holds_events.clone();
                move |spool| {
                    let empty = spool.is_empty()?;
                    if empty {
                        spool_holds_events.store(false, Ordering::Release);
                    }
                    Ok(empty)
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        if empty {
            self.kafka_up.store(true, Ordering::Relaxed);
            return Ok(());
        }
        let segments = self
            .with_spool(|spool| spool.seal())
            .await
            .map_err(|e| e.to_string())?;
        for segment in segments {
            let path = segment.clone();
            let events = tokio::task::spawn_blocking(move || spool::read_segment(&path))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            self.produce(&events).await?;
            std::fs::remove_file(&segment).map_err(|e| e.to_string())?;
            tracing::info!(events = events.len(), segment = %segment.display(), "intake: spool segment replayed to kafka");
        }
        Ok(())
    }
}

fn new_producer(settings: &IntakeSettings) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    cinema_kafka::producer_config(&settings.brokers)
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            settings.delivery_timeout.as_millis().to_string(),
        )
        .create()
}

/// Answers of the intake route besides 202.
enum IntakeReply {
    Accepted(Accepted),
    Invalid(String, &'static str),
    Unavailable(IntakeError),
}

impl IntoResponse for IntakeReply {
    fn into_response(self) -> Response {
        match self {
            Self::Accepted(accepted) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
            Self::Invalid(message, field) => (
                StatusCode::BAD_REQUEST,
                Json(ErrorBody::for_field("validation_failed", message, field)),
            )
                .into_response(),
            Self::Unavailable(error) => {
                tracing::error!(%error, "intake: events not accepted");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(ErrorBody::new(
                        "intake_unavailable",
                        "events were not accepted; retry with the same idempotency key",
                    )),
                )
                    .into_response()
            }
        }
    }
}

/// What the intake route needs: the intake, and the keys that verify whose events
/// they are.
#[derive(Clone, Debug)]
pub struct IntakeRoute {
    pub intake: Arc<Intake>,
    pub token_keys: Arc<crate::internal_auth::TokenKeys>,
}

/// An intake request's body, read by its `Content-Type`.
enum IntakeBody {
    /// A [`binary`] record (what the ugc component sends), with its events.
    Binary(Vec<UgcEvent>, axum::body::Bytes),
    /// `{"events": [...]}`.
    Json(Vec<UgcEvent>),
}

/// A body that holds no intake request: the error code and why.
struct BadBody(&'static str, String);

impl IntakeBody {
    /// The events of `body`, or why there are none.
    fn of(headers: &axum::http::HeaderMap, body: axum::body::Bytes) -> Result<Self, BadBody> {
        let binary_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes() == binary::CONTENT_TYPE.as_bytes());
        if binary_type {
            if !binary::is_binary(&body) {
                return Err(BadBody(
                    "invalid_body",
                    format!("a {} body starts with the byte 0xCE", binary::CONTENT_TYPE),
                ));
            }
            let decoded = record::decode(&body);
            if let Some(bad) = decoded.undecodable.first() {
                let at = bad
                    .index
                    .map(|i| format!(" (event {i})"))
                    .unwrap_or_default();
                return Err(BadBody(
                    "invalid_body",
                    format!("the body is not a binary events record{at}: {}", bad.error),
                ));
            }
            return Ok(Self::Binary(decoded.events, body));
        }
        // Decoded once, without the path tracking of axum's `Json` (a component sends
        // this body; a person reading the error is rare, the cost is on every request).
        match serde_json::from_slice::<IntakeRequest>(&body) {
            Ok(request) => Ok(Self::Json(request.events)),
            Err(error) => Err(BadBody(
                "invalid_json",
                format!("the body is not an intake request: {error}"),
            )),
        }
    }
}

/// `POST /intake/ugc`: the events of the user whose access token comes with them
/// (`Authorization: Bearer`); every event's `user_id` is that token's subject, whatever
/// the body said.
async fn intake_ugc(
    State(route): State<IntakeRoute>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let claims = match route.token_keys.verify_bearer(&headers).await {
        Ok(claims) => claims,
        Err(error) => return error.reply(),
    };
    let (mut events, mut record) = match IntakeBody::of(&headers, body) {
        Ok(IntakeBody::Binary(events, record)) => (events, Some(record)),
        Ok(IntakeBody::Json(events)) => (events, None),
        Err(BadBody(code, message)) => {
            return (StatusCode::BAD_REQUEST, Json(ErrorBody::new(code, message))).into_response();
        }
    };
    let binary = record.is_some();
    for event in &mut events {
        // A binary record's ids are 16 bytes: UUIDs by construction.
        let valid = if binary {
            event.payload.validate_values()
        } else {
            event.payload.validate()
        };
        if let Err(error) = valid {
            return IntakeReply::Invalid(error.to_string(), error.field).into_response();
        }
        if event.user_id != claims.sub {
            event.user_id.clone_from(&claims.sub);
            // The record says another user: it is made again from the events.
            record = None;
        }
    }
    let record =
        record.filter(|record| !events.is_empty() && record.len() <= record::MAX_RECORD_BYTES);
    match route.intake.accept(events, record).await {
        Ok(accepted) => IntakeReply::Accepted(accepted),
        Err(error) => IntakeReply::Unavailable(error),
    }
    .into_response()
}

/// The intake route (absent when the host runs without `--kafka-brokers`).
pub fn router(route: Option<IntakeRoute>) -> Router {
    match route {
        Some(route) => Router::new()
            .route("/intake/ugc", post(intake_ugc))
            .with_state(route),
        None => Router::new(),
    }
}
