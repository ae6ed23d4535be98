//! The UGC pipeline of a running `cinema up`: the event intake (with its spool
//! replayer), the ugc-loader (Kafka → ClickHouse) and the read-model consumer (Kafka →
//! Postgres), all on the host's runtime.
//! Started only when the host has `--kafka-brokers`.

use std::sync::Arc;
use std::time::Duration;

use cinema_ugc_loader::LoaderSettings;
use cinema_ugc_loader::read_model::{self, ReadModelSettings};
use cinema_worker::{CancellationToken, Tasks};

use crate::cli::UpArgs;
use crate::intake::{Intake, IntakeSettings};
use crate::runtime::metrics::RuntimeMetrics;

/// The intake and loader tasks.
#[derive(Debug, Default)]
pub struct UgcRuntime {
    intake: Option<Arc<Intake>>,
    tasks: Tasks,
}

impl UgcRuntime {
    pub fn intake(&self) -> Option<Arc<Intake>> {
        self.intake.clone()
    }

    /// Stops the replayer and lets the loader finish and commit its batch.
    pub async fn stop(self) {
        self.tasks.stop().await;
    }
}

/// Starts the intake and (unless `--no-ugc-loader`) the ClickHouse loader and the
/// Postgres read-model consumer, whose partitions `metrics` shows per group.
pub fn start(args: &UpArgs, metrics: &RuntimeMetrics) -> anyhow::Result<UgcRuntime> {
    let Some(brokers) = &args.kafka_brokers else {
        return Ok(UgcRuntime::default());
    };
    let intake = Intake::new(IntakeSettings {
        brokers: brokers.clone(),
        topic: args.ugc_topic.clone(),
        spool_dir: args.spool_dir.clone(),
        delivery_timeout: Duration::from_millis(args.kafka_delivery_timeout_ms.max(100)),
    })?;
    let stop = CancellationToken::new();
    let mut tasks = Tasks::new(&stop);
    tasks.spawn(intake.clone().run_replayer(stop.clone()));
    if !args.no_ugc_loader {
        let mut settings = LoaderSettings::new(brokers.clone(), args.clickhouse_url.clone());
        settings.topic = args.ugc_topic.clone();
        settings.dead_letter_topic = cinema_domain::ugc::dead_letter_topic(&args.ugc_topic);
        settings.group_id = args.ugc_loader_group.clone();
        settings.clickhouse_database = args.clickhouse_database.clone();
        settings.on_assignment = metrics.assigned_partitions(&settings.group_id);
        let loader_stop = stop.clone();
        tasks.spawn(async move {
            if let Err(error) = cinema_ugc_loader::run(settings, loader_stop).await {
                tracing::error!(%error, "ugc-loader stopped; events wait in kafka");
            }
        });
        let mut read_models =
            ReadModelSettings::new(brokers.clone(), args.ugc_postgres_url.clone());
        read_models.topic = args.ugc_topic.clone();
        read_models.group_id = args.ugc_read_model_group.clone();
        read_models.on_assignment = metrics.assigned_partitions(&read_models.group_id);
        tasks.spawn(async move {
            if let Err(error) = read_model::run(read_models, stop).await {
                tracing::error!(%error, "ugc read models stopped; events wait in kafka");
            }
        });
    }
    tracing::info!(%brokers, topic = %args.ugc_topic, spool = %args.spool_dir.display(), "ugc intake started");
    Ok(UgcRuntime {
        intake: Some(intake),
        tasks,
    })
}
