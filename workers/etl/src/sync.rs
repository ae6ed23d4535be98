//! Keeping the index in step with Postgres: the full build, incremental updates from
//! `LISTEN content_changes`, and the periodic catch-up by `modified`.
//!
//! Guarantees:
//! - a committed change is searchable after one batch window (50 ms by default) plus
//!   one commit, while connected;
//! - nothing is missed across downtime: after every (re)connect the ETL rereads rows
//!   modified since the persisted watermark (minus [`EtlSettings::overlap`], for
//!   transactions that committed late) and drops documents whose rows are gone;
//! - Postgres down: retries with exponential backoff; the last published index keeps
//!   serving;
//! - each publish is one tantivy commit whose payload is the new [`Position`];
//! - `POST /etl/reindex` builds beside the live index ([`crate::rebuild`]): edits keep
//!   being published while it runs, and the new build goes live with them;
//! - a catch-up skips rows the index already holds at the same version (every film and
//!   person document keeps its row's `modified`): after a bulk import, the rows of the
//!   overlap are not changes. Only a real mass update (more changed rows than
//!   [`MASS_UPDATE_ROWS`] and a quarter of the index) is rebuilt, and the loop rebuilds
//!   it beside the live index too, so edits keep flowing meanwhile.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cinema_worker::{Backoff, CancellationToken};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tantivy::IndexWriter;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, Client};
use uuid::Uuid;

use crate::error::{EtlError, Result};
use crate::index::{CatalogIndex, Position, commit};
use crate::model::{Film, Person};
use crate::rebuild::{Rebuild, RebuildProgress};
use crate::schema::{Kind, SCHEMA_VERSION};
use crate::search::SearchIndex;
use crate::source::{self, CHANGES_CHANNEL, ContentTable, RowVersion};

/// Past this many changed rows (and a quarter of the index), a catch-up rebuilds.
const MASS_UPDATE_ROWS: usize = 10_000;
/// Rows a catch-up rereads at a time; past this many rows modified since the
/// watermark, a catch-up first drops those the index holds at the same version.
const CATCH_UP_CHUNK: usize = 2_000;
/// Most notifications folded into one publish.
const MAX_BATCH_CHANGES: usize = 5_000;
/// Notifications queued between the connection and the indexer; past it they are
/// dropped and a catch-up replaces them.
const MAX_QUEUED_CHANGES: usize = 20_000;
/// A catch-up that changed nothing commits its watermark only this often: an idle
/// commit rewrites `meta.json`, wakes the segment updater and reloads the readers for
/// nothing. A restart rereads at most this much more (the comparison with the
/// published documents makes that a no-op).
const IDLE_COMMIT_INTERVAL: Duration = Duration::from_secs(600);

/// How the ETL runs.
#[derive(Debug, Clone)]
pub struct EtlSettings {
    /// Postgres holding the `content` schema.
    pub postgres_url: String,
    /// How often to catch up by `modified` while connected.
    pub catch_up_interval: Duration,
    /// How long to gather notifications before publishing them together.
    pub batch_window: Duration,
    /// How far behind the last catch-up the next one starts (late commits).
    pub overlap: Duration,
    /// Longest wait between reconnect attempts.
    pub max_backoff: Duration,
    /// Indexing threads of a full build.
    pub writer_threads: usize,
    /// Told what the loop does (catch-ups, full builds), for metrics.
    pub observer: EtlObserver,
}

impl EtlSettings {
    pub fn new(postgres_url: impl Into<String>) -> Self {
        Self {
            postgres_url: postgres_url.into(),
            catch_up_interval: Duration::from_secs(30),
            batch_window: Duration::from_millis(50),
            overlap: Duration::from_secs(60),
            max_backoff: Duration::from_secs(30),
            writer_threads: 2,
            observer: EtlObserver::default(),
        }
    }
}

/// What the ETL loop did, as an [`EtlObserver`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtlEvent {
    /// A catch-up by `modified` ran (at connect, periodically, after a notification
    /// overflow), whatever it found.
    CaughtUp,
    /// A full build started.
    FullBuild(BuildCause),
}

/// Why a full build started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildCause {
    /// The index had never been built (in place: nothing is served yet).
    FirstBuild,
    /// A catch-up found more changed rows than is cheap to diff (beside the live index).
    MassUpdate,
    /// `POST /etl/reindex` (beside the live index).
    Reindex,
}

impl BuildCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstBuild => "first_build",
            Self::MassUpdate => "mass_update",
            Self::Reindex => "reindex",
        }
    }
}

/// Told each [`EtlEvent`] of the loop (the host counts them as metrics). A no-op by
/// default.
pub type EtlObserver = cinema_worker::Observer<EtlEvent>;

/// Requests to a running ETL.
#[derive(Debug)]
pub enum EtlCommand {
    /// Rebuild everything from Postgres; answers with the published version.
    Reindex(oneshot::Sender<Result<u64, String>>),
}

/// One row change as the content triggers announce it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Change {
    pub table: String,
    pub id: Uuid,
    pub op: String,
}

/// What a catch-up does about a mass update: more rows changed than
/// [`MASS_UPDATE_ROWS`] and a quarter of the index, cheaper to rebuild than to diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMassUpdate {
    /// Rebuild this index in place (a build nobody serves yet).
    RebuildInPlace,
    /// Leave the index and its watermark as they are and answer
    /// [`CaughtUp::MassUpdate`]: the live index keeps serving, and the ETL loop
    /// rebuilds beside it.
    Report,
}

/// What [`Indexer::catch_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaughtUp {
    /// Changes (or none) written and published, or the index rebuilt in place.
    Published(Published),
    /// A mass update, left to the caller ([`OnMassUpdate::Report`]); nothing written.
    MassUpdate { changed: usize },
}

impl CaughtUp {
    /// Documents written (none for a mass update left to the caller).
    pub fn documents(&self) -> u64 {
        match self {
            Self::Published(published) => published.documents,
            Self::MassUpdate { .. } => 0,
        }
    }
}

/// What [`Indexer::write_catch_up`] did.
enum CatchUp {
    /// The index was rebuilt from scratch and published (mass update, or never built).
    Rebuilt(Published),
    /// Documents rewritten, not yet published, and the watermark to publish them with.
    Written {
        documents: u64,
        watermark: chrono::DateTime<chrono::Utc>,
    },
    /// A mass update, not written ([`OnMassUpdate::Report`]).
    MassUpdate { changed: usize },
}

/// Counts of a publish, for logs and progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    pub version: u64,
    pub documents: u64,
}

/// The index writer and what it last published.
pub struct Indexer {
    index: CatalogIndex,
    writer: IndexWriter,
    search: Arc<SearchIndex>,
    position: Position,
    /// When the position was last committed (idle catch-ups commit rarely).
    committed_at: Instant,
    /// Where a full build opens a second connection to read the link tables while
    /// names read on the first (one Postgres backend reads one query at a time).
    side_connection: Option<String>,
    /// Cancelled on shutdown: long builds and catch-ups stop between chunks.
    stop: Option<CancellationToken>,
    /// Indexing threads of the writer (a rebuild beside this index gets as many).
    threads: usize,
    /// How far a rebuild beside this index is (shared with the search API).
    rebuild_progress: Arc<RebuildProgress>,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer")
            .field("index", &self.index)
            .field("position", &self.position)
            .finish()
    }
}

impl Indexer {
    /// Takes the index's writer lock ([`EtlError::IndexLocked`] if another process has
    /// it). The writer of the served build sweeps builds left over by a crash.
    pub fn new(index: &CatalogIndex, search: Arc<SearchIndex>, threads: usize) -> Result<Self> {
        let writer = index.writer(threads)?;
        if index.is_current() {
            index.remove_other_builds();
        }
        let position = Position::of(&index.index)?.unwrap_or(Position {
            schema_version: SCHEMA_VERSION,
            ..Position::default()
        });
        Ok(Self {
            index: index.clone(),
            writer,
            search,
            position,
            committed_at: Instant::now(),
            side_connection: None,
            stop: None,
            threads,
            rebuild_progress: Arc::default(),
        })
    }

    /// An indexer of a new, empty build beside this index (for [`Rebuild`]): same
    /// settings, versions continuing this index's.
    pub(crate) fn beside(&self) -> Result<Self> {
        let index = self.index.create_beside()?;
        let search = Arc::new(self.search.open_like(&index)?);
        let mut next = Self::new(&index, search, self.threads)?;
        next.side_connection = self.side_connection.clone();
        next.stop = self.stop.clone();
        next.position.generation = self.position.generation;
        Ok(next)
    }

    /// Drops a build that will not go live: stops its writer, deletes its directory.
    pub(crate) fn discard(self) {
        if let Err(error) = self.writer.wait_merging_threads() {
            tracing::warn!(%error, "etl: stopping an abandoned build's writer failed");
        }
        self.index.remove();
    }

    /// How far a rebuild beside this index is (for the search API).
    pub fn rebuild_progress(&self) -> Arc<RebuildProgress> {
        self.rebuild_progress.clone()
    }

    /// Makes a build made beside this index (by [`Rebuild`]) the live one: catches it
    /// up with the rows changed since its own last catch-up and the rows `deleted`
    /// meanwhile (or, with `reconcile`, drops every document whose row is gone),
    /// publishes it with a version newer than any this index published, points
    /// `current` at it, hands its warm reader to the search API and deletes the old
    /// build.
    pub async fn go_live(
        &mut self,
        mut next: Indexer,
        client: &Client,
        overlap: Duration,
        deleted: &[Change],
        reconcile: bool,
    ) -> Result<Published> {
        // Any publish of the new build is newer than what this index published.
        next.position.generation = next.position.generation.max(self.position.generation);
        let caught_up = async {
            // A mass update while the build ran is rebuilt here, on the loop: rare (it
            // needs more real changes during the build than a quarter of the index),
            // and going live with less than everything is not an option.
            let watermark = match next
                .write_catch_up(client, overlap, reconcile, OnMassUpdate::RebuildInPlace)
                .await?
            {
                CatchUp::Rebuilt(_) | CatchUp::MassUpdate { .. } => next.position.watermark,
                CatchUp::Written { watermark, .. } => Some(watermark),
            };
            next.write_changes(client, deleted).await?;
            Ok(watermark)
        };
        let watermark = match caught_up.await {
            Ok(watermark) => watermark,
            Err(error) => {
                next.discard();
                return Err(error);
            }
        };
        // One commit for the catch-up and the deletions, so the loop reloads once.
        let published = next.publish(watermark, true).and_then(|version| {
            next.index.make_current()?;
            Ok(version)
        });
        let version = match published {
            Ok(version) => version,
            Err(error) => {
                next.discard();
                return Err(error);
            }
        };
        let Indexer {
            index,
            writer,
            search,
            position,
            committed_at,
            ..
        } = next;
        let old_writer = std::mem::replace(&mut self.writer, writer);
        let old_index = std::mem::replace(&mut self.index, index);
        self.position = position;
        self.committed_at = committed_at;
        self.search.adopt(&search);
        // The old build's writer finishes before its directory goes.
        if let Err(error) = old_writer.wait_merging_threads() {
            tracing::warn!(%error, "etl: stopping the replaced build's writer failed");
        }
        old_index.remove();
        Ok(Published {
            version,
            documents: self.search.document_count(),
        })
    }

    /// Lets full builds read the link tables on a second connection to `postgres_url`,
    /// in parallel with the names (without it, or if it cannot connect, in turn).
    pub fn read_in_parallel_from(&mut self, postgres_url: impl Into<String>) {
        self.side_connection = Some(postgres_url.into());
    }

    /// A second client for a full build, when configured and reachable.
    async fn side_client(&self) -> Option<Client> {
        let url = self.side_connection.as_deref()?;
        match cinema_postgres::connect(url).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                Some(client)
            }
            Err(error) => {
                tracing::warn!(%error, "etl: no second connection; reading names and links in turn");
                None
            }
        }
    }

    /// Makes long builds and catch-ups give up (uncommitted) once `stop` is cancelled.
    pub fn stop_when(&mut self, stop: CancellationToken) {
        self.stop = Some(stop);
    }

    fn check_stop(&self) -> Result<()> {
        match &self.stop {
            Some(stop) if stop.is_cancelled() => Err(EtlError::Stopped),
            _ => Ok(()),
        }
    }

    /// The last published position.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Whether a full build has ever completed into this index.
    pub fn is_built(&self) -> bool {
        self.position.watermark.is_some()
    }

    /// Rebuilds every document from Postgres in one commit; readers see the old index
    /// until it lands. `progress(done, total)` is called every 1000 documents.
    pub async fn full_build(
        &mut self,
        client: &Client,
        overlap: Duration,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Published> {
        let started = source::database_now(client).await?;
        let total = source::count_documents(client).await?;
        self.writer.delete_all_documents()?;
        let mut done = 0u64;
        progress(done, total);
        // Names and links first (the link tables on the side connection, when there is
        // one), then films stream and are indexed as they arrive, then persons.
        let side = self.side_client().await;
        let mut links = source::CatalogLinks::read(client, side.as_ref()).await?;
        {
            let films = links.films(client).await?;
            futures::pin_mut!(films);
            while let Some((film, version)) = films.try_next().await? {
                self.writer
                    .add_document(self.index.film_document(&film, version))?;
                self.count_one(&mut done, total, progress)?;
            }
        }
        for (person, version) in links.persons() {
            self.writer
                .add_document(self.index.person_document(&person, version))?;
            self.count_one(&mut done, total, progress)?;
        }
        for (genre, version) in links.genres() {
            self.writer
                .add_document(self.index.genre_document(genre, version))?;
        }
        progress(done, total);
        let watermark = started - chrono::Duration::from_std(overlap).unwrap_or_default();
        self.commit_position(Some(watermark), true)?;
        // Before the readers see it: they then read (and the film table loads) one
        // segment, not the indexing threads' several.
        self.merge_segments();
        self.reload_readers();
        Ok(Published {
            version: self.position.generation,
            documents: done,
        })
    }

    /// Merges every segment of the committed index into one, waiting for it. After a
    /// full build (one segment per indexing thread, and more for large catalogues) a
    /// search walks one term dictionary per field and collects one segment: on the
    /// peer's 100k films, `search_uncached` went from 8.2-8.9k to 10.1-11.6k req/s
    /// with the same build (about 0.75 s of merging). Later edits add small segments,
    /// which the writer's merge policy merges among themselves. A failed merge leaves
    /// the segments as they were, which serve the same answers.
    fn merge_segments(&mut self) {
        let segments = match self.index.index.searchable_segment_ids() {
            Ok(segments) if segments.len() > 1 => segments,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "etl: cannot list the segments to merge; searches read them as they are");
                return;
            }
        };
        let started = Instant::now();
        match self.writer.merge(&segments).wait() {
            Ok(_) => tracing::info!(
                segments = segments.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "etl: the full build merged into one segment"
            ),
            Err(error) => {
                tracing::warn!(%error, "etl: merging the full build failed; searches read its segments as they are")
            }
        }
    }

    /// Counts one more document of a full build: reports progress and honours a stop
    /// every 1000 documents.
    fn count_one(
        &self,
        done: &mut u64,
        total: u64,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<()> {
        *done += 1;
        if done.is_multiple_of(1000) {
            progress(*done, total);
            self.check_stop()?;
        }
        Ok(())
    }

    /// Rereads rows modified since the watermark (but those the index holds at the same
    /// version); with `reconcile`, also drops documents whose rows no longer exist
    /// (needed after any time not listening). A mass update is rebuilt in place or
    /// reported, as `on_mass_update` says.
    pub async fn catch_up(
        &mut self,
        client: &Client,
        overlap: Duration,
        reconcile: bool,
        on_mass_update: OnMassUpdate,
    ) -> Result<CaughtUp> {
        let (written, watermark) = match self
            .write_catch_up(client, overlap, reconcile, on_mass_update)
            .await?
        {
            CatchUp::Rebuilt(published) => return Ok(CaughtUp::Published(published)),
            CatchUp::MassUpdate { changed } => return Ok(CaughtUp::MassUpdate { changed }),
            CatchUp::Written {
                documents,
                watermark,
            } => (documents, watermark),
        };
        if written == 0 && self.committed_at.elapsed() < IDLE_COMMIT_INTERVAL {
            // Nothing to publish: the new watermark holds in memory (the next catch-up
            // starts there) and is committed with the next change or idle interval.
            self.position.watermark = Some(watermark);
            return Ok(CaughtUp::Published(Published {
                version: self.position.generation,
                documents: 0,
            }));
        }
        let version = self.publish(Some(watermark), written > 0)?;
        Ok(CaughtUp::Published(Published {
            version,
            documents: written,
        }))
    }

    /// The writing half of [`Indexer::catch_up`]: rewrites what changed since the
    /// watermark and leaves publishing to the caller (a mass update, or an index never
    /// built, is rebuilt and published instead).
    async fn write_catch_up(
        &mut self,
        client: &Client,
        overlap: Duration,
        reconcile: bool,
        on_mass_update: OnMassUpdate,
    ) -> Result<CatchUp> {
        let Some(since) = self.position.watermark else {
            let published = self.full_build(client, overlap, &mut |_, _| {}).await?;
            return Ok(CatchUp::Rebuilt(published));
        };
        let started = source::database_now(client).await?;
        let mut modified = Vec::new();
        for table in [
            ContentTable::Film,
            ContentTable::Person,
            ContentTable::Genre,
        ] {
            for (id, version) in source::modified_since(client, table, since).await? {
                modified.push((table, id, version));
            }
        }
        // The watermark trails by `overlap`, so after a bulk import (or any full build)
        // the rows of that minute come back though the index holds them: drop those it
        // holds at the same version, so only real changes are reread, and counted
        // toward a mass update. A few rows are cheaper to compare as documents.
        if modified.len() > CATCH_UP_CHUNK {
            let films = self.search.row_versions(Kind::Film).map_err(decode_error)?;
            let persons = self
                .search
                .row_versions(Kind::Person)
                .map_err(decode_error)?;
            let genres = self
                .search
                .row_versions(Kind::Genre)
                .map_err(decode_error)?;
            modified.retain(|(table, id, version)| {
                let held = match table {
                    ContentTable::Film => films.get(id),
                    ContentTable::Person => persons.get(id),
                    ContentTable::Genre => genres.get(id),
                };
                held != Some(version)
            });
        }
        let changes: Vec<Change> = modified
            .into_iter()
            .map(|(table, id, _)| Change {
                table: table.as_str().to_owned(),
                id,
                op: "UPDATE".to_owned(),
            })
            .collect();
        // A mass update is cheaper to rebuild than to diff.
        if changes.len() > MASS_UPDATE_ROWS
            && changes.len() as u64 > self.search.document_count() / 4
        {
            match on_mass_update {
                OnMassUpdate::Report => {
                    return Ok(CatchUp::MassUpdate {
                        changed: changes.len(),
                    });
                }
                OnMassUpdate::RebuildInPlace => {
                    tracing::info!(
                        changed = changes.len(),
                        "etl: mass update; rebuilding this build in place"
                    );
                    let published = self.full_build(client, overlap, &mut |_, _| {}).await?;
                    return Ok(CatchUp::Rebuilt(published));
                }
            }
        }
        // In chunks, so catching up after a large update holds a bounded set of
        // documents in memory at a time.
        let mut written = 0;
        for chunk in changes.chunks(CATCH_UP_CHUNK) {
            self.check_stop()?;
            written += self.write_changes(client, chunk).await?;
        }
        if reconcile {
            written += self.drop_vanished(client).await?;
        }
        Ok(CatchUp::Written {
            documents: written,
            watermark: started - chrono::Duration::from_std(overlap).unwrap_or_default(),
        })
    }

    /// Applies announced changes and publishes them.
    pub async fn apply(&mut self, client: &Client, changes: &[Change]) -> Result<Published> {
        let written = self.write_changes(client, changes).await?;
        let version = if written > 0 {
            self.publish(self.position.watermark, true)?
        } else {
            self.position.generation
        };
        Ok(Published {
            version,
            documents: written,
        })
    }

    /// Rewrites every document a set of row changes affects; returns how many documents
    /// were written or deleted.
    async fn write_changes(&mut self, client: &Client, changes: &[Change]) -> Result<u64> {
        let mut films: HashSet<Uuid> = HashSet::new();
        let mut persons: HashSet<Uuid> = HashSet::new();
        let mut genres_changed = Vec::new();
        for change in changes {
            match change.table.as_str() {
                "film" => {
                    films.insert(change.id);
                }
                "person" => {
                    persons.insert(change.id);
                }
                "genre" => genres_changed.push(change.id),
                _ => {}
            }
        }
        if changes.is_empty() {
            return Ok(0);
        }
        // A renamed genre or person shows in every film carrying it. Genres are few
        // and compared by name first: one touched but not renamed (or reread by a
        // catch-up) does not pull its films, which can be most of the catalogue.
        let person_list: Vec<Uuid> = persons.iter().copied().collect();
        films.extend(source::films_of_persons(client, &person_list).await?);
        let mut genre_rewrite = None;
        if !genres_changed.is_empty() {
            let genres = source::all_genres(client).await?;
            let (_, published) = self.search.genres();
            let current: HashMap<&str, &str> = genres
                .iter()
                .map(|(g, _)| (g.uuid.as_str(), g.name.as_str()))
                .collect();
            let before: HashMap<&str, &str> = published
                .iter()
                .map(|g| (g.uuid.as_str(), g.name.as_str()))
                .collect();
            let renamed: Vec<Uuid> = genres_changed
                .iter()
                .copied()
                .filter(|id| {
                    let id = id.to_string();
                    current.get(id.as_str()) != before.get(id.as_str())
                })
                .collect();
            films.extend(source::films_of_genres(client, &renamed).await?);
            if current != before {
                genre_rewrite = Some(genres);
            }
        }
        // Person documents list their films with roles: they change when a film's
        // (person, role) links change, or the film appears or goes.
        let film_list: Vec<Uuid> = films.iter().copied().collect();
        let mut published_films: HashMap<String, Film> = HashMap::new();
        for id in &film_list {
            if let Ok(Some(old)) = self.search.film(&id.to_string()) {
                published_films.insert(old.uuid.clone(), old);
            }
        }
        let current_films = source::films_by_ids(client, &film_list).await?;
        for (film, _) in &current_films {
            let before = published_films
                .get(&film.uuid)
                .map(Film::person_roles)
                .unwrap_or_default();
            let after = film.person_roles();
            for (person, _) in before.symmetric_difference(&after) {
                persons.extend(person.parse::<Uuid>().ok());
            }
        }
        let current_ids: HashSet<&str> =
            current_films.iter().map(|(f, _)| f.uuid.as_str()).collect();
        for (id, old) in &published_films {
            if !current_ids.contains(id.as_str()) {
                persons.extend(old.person_ids().filter_map(|p| p.parse::<Uuid>().ok()));
            }
        }
        let person_list: Vec<Uuid> = persons.iter().copied().collect();
        let current_persons = source::persons_by_ids(client, &person_list).await?;

        // Only documents that differ from the published ones are rewritten, so a
        // catch-up rereading rows the notifications already brought changes nothing
        // (and the version, which caches key on, stays).
        let mut written = 0u64;
        let current_films: HashMap<String, (&Film, RowVersion)> = current_films
            .iter()
            .map(|(f, version)| (f.uuid.clone(), (f, *version)))
            .collect();
        for id in film_list.iter().map(Uuid::to_string) {
            let published = published_films.get(&id);
            let current = current_films.get(&id).copied();
            if published == current.map(|(film, _)| film) {
                continue;
            }
            self.writer
                .delete_term(self.index.key_term(Kind::Film, &id));
            if let Some((film, version)) = current {
                self.writer
                    .add_document(self.index.film_document(film, version))?;
            }
            written += 1;
        }
        let current_persons: HashMap<String, (&Person, RowVersion)> = current_persons
            .iter()
            .map(|(p, version)| (p.uuid.clone(), (p, *version)))
            .collect();
        for id in person_list.iter().map(Uuid::to_string) {
            let published = self.search.person(&id).ok().flatten();
            let current = current_persons.get(&id).copied();
            if published.as_ref() == current.map(|(person, _)| person) {
                continue;
            }
            self.writer
                .delete_term(self.index.key_term(Kind::Person, &id));
            if let Some((person, version)) = current {
                self.writer
                    .add_document(self.index.person_document(person, version))?;
            }
            written += 1;
        }
        if let Some(genres) = genre_rewrite {
            self.writer.delete_term(self.index.kind_term(Kind::Genre));
            for (genre, version) in &genres {
                self.writer
                    .add_document(self.index.genre_document(genre, *version))?;
            }
            written += genres.len() as u64;
        }
        Ok(written)
    }

    /// Deletes documents whose rows are gone from Postgres.
    async fn drop_vanished(&mut self, client: &Client) -> Result<u64> {
        let mut dropped = 0u64;
        for (kind, table) in [
            (Kind::Film, ContentTable::Film),
            (Kind::Person, ContentTable::Person),
            (Kind::Genre, ContentTable::Genre),
        ] {
            let existing = source::all_ids(client, table).await?;
            let indexed = self.search.document_ids(kind).map_err(decode_error)?;
            for id in indexed.difference(&existing) {
                self.writer.delete_term(self.index.key_term(kind, id));
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Commits the position (with the next generation when documents changed: the
    /// version caches key on) and makes readers see it.
    fn publish(
        &mut self,
        watermark: Option<chrono::DateTime<chrono::Utc>>,
        documents_changed: bool,
    ) -> Result<u64> {
        self.commit_position(watermark, documents_changed)?;
        self.reload_readers();
        Ok(self.position.generation)
    }

    /// The commit half of [`Indexer::publish`]: readers do not see it yet.
    fn commit_position(
        &mut self,
        watermark: Option<chrono::DateTime<chrono::Utc>>,
        documents_changed: bool,
    ) -> Result<()> {
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        let generation = if documents_changed {
            next_generation(self.position.generation, now_ms, process_salt())
        } else {
            self.position.generation
        };
        let position = Position {
            schema_version: SCHEMA_VERSION,
            generation,
            watermark,
        };
        commit(&mut self.writer, &position)?;
        self.position = position;
        self.committed_at = Instant::now();
        Ok(())
    }

    /// The reading half of [`Indexer::publish`]: searches see the last commit.
    fn reload_readers(&self) {
        if let Err(error) = self.search.reload() {
            tracing::error!(%error, "etl.publish: committed but the reader did not reload");
        }
    }

    /// Drops everything written since the last publish (after a failed batch).
    fn rollback(&mut self) {
        if let Err(error) = self.writer.rollback() {
            tracing::error!(%error, "etl: rollback of a failed batch failed");
        }
    }
}

fn decode_error(error: crate::search::SearchError) -> EtlError {
    EtlError::Decode(error.to_string())
}

/// Versions are spread this far apart: `commit milliseconds × VERSION_SPREAD + salt`.
const VERSION_SPREAD: u64 = 1000;

/// The version of a publish at `now_ms` after `previous`: larger than `previous`, even
/// across a rebuild from scratch or a clock that went back, and salted per process, so
/// that hosts sharing one content database (and one catalog cache, whose keys are
/// versions) publish different versions even in the same millisecond, but for one
/// chance in [`VERSION_SPREAD`] then. Versions of older releases (plain milliseconds)
/// are smaller than any of these.
fn next_generation(previous: u64, now_ms: u64, salt: u64) -> u64 {
    let tick = (previous / VERSION_SPREAD + 1).max(now_ms);
    tick.saturating_mul(VERSION_SPREAD)
        .saturating_add(salt % VERSION_SPREAD)
}

/// A number drawn once per process (std's per-process random hash keys).
fn process_salt() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    })
}

/// A connected session: a client for queries, the notifications of its `LISTEN`.
struct Session {
    client: Client,
    changes: mpsc::Receiver<Change>,
    /// Set when notifications were dropped because the queue was full; the next
    /// catch-up (with reconciliation) covers them.
    overflowed: Arc<AtomicBool>,
}

async fn connect(settings: &EtlSettings) -> Result<Session> {
    let (client, mut connection) = cinema_postgres::connect(&settings.postgres_url).await?;
    let (sender, changes) = mpsc::channel(MAX_QUEUED_CHANGES);
    let overflowed = Arc::new(AtomicBool::new(false));
    let overflow_flag = overflowed.clone();
    // This task drives the connection: it must never wait on the queue, or the
    // client's own queries would stall behind a flood of notifications.
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    match serde_json::from_str::<Change>(note.payload()) {
                        Ok(change) => match sender.try_send(change) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                overflow_flag.store(true, Ordering::Relaxed);
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        },
                        Err(error) => {
                            overflow_flag.store(true, Ordering::Relaxed);
                            tracing::warn!(%error, payload = note.payload(), "etl: undecodable notification (a catch-up covers it)");
                        }
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "etl: postgres connection lost");
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
        .await?;
    Ok(Session {
        client,
        changes,
        overflowed,
    })
}

/// A rebuild beside the live index and the reindex requests waiting for it: one
/// build answers every request made before it goes live (it goes live caught up to
/// that moment).
#[derive(Debug, Default)]
struct PendingRebuild {
    build: Option<Rebuild>,
    waiting: Vec<oneshot::Sender<Result<u64, String>>>,
    /// Rows deleted while the build ran (a catch-up by `modified` cannot see them).
    deleted: Vec<Change>,
    /// Notifications may have been missed while the build ran: going live must then
    /// compare every id instead of replaying `deleted`.
    reconcile: bool,
}

impl PendingRebuild {
    /// Queues a reindex request, starting a build unless one runs.
    fn request(
        &mut self,
        live: &Indexer,
        settings: &EtlSettings,
        reply: oneshot::Sender<Result<u64, String>>,
    ) {
        self.waiting.push(reply);
        self.start(live, settings, BuildCause::Reindex);
    }

    /// Starts a build beside `live` unless one runs (which then covers `cause` too).
    fn start(&mut self, live: &Indexer, settings: &EtlSettings, cause: BuildCause) {
        if self.build.is_some() {
            return;
        }
        match Rebuild::start(live, &settings.postgres_url, settings.overlap) {
            Ok(build) => {
                tracing::info!(
                    cause = cause.as_str(),
                    "etl: full rebuild started beside the live index"
                );
                settings.observer.tell(&EtlEvent::FullBuild(cause));
                self.build = Some(build);
                self.deleted.clear();
                self.reconcile = false;
            }
            Err(error) => {
                tracing::error!(%error, "etl: could not start a rebuild");
                self.answer(Err(error.to_string()));
            }
        }
    }

    /// The finished build (never resolves while none runs). Cancel-safe.
    async fn finished(&mut self) -> Result<Indexer> {
        match &mut self.build {
            Some(build) => {
                let built = build.finished().await;
                self.build = None;
                built
            }
            None => std::future::pending().await,
        }
    }

    /// Notes the deletions among changes the live index applied.
    fn saw(&mut self, changes: &[Change]) {
        if self.build.is_none() || self.reconcile {
            return;
        }
        self.deleted
            .extend(changes.iter().filter(|c| c.op == "DELETE").cloned());
        if self.deleted.len() > MAX_QUEUED_CHANGES {
            self.missed_notifications();
        }
    }

    /// Notifications were dropped or the connection lost while the build ran.
    fn missed_notifications(&mut self) {
        if self.build.is_some() {
            self.reconcile = true;
            self.deleted = Vec::new();
        }
    }

    fn answer(&mut self, outcome: Result<u64, String>) {
        for reply in self.waiting.drain(..) {
            let _ = reply.send(outcome.clone());
        }
    }

    /// While the ETL has no Postgres connection, so that nobody waits on it: answers
    /// reindex requests at once (503 at the search API), and when a running build ends
    /// answers those waiting for it (it failed, or it cannot go live without the
    /// loop's connection and is dropped). Never returns; cancel-safe.
    async fn serve_disconnected(
        &mut self,
        commands: &mut mpsc::Receiver<EtlCommand>,
    ) -> std::convert::Infallible {
        loop {
            tokio::select! {
                Some(command) = commands.recv() => match command {
                    EtlCommand::Reindex(reply) => {
                        let _ = reply.send(Err("the ETL is reconnecting to Postgres; retry once it is back".into()));
                    }
                },
                built = self.finished() => {
                    let reason = match built {
                        Ok(next) => {
                            next.discard();
                            "the ETL lost Postgres before the rebuild could go live; retry once it is back".to_owned()
                        }
                        Err(error) => error.to_string(),
                    };
                    tracing::warn!(%reason, "etl: the rebuild ended while postgres was unreachable; the live index keeps serving");
                    self.answer(Err(reason));
                }
            }
        }
    }

    /// On shutdown: waits for the build's thread to stop, tells the waiting.
    fn abandon(&mut self) {
        if let Some(mut build) = self.build.take() {
            build.join();
        }
        self.answer(Err("the ETL stopped before the rebuild went live".into()));
    }
}

/// Runs the ETL until `stop` is cancelled: builds or catches up, then follows
/// notifications, catching up periodically; reconnects with backoff on any Postgres
/// failure. Returns an error only for fatal index failures.
pub async fn run(
    settings: EtlSettings,
    mut indexer: Indexer,
    mut commands: mpsc::Receiver<EtlCommand>,
    stop: CancellationToken,
) -> Result<()> {
    indexer.stop_when(stop.clone());
    let mut rebuild = PendingRebuild::default();
    let outcome = run_connected(&settings, &mut indexer, &mut commands, &stop, &mut rebuild).await;
    rebuild.abandon();
    outcome
}

async fn run_connected(
    settings: &EtlSettings,
    indexer: &mut Indexer,
    commands: &mut mpsc::Receiver<EtlCommand>,
    stop: &CancellationToken,
    rebuild: &mut PendingRebuild,
) -> Result<()> {
    let mut backoff = Backoff::new(Duration::from_millis(250), settings.max_backoff);
    let mut attempt = 0u32;
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        let connected = tokio::select! {
            connected = connect(settings) => connected,
            never = rebuild.serve_disconnected(commands) => match never {},
        };
        let session = match connected {
            Ok(session) => session,
            Err(error) => {
                attempt += 1;
                tracing::warn!(%error, attempt, retry_in_ms = backoff.delay_ms(), "etl: cannot reach postgres; the last published index keeps serving");
                let go_on = tokio::select! {
                    go_on = backoff.wait(stop) => go_on,
                    never = rebuild.serve_disconnected(commands) => match never {},
                };
                if !go_on {
                    return Ok(());
                }
                continue;
            }
        };
        match follow(settings, indexer, session, commands, stop, rebuild).await {
            Ok(()) => return Ok(()),
            Err(error) if error.is_retriable() => {
                indexer.rollback();
                rebuild.missed_notifications();
                tracing::warn!(%error, "etl: postgres failed; reconnecting");
                backoff.reset();
                attempt = 0;
            }
            Err(error) => {
                indexer.rollback();
                return Err(error);
            }
        }
    }
}

/// A catch-up of the live index; a mass update is rebuilt beside it (a build already
/// running covers it), so the loop keeps applying edits meanwhile.
async fn catch_up_live(
    settings: &EtlSettings,
    indexer: &mut Indexer,
    session: &Session,
    rebuild: &mut PendingRebuild,
    reconcile: bool,
) -> Result<()> {
    let started = Instant::now();
    let caught_up = indexer
        .catch_up(
            &session.client,
            settings.overlap,
            reconcile,
            OnMassUpdate::Report,
        )
        .await?;
    settings.observer.tell(&EtlEvent::CaughtUp);
    match caught_up {
        CaughtUp::Published(published) => tracing::debug!(
            documents = published.documents,
            version = published.version,
            reconcile,
            took_ms = started.elapsed().as_millis() as u64,
            "etl: caught up"
        ),
        CaughtUp::MassUpdate { changed } => {
            tracing::info!(
                changed,
                "etl: mass update; rebuilding beside the live index, which keeps serving and taking edits"
            );
            rebuild.start(indexer, settings, BuildCause::MassUpdate);
        }
    }
    Ok(())
}

/// One connected stretch: catch up, then follow notifications until the connection
/// breaks (an error) or a stop (`Ok`).
async fn follow(
    settings: &EtlSettings,
    indexer: &mut Indexer,
    mut session: Session,
    commands: &mut mpsc::Receiver<EtlCommand>,
    stop: &CancellationToken,
    rebuild: &mut PendingRebuild,
) -> Result<()> {
    let started = Instant::now();
    if indexer.is_built() {
        catch_up_live(settings, indexer, &session, rebuild, true).await?;
    } else {
        tracing::info!("etl: no index yet; full build");
        settings
            .observer
            .tell(&EtlEvent::FullBuild(BuildCause::FirstBuild));
        indexer
            .full_build(&session.client, settings.overlap, &mut |_, _| {})
            .await?;
    }
    tracing::info!(
        version = indexer.position().generation,
        documents = indexer.search.document_count(),
        took_ms = started.elapsed().as_millis() as u64,
        "etl: caught up; following changes"
    );
    let mut catch_up = tokio::time::interval(settings.catch_up_interval);
    catch_up.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            change = session.changes.recv() => {
                let Some(first) = change else {
                    return Err(EtlError::ConnectionLost);
                };
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + settings.batch_window;
                while batch.len() < MAX_BATCH_CHANGES {
                    match tokio::time::timeout_at(deadline, session.changes.recv()).await {
                        Ok(Some(change)) => batch.push(change),
                        Ok(None) | Err(_) => break,
                    }
                }
                let started = Instant::now();
                let published = indexer.apply(&session.client, &batch).await?;
                rebuild.saw(&batch);
                tracing::debug!(changes = batch.len(), documents = published.documents, version = published.version, took_ms = started.elapsed().as_millis() as u64, "etl: published changes");
                if session.overflowed.swap(false, Ordering::Relaxed) {
                    rebuild.missed_notifications();
                    tracing::info!("etl: notifications overflowed; catching up instead");
                    while session.changes.try_recv().is_ok() {}
                    catch_up_live(settings, indexer, &session, rebuild, true).await?;
                }
            }
            _ = catch_up.tick() => {
                catch_up_live(settings, indexer, &session, rebuild, false).await?;
            }
            Some(command) = commands.recv() => match command {
                EtlCommand::Reindex(reply) => rebuild.request(indexer, settings, reply),
            },
            built = rebuild.finished() => {
                let next = match built {
                    Ok(next) => next,
                    Err(error) => {
                        tracing::error!(%error, "etl: the rebuild failed; the live index keeps serving");
                        rebuild.answer(Err(error.to_string()));
                        continue;
                    }
                };
                let started = Instant::now();
                let deleted = std::mem::take(&mut rebuild.deleted);
                match indexer.go_live(next, &session.client, settings.overlap, &deleted, rebuild.reconcile).await {
                    Ok(published) => {
                        tracing::info!(version = published.version, documents = published.documents, took_ms = started.elapsed().as_millis() as u64, "etl: full rebuild published");
                        rebuild.answer(Ok(published.version));
                    }
                    Err(error) => {
                        tracing::error!(%error, "etl: the rebuild could not go live; the live index keeps serving");
                        rebuild.answer(Err(error.to_string()));
                        if error.is_retriable() {
                            return Err(error);
                        }
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Versions grow on every publish, also past a clock that went back and past the
    /// plain-millisecond versions of older releases; two writers (two hosts) publishing
    /// in the same millisecond publish different versions when their salts differ.
    #[test]
    fn versions_grow_and_differ_between_writers_in_one_millisecond() {
        let now_ms = 1_764_000_000_000;
        let first = next_generation(0, now_ms, 7);
        assert_eq!(first, now_ms * VERSION_SPREAD + 7);
        assert!(
            next_generation(first, now_ms, 7) > first,
            "same millisecond"
        );
        assert!(
            next_generation(first, now_ms - 5_000, 7) > first,
            "clock went back"
        );
        let old_release = now_ms + 10;
        assert!(next_generation(old_release, now_ms, 0) > old_release);
        assert_ne!(
            next_generation(first, now_ms + 1, 7),
            next_generation(first, now_ms + 1, 8)
        );
        assert_eq!(process_salt(), process_salt(), "one salt per process");
    }
}
