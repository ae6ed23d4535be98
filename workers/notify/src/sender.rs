//! The sender: takes due `pending` deliveries, renders them and sends them over SMTP.
//!
//! A delivery is claimed by pushing its `next_attempt_at` one lease ahead
//! (`FOR UPDATE SKIP LOCKED`, so several senders never take the same one); success
//! marks it `sent`; a transient SMTP error (4xx, no connection) schedules a retry with
//! exponential backoff; a permanent one (5xx, a bad address) marks it `failed` with the
//! error, and a dead letter for it goes into the outbox in the same statement (the relay
//! produces it to the dead-letter topic). Each mail's `Message-ID` is derived from its
//! key, so even the one window left
//! (the process dying after the SMTP server took a mail and before `sent` is written,
//! which resends it once the lease runs out) is recognizable downstream.

use std::time::Duration;

use cinema_worker::CancellationToken;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::NotifySettings;
use crate::templates::Templates;

/// Deliveries claimed per round.
const BATCH: i64 = 20;
/// How long a claimed delivery is left alone before another attempt may take it.
const LEASE_SECONDS: f64 = 60.0;
/// Attempts before a delivery that keeps failing transiently is given up.
pub const MAX_ATTEMPTS: i32 = 30;
/// Longest wait between attempts.
const MAX_RETRY_SECONDS: f64 = 300.0;

/// Topic name the outbox rows of failed mail carry (the relay maps it to
/// `NotifySettings::dead_letter_topic`).
pub const DEAD_LETTER_OUTBOX_TOPIC: &str = "notify.dlq";

/// Appended to a statement whose CTE `f` holds deliveries that just failed for good:
/// each becomes a dead letter in the outbox, in the same statement, which the relay
/// then produces to the dead-letter topic.
const DEAD_LETTER: &str = "INSERT INTO platform.outbox (id, topic, key, payload) \
     SELECT gen_random_uuid(), 'notify.dlq', f.user_id::text, jsonb_build_object( \
         'event_id', f.event_id, 'user_id', f.user_id, 'template', f.template, \
         'recipient', f.recipient, 'locale', f.locale, 'attempts', f.attempts, \
         'error', f.last_error, 'failed_at_ms', (extract(epoch FROM now()) * 1000)::bigint) \
     FROM f";

/// A claimed delivery.
struct Claimed {
    event_id: uuid::Uuid,
    user_id: uuid::Uuid,
    template: String,
    recipient: String,
    locale: String,
    context: serde_json::Value,
    attempts: i32,
}

/// What a sender round needs besides Postgres.
struct Outgoing {
    settings: NotifySettings,
    templates: Templates,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// Runs until `stop` is cancelled.
pub async fn run(settings: NotifySettings, templates: Templates, stop: CancellationToken) {
    let transport = match AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url) {
        Ok(builder) => builder.timeout(Some(Duration::from_secs(20))).build(),
        Err(error) => {
            tracing::error!(%error, "notify: the SMTP URL is not valid; mail waits in postgres");
            return;
        }
    };
    let from: Mailbox = match settings.mail_from.parse() {
        Ok(from) => from,
        Err(error) => {
            tracing::error!(%error, from = %settings.mail_from, "notify: the sender address is not valid");
            return;
        }
    };
    let idle = settings.poll_interval;
    let outgoing = Outgoing {
        settings,
        templates,
        transport,
        from,
    };
    crate::repeat_rounds(
        &outgoing,
        |postgres, outgoing| Box::pin(async move { Ok(round(postgres, outgoing).await? > 0) }),
        idle,
        "notify: sender round failed; retrying",
        stop,
    )
    .await;
}

/// Sends one batch of due deliveries; answers how many were sent.
async fn round(
    postgres: &mut Option<tokio_postgres::Client>,
    outgoing: &Outgoing,
) -> Result<usize, tokio_postgres::Error> {
    let Outgoing {
        settings,
        templates,
        transport,
        from,
    } = outgoing;
    let client = crate::connected(postgres, &settings.postgres_url, "sender").await?;
    let claimed = client
        .query(
            "UPDATE notify.deliveries SET attempts = attempts + 1, \
                    next_attempt_at = now() + make_interval(secs => $2) \
             WHERE (event_id, user_id, template) IN ( \
                 SELECT event_id, user_id, template FROM notify.deliveries \
                 WHERE status = 'pending' AND next_attempt_at <= now() \
                 ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING event_id, user_id, template, recipient, locale, context, attempts",
            &[&BATCH, &LEASE_SECONDS],
        )
        .await?;
    let mut done = 0;
    for row in &claimed {
        let delivery = Claimed {
            event_id: row.get("event_id"),
            user_id: row.get("user_id"),
            template: row.get("template"),
            recipient: row.get("recipient"),
            locale: row.get("locale"),
            context: row.get("context"),
            attempts: row.get("attempts"),
        };
        let outcome = send(&delivery, templates, transport, from).await;
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&delivery.event_id, &delivery.user_id, &delivery.template];
        match outcome {
            Ok(()) => {
                client
                    .execute(
                        "UPDATE notify.deliveries SET status = 'sent', sent_at = now(), last_error = NULL \
                         WHERE event_id = $1 AND user_id = $2 AND template = $3",
                        &key,
                    )
                    .await?;
                done += 1;
            }
            Err(Failure::Permanent(error)) => {
                tracing::warn!(%error, template = %delivery.template, "notify: delivery failed for good");
                client
                    .execute(
                        &format!(
                            "WITH f AS ( \
                                 UPDATE notify.deliveries SET status = 'failed', last_error = $4 \
                                 WHERE event_id = $1 AND user_id = $2 AND template = $3 \
                                 RETURNING *) {DEAD_LETTER}"
                        ),
                        &[key[0], key[1], key[2], &error],
                    )
                    .await?;
            }
            Err(Failure::Transient(error)) => {
                let give_up = delivery.attempts >= MAX_ATTEMPTS;
                let retry_in = (2f64.powi(delivery.attempts.min(16))).min(MAX_RETRY_SECONDS);
                tracing::info!(%error, attempts = delivery.attempts, retry_in_s = retry_in, "notify: delivery deferred");
                client
                    .execute(
                        &format!(
                            "WITH updated AS ( \
                                 UPDATE notify.deliveries SET last_error = $4, \
                                        status = CASE WHEN $5 THEN 'failed' ELSE status END, \
                                        next_attempt_at = now() + make_interval(secs => $6) \
                                 WHERE event_id = $1 AND user_id = $2 AND template = $3 \
                                 RETURNING *), \
                             f AS (SELECT * FROM updated WHERE status = 'failed') {DEAD_LETTER}"
                        ),
                        &[key[0], key[1], key[2], &error, &give_up, &retry_in],
                    )
                    .await?;
            }
        }
    }
    Ok(done)
}

/// Why a mail was not sent.
enum Failure {
    /// Worth another attempt (no connection, a 4xx reply).
    Transient(String),
    /// Never going to work (a 5xx reply, an unusable address, a broken template).
    Permanent(String),
}

async fn send(
    delivery: &Claimed,
    templates: &Templates,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
) -> Result<(), Failure> {
    let rendered = templates
        .render(&delivery.template, &delivery.locale, &delivery.context)
        .map_err(|e| Failure::Permanent(format!("template {}: {e}", delivery.template)))?;
    let to: Mailbox = delivery
        .recipient
        .parse()
        .map_err(|e| Failure::Permanent(format!("recipient: {e}")))?;
    let mut builder = Message::builder();
    // Optional mail can be left in one click (RFC 8058).
    if let Some(url) = delivery.context["unsubscribe_url"].as_str() {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
    }
    let message = builder
        .from(from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(format!(
            "<{}.{}.{}@cinema>",
            delivery.event_id, delivery.template, delivery.user_id
        )))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))
        .map_err(|e| Failure::Permanent(format!("building the mail: {e}")))?;
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(error) if error.is_permanent() => Err(Failure::Permanent(error.to_string())),
        Err(error) => Err(Failure::Transient(error.to_string())),
    }
}
