//! A full rebuild beside the live index, so edits keep being published while it runs
//! (`POST /etl/reindex` under `cinema up`).
//!
//! The build runs on a thread of its own (its own runtime, Postgres connections and
//! index writer) into a new build directory ([`CatalogIndex::create_beside`]); the ETL
//! loop meanwhile applies notifications to the live index as usual. When the build is
//! complete, the thread also catches it up with the rows changed and deleted while it
//! ran (reading every id), and warms its reader (film table included). The loop then
//! takes it over ([`Indexer::go_live`]): it catches the new build up with the last
//! moments (rows modified since, and the deletions the live index saw meanwhile),
//! publishes it under a newer version, points `current` at it, hands its warm reader
//! to the search API and deletes the old build. Readers see the live index, edits
//! included, until that moment and the new build, edits included, from then on; the
//! loop is busy only for that last step.
//!
//! Stopping the host abandons a running build (it stops within 1000 documents); its
//! directory is swept by the next writer. [`RebuildProgress`] tells the search API
//! how far a running build is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::{EtlError, Result};
use crate::sync::{Indexer, OnMassUpdate};

/// How far the running rebuild is (shared with the search API).
#[derive(Debug, Default)]
pub struct RebuildProgress {
    running: AtomicBool,
    done: AtomicU64,
    total: AtomicU64,
}

impl RebuildProgress {
    /// `(documents written, documents to write)` of the running rebuild, if one runs.
    pub fn get(&self) -> Option<(u64, u64)> {
        self.running.load(Ordering::Relaxed).then(|| {
            (
                self.done.load(Ordering::Relaxed),
                self.total.load(Ordering::Relaxed),
            )
        })
    }

    fn report(&self, done: u64, total: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    fn set_running(&self, running: bool) {
        if running {
            self.report(0, 0);
        }
        self.running.store(running, Ordering::Relaxed);
    }
}

/// A full build running beside the live index.
#[derive(Debug)]
pub struct Rebuild {
    outcome: oneshot::Receiver<Result<Indexer>>,
    thread: Option<std::thread::JoinHandle<()>>,
    progress: Arc<RebuildProgress>,
}

impl Rebuild {
    /// Starts building a new index beside `live`'s, reading from `postgres_url`.
    pub fn start(live: &Indexer, postgres_url: &str, overlap: Duration) -> Result<Self> {
        let mut next = live.beside()?;
        let progress = live.rebuild_progress();
        progress.set_running(true);
        let (sender, outcome) = oneshot::channel();
        let url = postgres_url.to_owned();
        let reporter = progress.clone();
        let thread = std::thread::Builder::new()
            .name("cinema-etl-rebuild".into())
            .spawn(move || {
                let built = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| EtlError::Runtime(error.to_string()))
                    .and_then(|runtime| {
                        runtime.block_on(build(&mut next, &url, overlap, &reporter))
                    });
                let _ = sender.send(match built {
                    Ok(()) => Ok(next),
                    Err(error) => {
                        next.discard();
                        Err(error)
                    }
                });
            })
            .map_err(|error| EtlError::Runtime(error.to_string()))?;
        Ok(Self {
            outcome,
            thread: Some(thread),
            progress,
        })
    }

    /// The built index, once complete (its thread has ended).
    pub async fn finished(&mut self) -> Result<Indexer> {
        let outcome = (&mut self.outcome)
            .await
            .unwrap_or_else(|_| Err(EtlError::Runtime("the rebuild thread ended".into())));
        self.join();
        outcome
    }

    /// Waits for the build's thread (after a stop, it ends within 1000 documents).
    pub fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.progress.set_running(false);
    }
}

async fn build(
    next: &mut Indexer,
    postgres_url: &str,
    overlap: Duration,
    progress: &RebuildProgress,
) -> Result<()> {
    let started = Instant::now();
    let (client, connection) = cinema_postgres::connect(postgres_url).await?;
    tokio::spawn(connection);
    let published = next
        .full_build(&client, overlap, &mut |done, total| {
            progress.report(done, total)
        })
        .await?;
    // Rows changed and deleted while it ran, caught up here rather than on the ETL
    // loop, which then has only the last moments to catch up when it goes live.
    let caught_up = next
        .catch_up(&client, overlap, true, OnMassUpdate::RebuildInPlace)
        .await?;
    tracing::info!(
        documents = published.documents,
        caught_up = caught_up.documents(),
        took_ms = started.elapsed().as_millis() as u64,
        "etl: rebuild written beside the live index; going live"
    );
    Ok(())
}
