//! Mail of a running `cinema up`: the notify worker on the host's runtime. With
//! `--kafka-brokers`, auth's outbox is relayed to Kafka; with `--smtp-url` too, mail
//! is sent.

use std::time::Duration;

use cinema_notify::NotifySettings;
use cinema_worker::{CancellationToken, Tasks};

use crate::cli::UpArgs;
use crate::runtime::metrics::RuntimeMetrics;

/// The notify task.
#[derive(Debug, Default)]
pub struct NotifyRuntime {
    tasks: Tasks,
}

impl NotifyRuntime {
    /// Stops the worker; undelivered mail waits in Postgres for the next start.
    pub async fn stop(self) {
        self.tasks.stop().await;
    }
}

/// Starts notify when the host has brokers (mail only with an SMTP server too); its
/// events consumer's partitions show in `metrics`.
pub fn start(args: &UpArgs, metrics: &RuntimeMetrics) -> NotifyRuntime {
    let Some(brokers) = &args.kafka_brokers else {
        return NotifyRuntime::default();
    };
    let smtp_url = args.smtp_url.clone().unwrap_or_default();
    let settings = NotifySettings {
        brokers: brokers.clone(),
        auth_events_topic: args.auth_events_topic.clone(),
        catalog_events_topic: args.catalog_events_topic.clone(),
        digest_delay: Duration::from_secs(args.digest_delay_seconds),
        dead_letter_topic: args.notify_dead_letter_topic.clone(),
        group_id: args.notify_group.clone(),
        postgres_url: args.ugc_postgres_url.clone(),
        smtp_url,
        mail_from: args.mail_from.clone(),
        public_base_url: args.public_base_url.clone(),
        confirmation_ttl: Duration::from_secs(args.confirmation_ttl_hours.max(1) * 3600),
        poll_interval: Duration::from_millis(200),
        on_assignment: metrics.assigned_partitions(&args.notify_group),
    };
    let stop = CancellationToken::new();
    let mut tasks = Tasks::new(&stop);
    tasks.spawn(async move {
        if let Err(error) = cinema_notify::run(settings, stop).await {
            tracing::error!(%error, "notify stopped; mail waits in kafka and postgres");
        }
    });
    NotifyRuntime { tasks }
}
