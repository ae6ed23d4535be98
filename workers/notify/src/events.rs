//! Events → deliveries: consumes the account and catalog events topics in a group and,
//! for each event, writes the mails it causes into `notify.deliveries`, keyed by (event
//! id, user, template), before committing the offsets. A redelivered event (after a
//! crash, a rebalance, the relay producing twice) finds its keys taken and writes
//! nothing, so nothing is sent twice.
//!
//! - `user.registered` → `welcome` with an email-confirmation link; the link's token
//!   (256 random bits) is stored hashed in `auth.email_confirmations` in the same
//!   statement, only when the delivery is new.
//! - `email.change_requested` → `email_change` to the new address with a confirmation
//!   link, whose token is stored hashed with the address it moves the account from
//!   (`previous_email`) in the same statement, only when the delivery is new; and a
//!   `security` notice to the current address, so its owner learns of a change they did
//!   not ask for.
//! - `password.changed`, `user.blocked` → `security` notices.
//! - `film.published` → a row of `notify.published_films` (keyed by film), which
//!   [`crate::digest`] turns into suggestions after the digest delay.
//!
//! Undecodable messages are logged and skipped (their offsets committed).

use std::time::Duration;

use base64::Engine;
use cinema_domain::platform::{PlatformEvent, PlatformEventKind};
use cinema_worker::{Backoff, CancellationToken};
use rand_core::RngCore;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer};
use sha2::{Digest, Sha256};

use crate::NotifySettings;

/// Runs until `stop` is cancelled.
pub async fn run(settings: NotifySettings, stop: CancellationToken) {
    let consumer = match cinema_kafka::group_consumer(
        &settings.brokers,
        &settings.group_id,
        &[],
        "notify",
        settings.on_assignment.clone(),
    ) {
        Ok(consumer) => consumer,
        Err(error) => {
            tracing::error!(%error, "notify: kafka consumer; events wait in kafka");
            return;
        }
    };
    let topics = [
        settings.auth_events_topic.as_str(),
        settings.catalog_events_topic.as_str(),
    ];
    if let Err(error) = consumer.subscribe(&topics) {
        tracing::error!(%error, "notify: subscribe");
        return;
    }
    let mut postgres: Option<tokio_postgres::Client> = None;
    loop {
        let message = tokio::select! {
            message = consumer.recv() => message,
            () = stop.cancelled() => return,
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "notify: kafka receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let payload = message.payload().unwrap_or_default();
        let event = match serde_json::from_slice::<PlatformEvent>(payload) {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::warn!(%error, offset = message.offset(), "notify: undecodable event skipped");
                None
            }
        };
        // Record the deliveries, retrying until Postgres takes them (or a stop).
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while let Some(event) = &event {
            match record(&mut postgres, &settings, event).await {
                Ok(()) => break,
                Err(error) => {
                    postgres = None;
                    tracing::warn!(%error, retry_in_ms = backoff.delay_ms(), "notify: deliveries not recorded; nothing committed");
                    if !backoff.wait(&stop).await {
                        return;
                    }
                }
            }
        }
        if let Err(error) = consumer.commit_message(&message, CommitMode::Async) {
            tracing::warn!(%error, "notify: offset commit failed; the event will be redelivered (and dedup'd)");
        }
    }
}

/// A fresh confirmation token and its SHA-256.
fn confirmation_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    (token, hash)
}

async fn record(
    postgres: &mut Option<tokio_postgres::Client>,
    settings: &NotifySettings,
    event: &PlatformEvent,
) -> Result<(), tokio_postgres::Error> {
    let client = crate::connected(postgres, &settings.postgres_url, "events").await?;
    let event_id = uuid::Uuid::parse_str(&event.event_id).unwrap_or_else(|_| uuid::Uuid::new_v4());
    match &event.kind {
        PlatformEventKind::UserRegistered {
            user_id,
            email,
            locale,
            first_name,
            email_confirmed,
        } => {
            let Ok(user) = uuid::Uuid::parse_str(user_id) else {
                return Ok(());
            };
            let context = serde_json::json!({ "first_name": first_name });
            if *email_confirmed {
                return add_delivery(client, event_id, user, "welcome", email, locale, &context)
                    .await;
            }
            add_confirming_delivery(
                client, settings, event_id, user, "welcome", email, locale, context, None,
            )
            .await?;
        }
        PlatformEventKind::EmailChangeRequested {
            user_id,
            email,
            locale,
            new_email,
        } => {
            let Ok(user) = uuid::Uuid::parse_str(user_id) else {
                return Ok(());
            };
            let context = serde_json::json!({ "new_email": new_email });
            add_confirming_delivery(
                client,
                settings,
                event_id,
                user,
                "email_change",
                new_email,
                locale,
                context,
                Some(email.as_str()),
            )
            .await?;
            let notice = serde_json::json!({
                "reason": "email_change_requested",
                "email": email,
                "new_email": new_email,
            });
            add_delivery(client, event_id, user, "security", email, locale, &notice).await?;
        }
        PlatformEventKind::PasswordChanged {
            user_id,
            email,
            locale,
        }
        | PlatformEventKind::UserBlocked {
            user_id,
            email,
            locale,
        } => {
            let Ok(user) = uuid::Uuid::parse_str(user_id) else {
                return Ok(());
            };
            let reason = match &event.kind {
                PlatformEventKind::PasswordChanged { .. } => "password_changed",
                _ => "blocked",
            };
            let context = serde_json::json!({ "reason": reason, "email": email });
            add_delivery(client, event_id, user, "security", email, locale, &context).await?;
        }
        PlatformEventKind::FilmPublished { film_id, .. } => {
            let Ok(film) = uuid::Uuid::parse_str(film_id) else {
                return Ok(());
            };
            client
                .execute(
                    "INSERT INTO notify.published_films (film_id, event_id, published_at) \
                     VALUES ($1, $2, to_timestamp($3::float8 / 1000)) ON CONFLICT DO NOTHING",
                    &[&film, &event_id, &(event.occurred_at_ms as f64)],
                )
                .await?;
        }
    }
    Ok(())
}

/// Records one mail of `template` to `recipient` that carries an email-confirmation
/// link (`confirm_url`, `confirm_hours` added to `context`), and the link's token in
/// `auth.email_confirmations` (hashed; `previous_email` set for an email change), in
/// one statement and only when the delivery is new (a redelivered event writes nothing).
#[allow(clippy::too_many_arguments)]
async fn add_confirming_delivery(
    client: &tokio_postgres::Client,
    settings: &NotifySettings,
    event_id: uuid::Uuid,
    user: uuid::Uuid,
    template: &str,
    recipient: &str,
    locale: &str,
    mut context: serde_json::Value,
    previous_email: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    let (token, hash) = confirmation_token();
    context["confirm_url"] = serde_json::Value::String(format!(
        "{}/api/v1/auth/confirm?token={token}",
        settings.public_base_url.trim_end_matches('/')
    ));
    context["confirm_hours"] = (settings.confirmation_ttl.as_secs() / 3600).into();
    client
        .execute(
            "WITH d AS ( \
                 INSERT INTO notify.deliveries (event_id, user_id, template, recipient, locale, context) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING user_id) \
             INSERT INTO auth.email_confirmations (token_hash, user_id, email, expires_at, previous_email) \
             SELECT $7, user_id, $4, now() + make_interval(secs => $8), $9 FROM d",
            &[
                &event_id,
                &user,
                &template,
                &recipient,
                &locale,
                &context,
                &hash,
                &(settings.confirmation_ttl.as_secs() as f64),
                &previous_email,
            ],
        )
        .await?;
    Ok(())
}

/// Records one mail of `template` to `user` for the event; nothing when the event
/// already recorded it (a redelivery).
async fn add_delivery(
    client: &tokio_postgres::Client,
    event_id: uuid::Uuid,
    user: uuid::Uuid,
    template: &str,
    email: &str,
    locale: &str,
    context: &serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO notify.deliveries (event_id, user_id, template, recipient, locale, context) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[&event_id, &user, &template, &email, &locale, context],
        )
        .await?;
    Ok(())
}
