//! The catalog search side of the host: opening the index, running the ETL on its own
//! thread under `cinema up`, and `cinema reindex`.
//!
//! The ETL gets a dedicated thread with a single-threaded runtime, so a full build
//! (seconds of CPU) never takes a worker from the component runtime.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cinema_etl::rebuild::RebuildProgress;
use cinema_etl::sync::{self, EtlCommand, EtlSettings, Indexer};
use cinema_etl::{CatalogIndex, SearchIndex};
use cinema_worker::{CancellationToken, DropGuard};
use tokio::sync::mpsc;

use crate::cli::UpArgs;
use crate::runtime::metrics::RuntimeMetrics;
use crate::search_api::SearchState;

/// The search index and the ETL of a running `cinema up`.
#[derive(Debug, Default)]
pub struct CatalogRuntime {
    search: Option<Arc<SearchIndex>>,
    etl: Option<mpsc::Sender<EtlCommand>>,
    rebuild: Option<Arc<RebuildProgress>>,
    /// Cancels the ETL's token when taken or dropped.
    stop: Option<DropGuard>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CatalogRuntime {
    pub fn search_state(&self) -> SearchState {
        SearchState {
            index: self.search.clone(),
            etl: self.etl.clone(),
            rebuild: self.rebuild.clone(),
        }
    }

    /// Stops the ETL after its current batch and waits for it.
    pub fn stop(mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens the index and starts the ETL as `cinema up`'s flags say.
pub fn start(args: &UpArgs, metrics: &RuntimeMetrics) -> anyhow::Result<CatalogRuntime> {
    let Some(dir) = &args.index_dir else {
        return Ok(CatalogRuntime::default());
    };
    let index = CatalogIndex::open_or_create(dir)
        .with_context(|| format!("failed to open the search index in {}", dir.display()))?;
    let search = Arc::new(SearchIndex::open(&index).context("failed to read the search index")?);
    tracing::info!(dir = %dir.display(), version = search.version(), "search index opened");
    if args.no_etl {
        return Ok(CatalogRuntime {
            search: Some(search),
            ..CatalogRuntime::default()
        });
    }
    let mut indexer = Indexer::new(&index, search.clone(), 2)?;
    indexer.read_in_parallel_from(args.etl_postgres_url.clone());
    let rebuild = indexer.rebuild_progress();
    let mut settings = EtlSettings::new(args.etl_postgres_url.clone());
    settings.catch_up_interval = Duration::from_secs(args.etl_catch_up_seconds.max(1));
    settings.observer = metrics.etl_observer();
    let (commands, receiver) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let thread = std::thread::Builder::new()
        .name("cinema-etl".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "etl: cannot start its runtime");
                    return;
                }
            };
            if let Err(error) = runtime.block_on(sync::run(settings, indexer, receiver, stopped)) {
                tracing::error!(%error, "etl stopped; search keeps serving the last published index");
            }
        })
        .context("failed to start the etl thread")?;
    Ok(CatalogRuntime {
        search: Some(search),
        etl: Some(commands),
        rebuild: Some(rebuild),
        stop: Some(stop.drop_guard()),
        thread: Some(thread),
    })
}

/// `cinema reindex`: a full build with a progress line, made beside the served build
/// and made current only once complete, so a failed or interrupted run leaves the
/// index as it was. The served build's writer lock is held throughout: a running
/// `cinema up` makes this fail at once (it rebuilds with `POST /etl/reindex`), and none
/// can start on the index meanwhile.
pub async fn reindex(postgres_url: &str, dir: &Path) -> anyhow::Result<()> {
    let served = CatalogIndex::open_or_create(dir)
        .with_context(|| format!("failed to open the search index in {}", dir.display()))?;
    let served_lock = served.writer(1)?;
    let index = served.create_beside()?;
    let built = build_into(&index, postgres_url, dir).await;
    match built {
        Ok(()) => {
            index.make_current()?;
            drop(served_lock);
            index.remove_other_builds();
            Ok(())
        }
        Err(error) => {
            index.remove();
            Err(error)
        }
    }
}

/// The full build of `cinema reindex` into `index`, committed there.
async fn build_into(index: &CatalogIndex, postgres_url: &str, dir: &Path) -> anyhow::Result<()> {
    let search = Arc::new(SearchIndex::open_for_build(index)?);
    let mut indexer = Indexer::new(index, search, 2)?;
    indexer.read_in_parallel_from(postgres_url);
    let (client, connection) = cinema_postgres::connect(postgres_url)
        .await
        .with_context(|| {
            "failed to connect to Postgres (is it running? `make services`; is the URL right? \
             --postgres-url / CINEMA_POSTGRES_URL)"
                .to_string()
        })?;
    tokio::spawn(connection);
    let started = Instant::now();
    let published = indexer
        .full_build(
            &client,
            EtlSettings::new(postgres_url).overlap,
            &mut |done, total| {
                let percent = (done * 100).checked_div(total).unwrap_or(100);
                eprint!(
                    "\rindexing: {done}/{total} documents ({percent}%) {:.1}s   ",
                    started.elapsed().as_secs_f64()
                );
                let _ = std::io::stderr().flush();
            },
        )
        .await
        .context("the full build failed (is the content schema migrated? `cinema migrate`)")?;
    eprintln!();
    println!(
        "indexed {} documents into {} (version {}) in {:.1}s",
        published.documents,
        dir.display(),
        published.version,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
