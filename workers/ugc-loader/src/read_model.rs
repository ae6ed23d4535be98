//! The read-model consumer: Kafka `ugc.events` → Postgres schema `ugc` (latest
//! progress, bookmarks, one rating per user and film, reviews, review likes), in its
//! own consumer group.
//!
//! Each batch is applied in one transaction, then its offsets are committed. Writes
//! are idempotent by construction (see migrations/postgres/0003_ugc.sql): a row only
//! takes an event at least as new as the one that wrote it, reviews insert once, like
//! counts are recounted, so redelivery after a crash changes nothing. Batches are small
//! and close after 100 ms, so a user's own write shows in their reads within a second.
//! Heartbeats of one user and film inside a batch collapse to the latest.

use std::collections::HashMap;
use std::time::Duration;

use cinema_domain::ugc::{UgcEvent, UgcPayload, record};
use cinema_worker::{Backoff, CancellationToken};
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::{LoaderError, NextOffsets};
use cinema_kafka::{AssignmentObserver, Fill, GroupConsumer};

/// How the read-model consumer runs.
#[derive(Debug, Clone)]
pub struct ReadModelSettings {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    pub postgres_url: String,
    pub max_batch_events: usize,
    pub max_batch_wait: Duration,
    pub max_backoff: Duration,
    /// Told the partitions this consumer holds after each rebalance.
    pub on_assignment: AssignmentObserver,
}

impl ReadModelSettings {
    pub fn new(brokers: impl Into<String>, postgres_url: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: cinema_domain::ugc::UGC_EVENTS_TOPIC.into(),
            group_id: "ugc-read-model".into(),
            postgres_url: postgres_url.into(),
            max_batch_events: 2_000,
            max_batch_wait: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            on_assignment: AssignmentObserver::default(),
        }
    }
}

/// Runs until `stop` is cancelled; the batch in hand is applied and committed first.
pub async fn run(settings: ReadModelSettings, stop: CancellationToken) -> Result<(), LoaderError> {
    let consumer = cinema_kafka::group_consumer(
        &settings.brokers,
        &settings.group_id,
        // Reads should follow writes quickly: do not let the broker hold fetches long.
        &[("fetch.wait.max.ms", "100")],
        "ugc read models",
        settings.on_assignment.clone(),
    )?;
    consumer.subscribe(&[settings.topic.as_str()])?;
    tracing::info!(topic = %settings.topic, group = %settings.group_id, "ugc read models: consuming");
    let mut postgres: Option<Client> = None;
    loop {
        let Received {
            events, offsets, ..
        } = tokio::select! {
            batch = collect(&consumer, &settings) => batch,
            () = stop.cancelled() => return Ok(()),
        };
        let mut backoff = Backoff::new(crate::RETRY_FIRST, settings.max_backoff);
        loop {
            match apply(&mut postgres, &settings.postgres_url, &events).await {
                Ok(()) => break,
                Err(error) => {
                    postgres = None;
                    tracing::warn!(%error, events = events.len(), retry_in_ms = backoff.delay_ms(), "ugc read models: postgres refused the batch; nothing committed");
                }
            }
            if !backoff.wait(&stop).await {
                return Ok(());
            }
        }
        crate::commit(
            &consumer,
            &offsets.to_list()?,
            stop.is_cancelled(),
            "ugc read models",
        );
        if stop.is_cancelled() {
            return Ok(());
        }
    }
}

/// Gathers the events of a batch of records (see [`cinema_kafka::collect_batch`]);
/// undecodable ones are the loader's to dead-letter, here they are skipped.
async fn collect(consumer: &GroupConsumer, settings: &ReadModelSettings) -> Received {
    cinema_kafka::collect_batch(
        consumer,
        settings.max_batch_wait,
        |batch: &mut Received, message| {
            batch.offsets.note(message);
            let decoded = record::decode(message.payload().unwrap_or_default());
            batch.received += decoded.events.len() + decoded.undecodable.len();
            batch.events.extend(decoded.events);
            if batch.received >= settings.max_batch_events {
                Fill::Full
            } else {
                Fill::Open
            }
        },
    )
    .await
}

/// A batch of the read models' events and the offsets after them.
#[derive(Default)]
struct Received {
    events: Vec<UgcEvent>,
    offsets: NextOffsets,
    /// Events received, the undecodable ones too.
    received: usize,
}

/// An event's id as a `Uuid`: by fixed positions for the canonical text that decoded
/// records always carry, by the general parser for anything else.
fn id(value: &str) -> Option<Uuid> {
    cinema_domain::ugc::canonical_uuid_bytes(value)
        .map(Uuid::from_bytes)
        .or_else(|| Uuid::parse_str(value).ok())
}

/// Applies a batch in one transaction (connecting first when needed).
async fn apply(
    postgres: &mut Option<Client>,
    url: &str,
    events: &[UgcEvent],
) -> Result<(), tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(());
    }
    if postgres.is_none() {
        let (client, connection) = cinema_postgres::connect(url).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "ugc read models: postgres connection ended");
            }
        });
        *postgres = Some(client);
    }
    let Some(client) = postgres.as_mut() else {
        return Ok(());
    };
    let transaction = client.transaction().await?;
    upsert_progress(&transaction, &LatestProgress::of(events)).await?;
    for event in events {
        if !matches!(event.payload, UgcPayload::ViewProgress { .. }) {
            apply_one(&transaction, event).await?;
        }
    }
    transaction.commit().await
}

/// The newest heartbeat of each user and film in a batch (the only one that matters),
/// as the columns of `ugc.progress`.
#[derive(Debug, Default, PartialEq)]
struct LatestProgress {
    users: Vec<Uuid>,
    films: Vec<Uuid>,
    positions_s: Vec<i32>,
    durations_s: Vec<i32>,
    occurred_at_s: Vec<f64>,
}

impl LatestProgress {
    /// Of two heartbeats of one user and film, the later wins, and on a tie the one
    /// that came later in the batch. Heartbeats without valid ids are skipped.
    fn of(events: &[UgcEvent]) -> Self {
        // (user, film) -> (occurred_at_ms, position_s, duration_s)
        let mut latest: HashMap<(Uuid, Uuid), (i64, u32, u32)> = HashMap::new();
        for event in events {
            if let UgcPayload::ViewProgress {
                film_id,
                position_s,
                duration_s,
            } = &event.payload
                && let (Some(user), Some(film)) = (id(&event.user_id), id(film_id))
            {
                let heartbeat = (event.occurred_at_ms, *position_s, *duration_s);
                let slot = latest.entry((user, film)).or_insert(heartbeat);
                if slot.0 <= heartbeat.0 {
                    *slot = heartbeat;
                }
            }
        }
        let mut columns = Self::default();
        for ((user, film), (occurred_at_ms, position_s, duration_s)) in latest {
            columns.users.push(user);
            columns.films.push(film);
            columns.positions_s.push(position_s as i32);
            columns.durations_s.push(duration_s as i32);
            columns.occurred_at_s.push(occurred_at_ms as f64 / 1000.0);
        }
        columns
    }
}

/// Upserts a batch's heartbeats in one statement (one round trip for thousands of
/// rows instead of one each); a row only takes a heartbeat at least as new as its own.
async fn upsert_progress(
    db: &tokio_postgres::Transaction<'_>,
    progress: &LatestProgress,
) -> Result<(), tokio_postgres::Error> {
    if progress.users.is_empty() {
        return Ok(());
    }
    db.execute(
        "INSERT INTO ugc.progress (user_id, film_id, position_s, duration_s, occurred_at)
         SELECT user_id, film_id, position_s, duration_s, to_timestamp(at)
         FROM unnest($1::uuid[], $2::uuid[], $3::int4[], $4::int4[], $5::float8[])
              AS heartbeat(user_id, film_id, position_s, duration_s, at)
         ON CONFLICT (user_id, film_id) DO UPDATE
         SET position_s = EXCLUDED.position_s, duration_s = EXCLUDED.duration_s,
             occurred_at = EXCLUDED.occurred_at
         WHERE ugc.progress.occurred_at <= EXCLUDED.occurred_at",
        &[
            &progress.users,
            &progress.films,
            &progress.positions_s,
            &progress.durations_s,
            &progress.occurred_at_s,
        ],
    )
    .await?;
    Ok(())
}

async fn apply_one(
    db: &tokio_postgres::Transaction<'_>,
    event: &UgcEvent,
) -> Result<(), tokio_postgres::Error> {
    let Some(user) = id(&event.user_id) else {
        return Ok(());
    };
    let at = event.occurred_at_ms as f64 / 1000.0;
    let film = event.payload.film_id().and_then(id);
    match (&event.payload, film) {
        (UgcPayload::BookmarkSet { .. } | UgcPayload::BookmarkRemoved { .. }, Some(film)) => {
            let active = matches!(event.payload, UgcPayload::BookmarkSet { .. });
            db.execute(
                "INSERT INTO ugc.bookmarks (user_id, film_id, occurred_at, active)
                 VALUES ($1, $2, to_timestamp($3), $4)
                 ON CONFLICT (user_id, film_id) DO UPDATE
                 SET occurred_at = EXCLUDED.occurred_at, active = EXCLUDED.active
                 WHERE ugc.bookmarks.occurred_at <= EXCLUDED.occurred_at",
                &[&user, &film, &at, &active],
            )
            .await?;
        }
        (UgcPayload::RatingSet { .. } | UgcPayload::RatingRemoved { .. }, Some(film)) => {
            let score: Option<i16> = match &event.payload {
                UgcPayload::RatingSet { score, .. } => Some(i16::from(*score)),
                _ => None,
            };
            db.execute(
                "INSERT INTO ugc.ratings (user_id, film_id, score, occurred_at)
                 VALUES ($1, $2, $3, to_timestamp($4))
                 ON CONFLICT (user_id, film_id) DO UPDATE
                 SET score = EXCLUDED.score, occurred_at = EXCLUDED.occurred_at
                 WHERE ugc.ratings.occurred_at <= EXCLUDED.occurred_at",
                &[&user, &film, &score, &at],
            )
            .await?;
        }
        (
            UgcPayload::ReviewPosted {
                review_id, text, ..
            },
            Some(film),
        ) => {
            if let Some(review) = id(review_id) {
                db.execute(
                    "INSERT INTO ugc.reviews (id, film_id, user_id, text, created)
                     VALUES ($1, $2, $3, $4, to_timestamp($5)) ON CONFLICT (id) DO NOTHING",
                    &[&review, &film, &user, text, &at],
                )
                .await?;
                // Likes are keyed by their author, so they may arrive (from another
                // partition) before the review they like.
                recount_likes(db, review).await?;
            }
        }
        (UgcPayload::ReviewDeleted { review_id }, _) => {
            if let Some(review) = id(review_id) {
                // Only the author's deletion counts.
                db.execute(
                    "UPDATE ugc.reviews SET deleted = true WHERE id = $1 AND user_id = $2",
                    &[&review, &user],
                )
                .await?;
            }
        }
        (
            UgcPayload::ReviewLikeSet { review_id, .. }
            | UgcPayload::ReviewLikeRemoved { review_id },
            _,
        ) => {
            let Some(review) = id(review_id) else {
                return Ok(());
            };
            let value: Option<i16> = match &event.payload {
                UgcPayload::ReviewLikeSet { value, .. } => Some(i16::from(*value)),
                _ => None,
            };
            db.execute(
                "INSERT INTO ugc.review_likes (review_id, user_id, value, occurred_at)
                 VALUES ($1, $2, $3, to_timestamp($4))
                 ON CONFLICT (review_id, user_id) DO UPDATE
                 SET value = EXCLUDED.value, occurred_at = EXCLUDED.occurred_at
                 WHERE ugc.review_likes.occurred_at <= EXCLUDED.occurred_at",
                &[&review, &user, &value, &at],
            )
            .await?;
            recount_likes(db, review).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Sets a review's like and dislike counts from its likes.
async fn recount_likes(
    db: &tokio_postgres::Transaction<'_>,
    review: Uuid,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE ugc.reviews SET
            likes = (SELECT count(*) FROM ugc.review_likes WHERE review_id = $1 AND value = 1),
            dislikes = (SELECT count(*) FROM ugc.review_likes WHERE review_id = $1 AND value = -1)
         WHERE id = $1",
        &[&review],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "10000000-0000-4000-8000-000000000001";
    const FILM: &str = "30000000-0000-4000-8000-000000000001";
    const OTHER_FILM: &str = "30000000-0000-4000-8000-000000000002";

    fn heartbeat(film: &str, position_s: u32, occurred_at_ms: i64) -> UgcEvent {
        UgcEvent {
            event_id: format!("{film}-{position_s}"),
            user_id: USER.into(),
            occurred_at_ms,
            payload: UgcPayload::ViewProgress {
                film_id: film.into(),
                position_s,
                duration_s: 5400,
            },
        }
    }

    /// One row per user and film: the newest heartbeat, the later one in the batch on a
    /// tie; other events and heartbeats with ids that are not UUIDs add no row.
    #[test]
    fn a_batch_keeps_the_newest_heartbeat_of_each_user_and_film() {
        let events = [
            heartbeat(FILM, 10, 2_000),
            heartbeat(FILM, 30, 3_000),
            heartbeat(FILM, 20, 1_000),
            heartbeat(OTHER_FILM, 1, 5_000),
            heartbeat(OTHER_FILM, 2, 5_000),
            heartbeat("not-a-uuid", 99, 9_000),
            UgcEvent {
                payload: UgcPayload::BookmarkSet {
                    film_id: FILM.into(),
                },
                ..heartbeat(FILM, 0, 9_000)
            },
        ];
        let progress = LatestProgress::of(&events);
        let mut rows: Vec<_> = (0..progress.users.len())
            .map(|i| {
                (
                    progress.films[i].to_string(),
                    progress.positions_s[i],
                    progress.occurred_at_s[i],
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            rows,
            [(FILM.to_owned(), 30, 3.0), (OTHER_FILM.to_owned(), 2, 5.0)]
        );
        assert!(progress.users.iter().all(|u| u.to_string() == USER));
        assert_eq!(progress.durations_s, [5400, 5400]);
    }
}
