//! The catalog index on disk: opening (and rebuilding when the schema changed), the
//! commit payload that makes the ETL's position durable, and turning [`crate::model`]
//! documents into tantivy documents.
//!
//! Position and data commit together: the payload of a tantivy commit holds the
//! generation (the version readers and caches see) and the catch-up watermark, so a
//! restart resumes exactly where the last published index stands.
//!
//! Layout of an index directory (`--index-dir`): each complete build lives in its own
//! `build-<id>/` and the symlink `current` names the one being served. A full rebuild
//! under `cinema up` writes a new build beside the live one and goes live by replacing
//! the link (an atomic rename), so a crash at any point leaves `current` naming a
//! complete index; builds that `current` does not name are leftovers, swept by the next
//! writer. An index written by an older version straight into the directory is moved
//! into `build-0/` on first open.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::schema::Facet;
use tantivy::{Index, IndexWriter, TantivyDocument, TantivyError, Term};

use crate::analysis;
use crate::error::{EtlError, Result};
use crate::model::{Film, GenreRef, Person};
use crate::schema::{CatalogSchema, GENRE_FACET_ROOT, Kind, SCHEMA_VERSION, doc_key, uuid_bytes};
use crate::source::RowVersion;

/// Memory budget of the index writer, per indexing thread.
const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// The symlink naming the build being served.
const CURRENT_LINK: &str = "current";
/// Directory names of builds start with this.
const BUILD_PREFIX: &str = "build-";
/// What an index written straight into the directory by an older version becomes.
const ADOPTED_BUILD: &str = "build-0";

/// What every commit records (as its JSON payload).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub schema_version: u32,
    /// Grows on every commit (at least to the commit's Unix milliseconds, so it also
    /// grows across a rebuild from scratch): the index version caches key on.
    pub generation: u64,
    /// Rows modified at or after this instant may not be in the index yet; the next
    /// catch-up rereads them. `None`: no full build has completed.
    pub watermark: Option<DateTime<Utc>>,
}

impl Position {
    /// The payload of the index's last commit, if it is one of ours.
    pub fn of(index: &Index) -> Result<Option<Position>> {
        let metas = index.load_metas()?;
        Ok(metas
            .payload
            .as_deref()
            .and_then(|payload| serde_json::from_str(payload).ok()))
    }
}

/// An opened catalog index (one build) and its schema handles.
#[derive(Clone)]
pub struct CatalogIndex {
    pub index: Index,
    pub schema: CatalogSchema,
    /// The build's own directory (`<root>/build-<id>`).
    pub dir: PathBuf,
    /// The index directory the build belongs to (`--index-dir`).
    pub root: PathBuf,
}

impl std::fmt::Debug for CatalogIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogIndex")
            .field("dir", &self.dir)
            .finish()
    }
}

fn directory_error(path: &Path) -> impl FnOnce(std::io::Error) -> EtlError + '_ {
    move |source| EtlError::Directory {
        path: path.to_owned(),
        source,
    }
}

impl CatalogIndex {
    /// Opens the build `root/current` names, creating the directory and an empty build
    /// when there is none. A build of another schema version is replaced by an empty
    /// one: it is derived data and the ETL rebuilds it.
    pub fn open_or_create(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(directory_error(root))?;
        adopt_unversioned_index(root)?;
        let schema = CatalogSchema::new();
        if let Some(dir) = current_build(root)? {
            let directory = MmapDirectory::open(&dir).map_err(TantivyError::from)?;
            if Index::exists(&directory).map_err(TantivyError::from)? {
                let index = Index::open_in_dir(&dir)?;
                // A build never committed has no position yet; its schema decides.
                let current = Position::of(&index)?
                    .is_none_or(|p| p.schema_version == SCHEMA_VERSION)
                    && schema.matches(&index.schema());
                if current {
                    analysis::register(&index);
                    return Ok(Self {
                        index,
                        schema,
                        dir,
                        root: root.to_owned(),
                    });
                }
                tracing::warn!(dir = %dir.display(), "search index has another schema version; rebuilding it");
            }
            drop(directory);
            let fresh = Self::create_build(root, schema)?;
            fresh.make_current()?;
            remove_build(&dir);
            return Ok(fresh);
        }
        let fresh = Self::create_build(root, schema)?;
        fresh.make_current()?;
        Ok(fresh)
    }

    /// An empty build in the same index directory, not served until
    /// [`CatalogIndex::make_current`].
    pub fn create_beside(&self) -> Result<Self> {
        Self::create_build(&self.root, self.schema.clone())
    }

    fn create_build(root: &Path, schema: CatalogSchema) -> Result<Self> {
        let stamp = chrono::Utc::now().timestamp_millis();
        let mut dir = root.join(format!("{BUILD_PREFIX}{stamp}"));
        let mut attempt = 1;
        while dir.exists() {
            dir = root.join(format!("{BUILD_PREFIX}{stamp}-{attempt}"));
            attempt += 1;
        }
        std::fs::create_dir(&dir).map_err(directory_error(&dir))?;
        let index = Index::create_in_dir(&dir, schema.schema.clone())?;
        analysis::register(&index);
        Ok(Self {
            index,
            schema,
            dir,
            root: root.to_owned(),
        })
    }

    /// Makes this build the one served from now on (a process opening the index
    /// directory gets it): `current` is replaced in one rename.
    pub fn make_current(&self) -> Result<()> {
        // Relative, so the index directory can be moved as a whole.
        let name = self.dir.file_name().unwrap_or_default();
        let staged = self.root.join(format!("{CURRENT_LINK}.next"));
        match std::fs::remove_file(&staged) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(directory_error(&staged)(error)),
        }
        std::os::unix::fs::symlink(name, &staged).map_err(directory_error(&staged))?;
        std::fs::rename(&staged, self.root.join(CURRENT_LINK))
            .map_err(directory_error(&self.root))?;
        // The rename is durable once the directory is.
        std::fs::File::open(&self.root)
            .and_then(|root| root.sync_all())
            .map_err(directory_error(&self.root))?;
        Ok(())
    }

    /// Deletes this build's directory (one that is not current and whose writer has
    /// stopped).
    pub fn remove(self) {
        remove_build(&self.dir);
    }

    /// Whether `current` names this build.
    pub fn is_current(&self) -> bool {
        current_build(&self.root).ok().flatten().as_deref() == Some(self.dir.as_path())
    }

    /// Deletes every build of the index directory but this one (leftovers of a
    /// rebuild that crashed or was replaced). Call only while holding the writer lock
    /// of the current build, so no rebuild of another process is running.
    pub fn remove_other_builds(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_build = entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(BUILD_PREFIX));
            if is_build && path != self.dir {
                remove_build(&path);
            }
        }
    }

    /// The single writer of this index (a lock file keeps it single across processes).
    pub fn writer(&self, threads: usize) -> Result<IndexWriter> {
        self.index
            .writer_with_num_threads(threads.max(1), WRITER_MEMORY_BYTES * threads.max(1))
            .map_err(|error| match error {
                TantivyError::LockFailure(..) => EtlError::IndexLocked(self.root.clone()),
                other => EtlError::Index(other),
            })
    }

    /// The term deleting (or finding) one document.
    pub fn key_term(&self, kind: Kind, uuid: &str) -> Term {
        Term::from_field_bytes(self.schema.key, &doc_key(kind, uuid))
    }

    /// The term matching every document of a kind.
    pub fn kind_term(&self, kind: Kind) -> Term {
        Term::from_field_text(self.schema.kind, kind.as_str())
    }

    /// A film's document, built from the row version `modified`.
    pub fn film_document(&self, film: &Film, modified: RowVersion) -> TantivyDocument {
        let s = &self.schema;
        let mut doc = TantivyDocument::default();
        doc.add_text(s.kind, Kind::Film.as_str());
        doc.add_bytes(s.key, &doc_key(Kind::Film, &film.uuid));
        doc.add_text(s.title, &film.title);
        doc.add_text(s.description, &film.description);
        for person in film
            .actors
            .iter()
            .chain(&film.writers)
            .chain(&film.directors)
        {
            doc.add_text(s.people, &person.full_name);
        }
        for person_id in film.person_ids() {
            doc.add_bytes(s.person_id, &uuid_bytes(person_id));
        }
        for genre in &film.genre {
            doc.add_text(s.genre_names, &genre.name);
            doc.add_text(s.genre_id, &genre.uuid);
            doc.add_facet(
                s.genre_facet,
                Facet::from_path([&GENRE_FACET_ROOT[1..], genre.uuid.as_str()]),
            );
        }
        doc.add_text(s.film_type, &film.film_type);
        doc.add_text(s.access, &film.access);
        if let Some(year) = film.year() {
            doc.add_i64(s.year, year);
        }
        if let Some(rating) = film.imdb_rating {
            doc.add_f64(s.rating, rating);
        }
        if let Some(days) = film.creation_date.as_deref().and_then(days_since_epoch) {
            doc.add_i64(s.date, days);
        }
        doc.add_text(s.doc, serde_json::to_string(film).unwrap_or_default());
        doc.add_i64(s.modified, modified.0);
        doc
    }

    /// A person's document, built from the row version `modified`.
    pub fn person_document(&self, person: &Person, modified: RowVersion) -> TantivyDocument {
        let s = &self.schema;
        let mut doc = TantivyDocument::default();
        doc.add_text(s.kind, Kind::Person.as_str());
        doc.add_bytes(s.key, &doc_key(Kind::Person, &person.uuid));
        doc.add_text(s.name, &person.full_name);
        doc.add_text(s.doc, serde_json::to_string(person).unwrap_or_default());
        doc.add_i64(s.modified, modified.0);
        doc
    }

    /// A genre's document, built from the row version `modified`.
    pub fn genre_document(&self, genre: &GenreRef, modified: RowVersion) -> TantivyDocument {
        let s = &self.schema;
        let mut doc = TantivyDocument::default();
        doc.add_text(s.kind, Kind::Genre.as_str());
        doc.add_bytes(s.key, &doc_key(Kind::Genre, &genre.uuid));
        doc.add_text(s.name, &genre.name);
        doc.add_text(s.doc, serde_json::to_string(genre).unwrap_or_default());
        doc.add_i64(s.modified, modified.0);
        doc
    }
}

/// The build `root/current` names, if it exists.
fn current_build(root: &Path) -> Result<Option<PathBuf>> {
    match std::fs::read_link(root.join(CURRENT_LINK)) {
        Ok(target) => {
            let dir = root.join(target);
            Ok(dir.is_dir().then_some(dir))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(directory_error(root)(error)),
    }
}

/// Moves an index that an older version wrote straight into `root` into a build of
/// its own and points `current` at it, so upgrading keeps serving it.
fn adopt_unversioned_index(root: &Path) -> Result<()> {
    if !root.join("meta.json").is_file() || root.join(CURRENT_LINK).exists() {
        return Ok(());
    }
    let build = root.join(ADOPTED_BUILD);
    std::fs::create_dir_all(&build).map_err(directory_error(&build))?;
    for entry in std::fs::read_dir(root).map_err(directory_error(root))? {
        let entry = entry.map_err(directory_error(root))?;
        let is_layout = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(BUILD_PREFIX) || name.starts_with(CURRENT_LINK));
        if !is_layout && entry.path().is_file() {
            std::fs::rename(entry.path(), build.join(entry.file_name()))
                .map_err(directory_error(root))?;
        }
    }
    std::os::unix::fs::symlink(ADOPTED_BUILD, root.join(CURRENT_LINK))
        .map_err(directory_error(root))?;
    tracing::info!(dir = %build.display(), "search index moved into its build directory");
    Ok(())
}

/// Deletes a build directory; a failure only leaves disk to the next sweep.
fn remove_build(dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(dir) {
        tracing::warn!(%error, dir = %dir.display(), "could not remove an old search index build");
    }
}

/// Days from 1970-01-01 to a `YYYY-MM-DD` date.
pub(crate) fn days_since_epoch(date: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days())
}

/// Commits everything written since the last commit, with `position` as payload.
pub fn commit(writer: &mut IndexWriter, position: &Position) -> Result<()> {
    let payload = serde_json::to_string(position).unwrap_or_default();
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&payload);
    prepared.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cinema-etl-layout-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn builds(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root)
            .expect("root")
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| name.starts_with(BUILD_PREFIX))
            .collect();
        names.sort();
        names
    }

    /// An index an older version wrote straight into the directory keeps serving its
    /// documents after the upgrade, moved into a build of its own.
    #[test]
    fn an_index_written_straight_into_its_directory_is_adopted_with_its_documents() {
        let root = scratch("adopt");
        std::fs::create_dir_all(&root).expect("root");
        let schema = CatalogSchema::new();
        let index = Index::create_in_dir(&root, schema.schema.clone()).expect("legacy index");
        analysis::register(&index);
        let mut writer = index
            .writer_with_num_threads(1, 15_000_000)
            .expect("writer");
        let mut doc = TantivyDocument::default();
        doc.add_text(schema.kind, Kind::Genre.as_str());
        writer.add_document(doc).expect("document");
        let position = Position {
            schema_version: SCHEMA_VERSION,
            generation: 7,
            watermark: Some(Utc::now()),
        };
        commit(&mut writer, &position).expect("commit");
        writer.wait_merging_threads().expect("writer stops");
        drop(index);

        let opened = CatalogIndex::open_or_create(&root).expect("open");
        assert_eq!(opened.dir, root.join(ADOPTED_BUILD));
        assert!(opened.is_current());
        assert_eq!(Position::of(&opened.index).expect("meta"), Some(position));
        let reader = opened.index.reader().expect("reader");
        assert_eq!(reader.searcher().num_docs(), 1);
        assert!(
            !root.join("meta.json").exists(),
            "nothing is left beside the builds"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A build made beside the served one is not served until it replaces `current`;
    /// then a process opening the directory gets it, and the writer's sweep deletes
    /// every other build.
    #[test]
    fn a_build_made_beside_goes_live_by_replacing_current_and_leftovers_are_swept() {
        let root = scratch("beside");
        let live = CatalogIndex::open_or_create(&root).expect("open");
        assert!(live.is_current());
        let next = live.create_beside().expect("beside");
        let leftover = live.create_beside().expect("a crashed rebuild's");
        assert_ne!(next.dir, live.dir);
        assert!(!next.is_current());
        assert_eq!(
            CatalogIndex::open_or_create(&root).expect("reopen").dir,
            live.dir,
            "a build in progress is not served"
        );

        next.make_current().expect("go live");
        assert!(next.is_current() && !live.is_current());
        assert_eq!(
            CatalogIndex::open_or_create(&root).expect("reopen").dir,
            next.dir
        );
        assert_eq!(builds(&root).len(), 3);
        next.remove_other_builds();
        assert_eq!(
            builds(&root),
            [next
                .dir
                .file_name()
                .and_then(|name| name.to_str())
                .expect("build name")
                .to_owned()]
        );
        assert!(!leftover.dir.exists());
        let _ = std::fs::remove_dir_all(&root);
    }
}
