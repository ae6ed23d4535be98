//! The catalog index on disk: opening (and rebuilding when the schema changed), the
//! commit payload that makes the ETL's position durable, and turning [`crate::model`]
//! documents into tantivy documents.
//!
//! Position and data commit together: the payload of a tantivy commit holds the
//! generation (the version readers and caches see) and the catch-up watermark, so a
//! restart resumes exactly where the last published index stands.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::schema::Facet;
use tantivy::{Index, IndexWriter, TantivyDocument, TantivyError, Term};

use crate::analysis;
use crate::error::{EtlError, Result};
use crate::model::{Film, GenreRef, Person};
use crate::schema::{CatalogSchema, GENRE_FACET_ROOT, Kind, SCHEMA_VERSION, doc_key};

/// Memory budget of the index writer, per indexing thread.
const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;

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

/// An opened catalog index and its schema handles.
#[derive(Clone)]
pub struct CatalogIndex {
    pub index: Index,
    pub schema: CatalogSchema,
    pub dir: PathBuf,
}

impl std::fmt::Debug for CatalogIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogIndex")
            .field("dir", &self.dir)
            .finish()
    }
}

impl CatalogIndex {
    /// Opens the index in `dir`, creating it (and the directory) when missing. An index
    /// of another schema version is deleted and created empty: it is derived data and
    /// the ETL rebuilds it.
    pub fn open_or_create(dir: &Path) -> Result<Self> {
        let directory_error = |source| EtlError::Directory {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(directory_error)?;
        let schema = CatalogSchema::new();
        let directory = MmapDirectory::open(dir).map_err(TantivyError::from)?;
        if Index::exists(&directory).map_err(TantivyError::from)? {
            let index = Index::open_in_dir(dir)?;
            let current = Position::of(&index)?.is_some_and(|p| p.schema_version == SCHEMA_VERSION)
                && schema.matches(&index.schema());
            if current {
                analysis::register(&index);
                return Ok(Self {
                    index,
                    schema,
                    dir: dir.to_owned(),
                });
            }
            tracing::warn!(dir = %dir.display(), "search index has another schema version; rebuilding it");
            drop(index);
            std::fs::remove_dir_all(dir).map_err(directory_error)?;
            std::fs::create_dir_all(dir).map_err(directory_error)?;
        }
        let index = Index::create_in_dir(dir, schema.schema.clone())?;
        analysis::register(&index);
        Ok(Self {
            index,
            schema,
            dir: dir.to_owned(),
        })
    }

    /// The single writer of this index (a lock file keeps it single across processes).
    pub fn writer(&self, threads: usize) -> Result<IndexWriter> {
        self.index
            .writer_with_num_threads(threads.max(1), WRITER_MEMORY_BYTES * threads.max(1))
            .map_err(|error| match error {
                TantivyError::LockFailure(..) => EtlError::IndexLocked(self.dir.clone()),
                other => EtlError::Index(other),
            })
    }

    /// The term deleting (or finding) one document.
    pub fn key_term(&self, kind: Kind, uuid: &str) -> Term {
        Term::from_field_text(self.schema.key, &doc_key(kind, uuid))
    }

    /// The term matching every document of a kind.
    pub fn kind_term(&self, kind: Kind) -> Term {
        Term::from_field_text(self.schema.kind, kind.as_str())
    }

    pub fn film_document(&self, film: &Film) -> TantivyDocument {
        let s = &self.schema;
        let mut doc = TantivyDocument::default();
        doc.add_text(s.kind, Kind::Film.as_str());
        doc.add_text(s.key, doc_key(Kind::Film, &film.uuid));
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
            doc.add_text(s.person_id, person_id);
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
        doc
    }

    pub fn person_document(&self, person: &Person) -> TantivyDocument {
        let s = &self.schema;
        let mut doc = TantivyDocument::default();
        doc.add_text(s.kind, Kind::Person.as_str());
        doc.add_text(s.key, doc_key(Kind::Person, &person.uuid));
        doc.add_text(s.title, &person.full_name);
        doc.add_text(s.doc, serde_json::to_string(person).unwrap_or_default());
        doc
    }

    pub fn genre_document(&self, genre: &GenreRef) -> TantivyDocument {
        let s = &self.schema;
        let mut doc = TantivyDocument::default();
        doc.add_text(s.kind, Kind::Genre.as_str());
        doc.add_text(s.key, doc_key(Kind::Genre, &genre.uuid));
        doc.add_text(s.title, &genre.name);
        doc.add_text(s.doc, serde_json::to_string(genre).unwrap_or_default());
        doc
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
