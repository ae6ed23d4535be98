//! The tantivy schema of the catalog index: one index, three kinds of documents
//! (film, person, genre), told apart by the `kind` field.
//!
//! The text fields a film search reads (`title`, `description`, `people`,
//! `genre_names`) hold film documents' words only; persons and genres keep their names
//! in `name`. So a film search with words needs no `kind` filter: intersecting every
//! hit with the 100k-document `kind:film` postings was a sixth of its time.
//!
//! Text fields use [`crate::analysis::CATALOG_ANALYZER`]; enums and genre ids are raw
//! strings for filters; document keys and person ids are binary (a UUID's 16 bytes: a
//! full build spends a sixth of its time building term dictionaries, and 36-character
//! UUID strings were most of their bytes); rating, year and date are fast fields for
//! range filters and sorting. Every document stores its wire JSON in `doc`, and the
//! `modified` of the row it was built from (a fast field), so a catch-up can tell rows
//! it already holds from rows that changed.
//!
//! [`SCHEMA_VERSION`] is written into every commit; an index built with another
//! version is rebuilt from scratch at start.

use tantivy::schema::{
    FAST, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions,
};

use crate::analysis::CATALOG_ANALYZER;

/// Bumped whenever fields or analysis change.
pub const SCHEMA_VERSION: u32 = 4;

/// Document kinds (`kind` field values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Film,
    Person,
    Genre,
}

impl Kind {
    /// The first byte of a document's key.
    fn key_byte(self) -> u8 {
        match self {
            Kind::Film => b'f',
            Kind::Person => b'p',
            Kind::Genre => b'g',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Film => "film",
            Kind::Person => "person",
            Kind::Genre => "genre",
        }
    }
}

/// Handles of every field.
#[derive(Debug, Clone)]
pub struct CatalogSchema {
    pub schema: Schema,
    /// `film` | `person` | `genre`.
    pub kind: Field,
    /// A kind byte and the UUID's 16 bytes ([`doc_key`]), unique per document: the
    /// delete and lookup key.
    pub key: Field,
    /// Film title (films only).
    pub title: Field,
    /// Person full name or genre name (persons and genres only).
    pub name: Field,
    /// Film description.
    pub description: Field,
    /// Names of a film's people, any role.
    pub people: Field,
    /// Names of a film's genres.
    pub genre_names: Field,
    /// Genre ids of a film (filter).
    pub genre_id: Field,
    /// `/g/<uuid>` per genre of a film (facet counts).
    pub genre_facet: Field,
    /// Person ids of a film, 16 bytes each (filter).
    pub person_id: Field,
    pub film_type: Field,
    pub access: Field,
    pub year: Field,
    pub rating: Field,
    /// Days since 1970-01-01 of the creation date (sort).
    pub date: Field,
    /// The wire JSON of the document.
    pub doc: Field,
    /// The `modified` of the row a document was built from
    /// ([`crate::source::RowVersion`]).
    pub modified: Field,
}

impl CatalogSchema {
    pub fn new() -> Self {
        let mut builder = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(CATALOG_ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let kind = builder.add_text_field("kind", STRING);
        let key = builder.add_bytes_field("key", INDEXED);
        let title = builder.add_text_field("title", text.clone());
        let name = builder.add_text_field("name", text.clone());
        let description = builder.add_text_field("description", text.clone());
        let people = builder.add_text_field("people", text.clone());
        let genre_names = builder.add_text_field("genre_names", text);
        let genre_id = builder.add_text_field("genre_id", STRING);
        let genre_facet = builder.add_facet_field("genre_facet", FacetOptions::default());
        let person_id = builder.add_bytes_field("person_id", INDEXED);
        let film_type = builder.add_text_field("type", STRING);
        let access = builder.add_text_field("access", STRING);
        let year = builder.add_i64_field("year", INDEXED | FAST);
        let rating = builder.add_f64_field("rating", INDEXED | FAST);
        let date = builder.add_i64_field("date", FAST);
        let doc = builder.add_text_field("doc", STORED);
        let modified = builder.add_i64_field("modified", FAST);
        Self {
            schema: builder.build(),
            kind,
            key,
            title,
            name,
            description,
            people,
            genre_names,
            genre_id,
            genre_facet,
            person_id,
            film_type,
            access,
            year,
            rating,
            date,
            doc,
            modified,
        }
    }

    /// Whether an existing index was built with this schema.
    pub fn matches(&self, existing: &Schema) -> bool {
        existing == &self.schema
    }
}

impl Default for CatalogSchema {
    fn default() -> Self {
        Self::new()
    }
}

/// The unique key of a document: its kind's byte, then the UUID's 16 bytes.
pub fn doc_key(kind: Kind, uuid: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(kind.key_byte());
    key.extend_from_slice(&uuid_bytes(uuid));
    key
}

/// The kind and UUID of a document key ([`doc_key`]).
pub fn parse_doc_key(key: &[u8]) -> Option<(Kind, uuid::Uuid)> {
    let (&first, id) = key.split_first()?;
    let kind = [Kind::Film, Kind::Person, Kind::Genre]
        .into_iter()
        .find(|kind| kind.key_byte() == first)?;
    Some((kind, uuid::Uuid::from_slice(id).ok()?))
}

/// The kind byte every key of a document kind starts with.
pub fn key_prefix(kind: Kind) -> [u8; 1] {
    [kind.key_byte()]
}

/// A UUID's 16 bytes as the index stores ids. Content ids come from Postgres `uuid`
/// columns and API paths checked as UUIDs; anything else maps to the nil UUID, which
/// no row has.
pub fn uuid_bytes(uuid: &str) -> [u8; 16] {
    uuid::Uuid::parse_str(uuid)
        .map(|id| id.into_bytes())
        .unwrap_or_default()
}

/// Facet path root of film genres.
pub const GENRE_FACET_ROOT: &str = "/g";

#[cfg(test)]
mod tests {
    use super::*;

    /// A key is the kind's byte and the UUID's 16 bytes, and reads back as both; keys
    /// of different kinds never collide, and a kind's keys share its prefix.
    #[test]
    fn document_keys_are_seventeen_bytes_that_read_back_as_kind_and_uuid() {
        let id = "6f1c2d3e-4b5a-4978-8a6b-5c4d3e2f1a0b";
        for kind in [Kind::Film, Kind::Person, Kind::Genre] {
            let key = doc_key(kind, id);
            assert_eq!(key.len(), 17);
            assert!(key.starts_with(&key_prefix(kind)));
            assert_eq!(
                parse_doc_key(&key),
                Some((kind, uuid::Uuid::parse_str(id).expect("uuid")))
            );
        }
        assert_ne!(doc_key(Kind::Film, id), doc_key(Kind::Person, id));
        assert_eq!(parse_doc_key(b"x"), None);
        assert_eq!(uuid_bytes("not a uuid"), [0; 16]);
    }
}
