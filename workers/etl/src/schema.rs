//! The tantivy schema of the catalog index: one index, three kinds of documents
//! (film, person, genre), told apart by the `kind` field.
//!
//! Text fields use [`crate::analysis::CATALOG_ANALYZER`]; ids and enums are raw
//! strings for filters and deletes; rating, year and date are fast fields for range
//! filters and sorting. Every document stores its wire JSON in `doc`.
//!
//! [`SCHEMA_VERSION`] is written into every commit; an index built with another
//! version is rebuilt from scratch at start.

use tantivy::schema::{
    FAST, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions,
};

use crate::analysis::CATALOG_ANALYZER;

/// Bumped whenever fields or analysis change.
pub const SCHEMA_VERSION: u32 = 1;

/// Document kinds (`kind` field values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Film,
    Person,
    Genre,
}

impl Kind {
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
    /// `kind:uuid`, unique per document: the delete and lookup key.
    pub key: Field,
    /// Film title, person full name or genre name: the main text.
    pub title: Field,
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
    /// Person ids of a film (filter).
    pub person_id: Field,
    pub film_type: Field,
    pub access: Field,
    pub year: Field,
    pub rating: Field,
    /// Days since 1970-01-01 of the creation date (sort).
    pub date: Field,
    /// The wire JSON of the document.
    pub doc: Field,
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
        let key = builder.add_text_field("key", STRING | FAST);
        let title = builder.add_text_field("title", text.clone());
        let description = builder.add_text_field("description", text.clone());
        let people = builder.add_text_field("people", text.clone());
        let genre_names = builder.add_text_field("genre_names", text);
        let genre_id = builder.add_text_field("genre_id", STRING);
        let genre_facet = builder.add_facet_field("genre_facet", FacetOptions::default());
        let person_id = builder.add_text_field("person_id", STRING);
        let film_type = builder.add_text_field("type", STRING);
        let access = builder.add_text_field("access", STRING);
        let year = builder.add_i64_field("year", INDEXED | FAST);
        let rating = builder.add_f64_field("rating", INDEXED | FAST);
        let date = builder.add_i64_field("date", FAST);
        let doc = builder.add_text_field("doc", STORED);
        Self {
            schema: builder.build(),
            kind,
            key,
            title,
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

/// The unique key of a document.
pub fn doc_key(kind: Kind, uuid: &str) -> String {
    format!("{}:{uuid}", kind.as_str())
}

/// Facet path root of film genres.
pub const GENRE_FACET_ROOT: &str = "/g";
