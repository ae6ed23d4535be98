//! `cinema-notify`: mail on platform events, never lost, never twice.
//!
//! Tasks the host runs side by side:
//! - [`relay`]: the transactional outbox (`platform.outbox`, written by auth and by the
//!   content database) → Kafka `auth.events` and `catalog.events`;
//! - [`events`]: those topics → keyed rows in `notify.deliveries` and
//!   `notify.published_films` (then the offsets are committed), so a redelivered event
//!   changes nothing;
//! - [`announcer`]: announcements from the console → deliveries, in batches;
//! - [`digest`]: published films → the users they suit → at most one digest mail per
//!   user per day;
//! - [`sender`]: due deliveries → SMTP, with retries for transient failures and
//!   `failed` with the reason for permanent ones.
//!
//! Mails are rendered from [`templates`] in the user's locale (ru by default).

pub mod announcer;
pub mod digest;
pub mod events;
pub mod relay;
pub mod sender;
pub mod templates;

use std::time::Duration;

use cinema_worker::CancellationToken;

/// How notify runs.
#[derive(Clone)]
pub struct NotifySettings {
    pub brokers: String,
    pub auth_events_topic: String,
    /// Where `film.published` events are.
    pub catalog_events_topic: String,
    /// How long a published film waits before its audience is worked out (editors
    /// attach genres and people after creating it), and how long a user's first
    /// suggestion waits for more before the digest goes out.
    pub digest_delay: Duration,
    /// Where mail that failed for good is announced.
    pub dead_letter_topic: String,
    pub group_id: String,
    pub postgres_url: String,
    /// `smtp://host:port` (plain), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465` (TLS). Holds a secret: never logged.
    pub smtp_url: String,
    /// The `From` of every mail.
    pub mail_from: String,
    /// Base of the links in mails (the public API).
    pub public_base_url: String,
    /// How long an email-confirmation link works.
    pub confirmation_ttl: Duration,
    /// How often the sender looks for due deliveries when idle.
    pub poll_interval: Duration,
    /// Told the partitions this host's events consumer holds after each rebalance.
    pub on_assignment: cinema_kafka::AssignmentObserver,
}

impl std::fmt::Debug for NotifySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifySettings")
            .field("brokers", &self.brokers)
            .field("auth_events_topic", &self.auth_events_topic)
            .field("catalog_events_topic", &self.catalog_events_topic)
            .field("digest_delay", &self.digest_delay)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("group_id", &self.group_id)
            .field("smtp", &smtp_host(&self.smtp_url))
            .field("mail_from", &self.mail_from)
            .field("public_base_url", &self.public_base_url)
            .finish_non_exhaustive()
    }
}

/// The host and port of an SMTP URL, without credentials (for logs).
pub fn smtp_host(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority).to_owned()
}

/// The open Postgres client in `slot`, connecting first when there is none or it
/// closed; `who` names the task in the log line of a dropped connection.
pub(crate) async fn connected<'a>(
    slot: &'a mut Option<tokio_postgres::Client>,
    url: &str,
    who: &'static str,
) -> Result<&'a tokio_postgres::Client, tokio_postgres::Error> {
    let client = match slot.take().filter(|client| !client.is_closed()) {
        Some(client) => client,
        None => {
            let (client, connection) = cinema_postgres::connect(url).await?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::warn!(%error, who, "notify: postgres connection ended");
                }
            });
            client
        }
    };
    Ok(slot.insert(client))
}

/// One round of a polling task: its work on `context` through the Postgres connection
/// in the slot; `true` when it had work (another round follows at once).
pub(crate) type Round<C> =
    for<'a> fn(
        &'a mut Option<tokio_postgres::Client>,
        &'a C,
    ) -> futures::future::BoxFuture<'a, Result<bool, tokio_postgres::Error>>;

/// Repeats `round` until `stop`: at once after a round that had work, after `idle`
/// when it had none or failed. A failed round is logged with `failure` and drops its
/// Postgres connection, so the next round connects afresh.
pub(crate) async fn repeat_rounds<C: Sync>(
    context: &C,
    round: Round<C>,
    idle: Duration,
    failure: &'static str,
    stop: CancellationToken,
) {
    let mut postgres: Option<tokio_postgres::Client> = None;
    loop {
        let busy = match round(&mut postgres, context).await {
            Ok(busy) => busy,
            Err(error) => {
                postgres = None;
                tracing::warn!(%error, "{failure}");
                false
            }
        };
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                () = stop.cancelled() => return,
            }
        } else if stop.is_cancelled() {
            return;
        }
    }
}

/// Why notify could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("mail templates: {0}")]
    Templates(#[from] minijinja::Error),
}

/// Runs the relay, and, when there is an SMTP server (`smtp_url` not empty), the event
/// consumer, the announcer and the sender, until `stop` is cancelled. Without one, events still
/// reach Kafka for whoever else consumes them.
pub async fn run(settings: NotifySettings, stop: CancellationToken) -> Result<(), NotifyError> {
    let relay = tokio::spawn(relay::run(settings.clone(), stop.clone()));
    if settings.smtp_url.trim().is_empty() {
        tracing::info!(
            ?settings,
            "notify: relaying account events; no --smtp-url, so no mail"
        );
        let _ = relay.await;
        return Ok(());
    }
    let templates = templates::Templates::load()?;
    tracing::info!(?settings, "notify: running");
    let events = tokio::spawn(events::run(settings.clone(), stop.clone()));
    let announcer = tokio::spawn(announcer::run(settings.clone(), stop.clone()));
    let digest = tokio::spawn(digest::run(settings.clone(), stop.clone()));
    let sender = tokio::spawn(sender::run(settings, templates, stop));
    let _ = tokio::join!(relay, events, announcer, digest, sender);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Credentials in the SMTP URL never reach the log line.
    #[test]
    fn smtp_host_drops_credentials() {
        assert_eq!(
            smtp_host("smtps://user:secret@mail.example:465"),
            "mail.example:465"
        );
        assert_eq!(
            smtp_host("smtp://127.0.0.1:2525?tls=required"),
            "127.0.0.1:2525"
        );
    }
}
